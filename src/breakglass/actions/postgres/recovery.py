"""Choosing a base backup and checking the WAL archive for a point-in-time recovery.

These checks run in the plan, before anything is stopped or moved. The recovery target
is one UTC instant, and the backup is the newest whose stop time is at or before it. The
archive must contain every WAL segment from that backup's start to past the target.

NOTE: pg.pitr_restore, whose plan will call these checks, is not built yet; they are
tested on their own against archive directories the tests lay out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from breakglass.actions.base import ActionError
from breakglass.actions.postgres.basebackup import BaseBackup

# PostgreSQL's default WAL segment size. A cluster built with another size reports it
# as wal_segment_size.
DEFAULT_SEGMENT_BYTES = 16 * 1024 * 1024
SEGMENT_NAME = re.compile(r"^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})$")


def parse_lsn(text: str) -> int:
    """Return the byte position of an LSN written as `X/Y`."""
    match = re.fullmatch(r"([0-9A-Fa-f]+)/([0-9A-Fa-f]+)", text.strip())
    if match is None:
        raise ValueError(f"invalid LSN {text!r}: expected the form 0/3000060")
    return (int(match.group(1), 16) << 32) | int(match.group(2), 16)


def segment_name(timeline: int, lsn: int, segment_bytes: int = DEFAULT_SEGMENT_BYTES) -> str:
    """Return the name of the WAL segment file that contains byte `lsn` on `timeline`."""
    segments_per_id = 0x1_0000_0000 // segment_bytes
    number = lsn // segment_bytes
    return f"{timeline:08X}{number // segments_per_id:08X}{number % segments_per_id:08X}"


def segment_number(name: str, segment_bytes: int = DEFAULT_SEGMENT_BYTES) -> tuple[int, int]:
    """Return (timeline, sequential segment number) of a segment file name."""
    match = SEGMENT_NAME.match(name)
    if match is None:
        raise ValueError(f"{name!r} is not a WAL segment file name")
    segments_per_id = 0x1_0000_0000 // segment_bytes
    return int(match.group(1), 16), int(match.group(2), 16) * segments_per_id + int(
        match.group(3), 16
    )


def archived_segments(archive: Path) -> set[str]:
    """Return the names of the complete WAL segments in an archive directory."""
    if not archive.is_dir():
        raise ActionError(f"WAL archive {archive} does not exist")
    return {entry.name for entry in archive.iterdir() if SEGMENT_NAME.match(entry.name)}


@dataclass(frozen=True)
class WalSpan:
    """The segments a recovery from one backup needs, and those the archive lacks."""

    first: str
    last_archived: str | None
    missing: list[str]

    @property
    def complete(self) -> bool:
        return not self.missing


def check_span(
    archive: Path, backup: BaseBackup, *, segment_bytes: int = DEFAULT_SEGMENT_BYTES
) -> WalSpan:
    """Find gaps in the archive from the backup's start segment to the newest archived one.

    A gap anywhere in the span stops replay there, so every missing segment is named.
    """
    names = archived_segments(archive)
    first = segment_name(backup.timeline, parse_lsn(backup.start_lsn), segment_bytes)
    _, first_number = segment_number(first, segment_bytes)
    on_timeline = sorted(
        segment_number(name, segment_bytes)[1]
        for name in names
        if segment_number(name, segment_bytes)[0] == backup.timeline
    )
    after = [number for number in on_timeline if number >= first_number]
    if not after:
        return WalSpan(first, None, [first])
    present = set(after)
    missing_numbers = [
        number for number in range(first_number, max(after) + 1) if number not in present
    ]
    per_id = 0x1_0000_0000 // segment_bytes

    def name_of(number: int) -> str:
        return f"{backup.timeline:08X}{number // per_id:08X}{number % per_id:08X}"

    return WalSpan(first, name_of(max(after)), [name_of(number) for number in missing_numbers])


def choose_backup(backups: list[BaseBackup], target: datetime) -> BaseBackup:
    """Return the newest backup whose stop time is at or before `target`.

    Replay must start from a backup that was complete before the target, because a backup
    still running at the target time cannot be brought back to it.
    """
    usable = [backup for backup in backups if backup.stop_time is not None and backup.verified]
    if not usable:
        raise ActionError(
            "no verified base backup with a known stop time; take one with pg.base_backup first"
        )
    before = [
        backup for backup in usable if datetime.fromisoformat(str(backup.stop_time)) <= target
    ]
    if not before:
        earliest = min(datetime.fromisoformat(str(backup.stop_time)) for backup in usable)
        raise ActionError(
            f"recovery target {target.isoformat()} is before the oldest usable base backup; "
            f"the earliest recoverable time is {earliest.isoformat()}"
        )
    return max(before, key=lambda backup: datetime.fromisoformat(str(backup.stop_time)))
