"""Backup choice and WAL span checks for point-in-time recovery, on synthetic archives."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from breakglass.actions.base import ActionError
from breakglass.actions.postgres.basebackup import BaseBackup
from breakglass.actions.postgres.recovery import (
    TimelineStep,
    check_span,
    choose_backup,
    parse_lsn,
    segment_name,
    segment_number,
    timeline_chain,
)

T0 = datetime(2026, 12, 4, 2, 0, tzinfo=UTC)


def backup(
    name: str, start_lsn: str, stop: datetime | None, *, verified: bool = True, timeline: int = 1
) -> BaseBackup:
    return BaseBackup(
        path=f"/backups/{name}",
        label=name,
        start_lsn=start_lsn,
        stop_lsn=None,
        timeline=timeline,
        start_time=(stop or T0).isoformat(),
        stop_time=stop.isoformat() if stop else None,
        made_by_breakglass=True,
        verified=verified,
    )


def archive_with(tmp_path: Path, *names: str) -> Path:
    archive = tmp_path / "archive"
    archive.mkdir()
    for name in names:
        (archive / name).write_bytes(b"")
    (archive / "000000010000000000000002.00000028.backup").write_text("backup history")
    return archive


def test_lsn_to_segment_name() -> None:
    assert parse_lsn("0/3000060") == 0x3000060
    assert segment_name(1, parse_lsn("0/3000060")) == "000000010000000000000003"
    assert segment_name(2, parse_lsn("1/FF000000")) == "0000000200000001000000FF"
    assert segment_number("0000000200000001000000FF") == (2, 256 + 255)
    with pytest.raises(ValueError, match="invalid LSN"):
        parse_lsn("3000060")


def test_newest_backup_stopped_before_target() -> None:
    backups = [
        backup("early", "0/2000028", T0),
        backup("middle", "0/5000028", T0 + timedelta(hours=1)),
        # Its stop is after the target: it was still running then, so it cannot be used.
        backup("late", "0/9000028", T0 + timedelta(hours=3)),
        backup("unverified", "0/7000028", T0 + timedelta(hours=2), verified=False),
    ]
    chosen = choose_backup(backups, T0 + timedelta(hours=2, minutes=30))
    assert chosen.label == "middle"
    assert choose_backup(backups, T0 + timedelta(hours=1)).label == "middle"


def test_target_before_oldest_backup_names_earliest() -> None:
    backups = [
        backup("early", "0/2000028", T0),
        backup("later", "0/5000028", T0 + timedelta(hours=1)),
    ]
    with pytest.raises(
        ActionError, match=r"the earliest recoverable time is 2026-12-04T02:00:00\+00:00"
    ):
        choose_backup(backups, T0 - timedelta(minutes=1))


def test_no_usable_backup() -> None:
    with pytest.raises(ActionError, match="no verified base backup"):
        choose_backup([backup("running", "0/2000028", None)], T0)


def test_complete_span(tmp_path: Path) -> None:
    archive = archive_with(tmp_path, *(f"0000000100000000000000{n:02X}" for n in range(2, 8)))
    span = check_span(archive, backup("b", "0/2000028", T0))
    assert span.complete
    assert span.first == "000000010000000000000002"
    assert span.last == "000000010000000000000007"


def test_gap_in_span_named(tmp_path: Path) -> None:
    names = [f"0000000100000000000000{n:02X}" for n in (2, 3, 5, 6)]
    archive = archive_with(tmp_path, *names)
    span = check_span(archive, backup("b", "0/2000028", T0))
    assert span.missing == ["000000010000000000000004"]


def test_other_timeline_ignored(tmp_path: Path) -> None:
    archive = archive_with(tmp_path, "000000020000000000000002", "000000020000000000000003")
    span = check_span(archive, backup("b", "0/2000028", T0))
    assert span.missing == ["000000010000000000000002"]
    assert span.last is None


def test_missing_archive_directory(tmp_path: Path) -> None:
    with pytest.raises(ActionError, match="does not exist"):
        check_span(tmp_path / "nowhere", backup("b", "0/2000028", T0))


def test_span_follows_timeline_history(tmp_path: Path) -> None:
    # Timeline 2 branched from timeline 1 inside segment 4: recovery reads segments 2 and 3
    # from timeline 1 and segment 4 onwards from timeline 2.
    archive = archive_with(
        tmp_path,
        "000000010000000000000002",
        "000000010000000000000003",
        "000000010000000000000004.partial",
        "000000020000000000000004",
        "000000020000000000000005",
    )
    (archive / "00000002.history").write_text("1\t0/4000100\tno recovery target specified\n")
    chain = timeline_chain(archive, 2)
    assert chain == [TimelineStep(1, 0x4000100), TimelineStep(2, None)]
    span = check_span(archive, backup("b", "0/2000028", T0), chain=chain)
    assert span.complete
    assert span.last == "000000020000000000000005"
    assert span.segments == 4


def test_gap_on_the_new_timeline_named(tmp_path: Path) -> None:
    archive = archive_with(
        tmp_path, "000000010000000000000002", "000000010000000000000003", "000000020000000000000005"
    )
    (archive / "00000002.history").write_text("1\t0/4000100\treason\n")
    span = check_span(archive, backup("b", "0/2000028", T0), chain=timeline_chain(archive, 2))
    assert span.missing == ["000000020000000000000004"]


def test_missing_history_file_refused(tmp_path: Path) -> None:
    archive = archive_with(tmp_path, "000000020000000000000002")
    with pytest.raises(ActionError, match=r"lacks 00000002\.history"):
        timeline_chain(archive, 2)


def test_backup_off_the_history_refused(tmp_path: Path) -> None:
    archive = archive_with(tmp_path, "000000030000000000000002")
    (archive / "00000003.history").write_text("1\t0/1800000\treason\n")
    with pytest.raises(ActionError, match="not in the history of timeline 3"):
        check_span(
            archive,
            backup("b", "0/2000028", T0, timeline=2),
            chain=timeline_chain(archive, 3),
        )
