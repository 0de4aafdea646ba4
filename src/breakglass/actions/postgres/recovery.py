"""Choosing a base backup and checking the WAL archive for a point-in-time recovery.

These checks run in the plan, before anything is stopped or moved. The recovery target
is one UTC instant, and the backup is the newest whose stop time is at or before it. The
archive must contain every WAL segment from that backup's start to past the target.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
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


def archived_segments(archive: Path) -> dict[str, float]:
    """Return the complete WAL segments in an archive directory, with their modification times."""
    if not archive.is_dir():
        raise ActionError(
            f"WAL archive {archive} does not exist; check wal_archive_dir in the database's config"
        )
    return {
        entry.name: entry.stat().st_mtime
        for entry in archive.iterdir()
        if SEGMENT_NAME.match(entry.name)
    }


@dataclass(frozen=True)
class TimelineStep:
    """One timeline of a history: recovery reads it for segments before `end_segment`."""

    timeline: int
    end_lsn: int | None


def parse_history(text: str, timeline: int) -> list[TimelineStep]:
    """Return the chain of timelines a `NNNNNNNN.history` file describes, ending with `timeline`.

    Each line reads `parent-timeline  switch-LSN  reason`; the parent ends at the switch.
    """
    chain = []
    for line in text.splitlines():
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        if len(fields) < 2 or not fields[0].isdigit():
            raise ActionError(f"unreadable line in the history of timeline {timeline}: {line!r}")
        chain.append(TimelineStep(int(fields[0]), parse_lsn(fields[1])))
    chain.append(TimelineStep(timeline, None))
    return chain


def timeline_chain(archive: Path, timeline: int) -> list[TimelineStep]:
    """Read the history of `timeline` from the archive; timeline 1 has none."""
    if timeline == 1:
        return [TimelineStep(1, None)]
    history = archive / f"{timeline:08X}.history"
    if not history.is_file():
        raise ActionError(
            f"the WAL archive {archive} lacks {history.name}, the history of the server's "
            f"timeline {timeline}; recovery cannot follow it without that file"
        )
    return parse_history(history.read_text(encoding="utf-8"), timeline)


@dataclass(frozen=True)
class WalSpan:
    """The segments a recovery from one backup needs, and those the archive lacks.

    `last` is the newest archived segment of the span, and `last_archived_at` the time it
    was written into the archive, which bounds the newest transaction it can hold.
    """

    first: str
    last: str | None
    last_number: int | None
    last_archived_at: datetime | None
    missing: list[str]
    segment_bytes: int

    @property
    def complete(self) -> bool:
        return not self.missing

    @property
    def segments(self) -> int:
        """How many segments the span holds, the missing ones included."""
        if self.last_number is None:
            return 0
        _, first_number = segment_number(self.first, self.segment_bytes)
        return self.last_number - first_number + 1


def check_span(
    archive: Path,
    backup: BaseBackup,
    *,
    chain: list[TimelineStep] | None = None,
    segment_bytes: int = DEFAULT_SEGMENT_BYTES,
) -> WalSpan:
    """Find gaps in the archive from the backup's start segment to the newest archived one.

    Each segment is looked for on the timeline that recovery reads it from: the segment
    holding a timeline switch comes from the newer timeline. A gap anywhere in the span
    stops replay there, so every missing segment is named.
    """
    chain = chain or [TimelineStep(backup.timeline, None)]
    if backup.timeline not in [step.timeline for step in chain]:
        raise ActionError(
            f"backup {backup.label} is on timeline {backup.timeline}, which is not in the history "
            f"of timeline {chain[-1].timeline}; choose a backup taken on that line of history"
        )
    found = archived_segments(archive)
    present: dict[int, float] = {}
    for name, mtime in found.items():
        timeline, number = segment_number(name, segment_bytes)
        if _timeline_for(number, chain, segment_bytes) == timeline:
            present[number] = mtime
    first_number = parse_lsn(backup.start_lsn) // segment_bytes
    first = _name(_timeline_for(first_number, chain, segment_bytes), first_number, segment_bytes)
    after = [number for number in present if number >= first_number]
    if not after:
        return WalSpan(first, None, None, None, [first], segment_bytes)
    last_number = max(after)
    missing = [
        _name(_timeline_for(number, chain, segment_bytes), number, segment_bytes)
        for number in range(first_number, last_number + 1)
        if number not in present
    ]
    return WalSpan(
        first,
        _name(_timeline_for(last_number, chain, segment_bytes), last_number, segment_bytes),
        last_number,
        datetime.fromtimestamp(present[last_number], UTC),
        missing,
        segment_bytes,
    )


def _timeline_for(number: int, chain: list[TimelineStep], segment_bytes: int) -> int:
    for step in chain:
        if step.end_lsn is None or number < step.end_lsn // segment_bytes:
            return step.timeline
    return chain[-1].timeline


def _name(timeline: int, number: int, segment_bytes: int) -> str:
    per_id = 0x1_0000_0000 // segment_bytes
    return f"{timeline:08X}{number // per_id:08X}{number % per_id:08X}"


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
