"""Parsing times given by operators: an explicit offset, `Z`, or an `Area/City` zone.

A time without a zone means different instants on different machines, so it is rejected.
So are local times that a DST change skips or repeats, because they name no single instant.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

EXAMPLES = "2026-12-04T10:30:00Z, 2026-12-04T10:30:00+01:00 or 2026-12-04T10:30:00 Europe/Berlin"


def parse_instant(text: str) -> datetime:
    """Return the UTC instant `text` names, or raise ValueError saying what is missing."""
    cleaned = text.strip()
    local_part, _, zone_name = cleaned.rpartition(" ")
    # "2026-12-04 10:30" separates date and time with a space; a zone name has no digits
    # before its slash (Europe/Berlin, America/Argentina/Buenos_Aires) or is UTC.
    if local_part and (zone_name == "UTC" or re.match(r"^[A-Za-z_]+/[A-Za-z_/+-]+$", zone_name)):
        return _with_zone(local_part, zone_name, text)
    try:
        value = datetime.fromisoformat(cleaned.replace("z", "Z"))
    except ValueError as e:
        raise ValueError(f"invalid time {text!r}: write it as {EXAMPLES}") from e
    if value.tzinfo is None:
        raise ValueError(
            f"time {text!r} has no time zone, so it is ambiguous: add an offset or a zone, as in {EXAMPLES}"
        )
    return value.astimezone(UTC)


def _with_zone(local_text: str, zone_name: str, original: str) -> datetime:
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise ValueError(
            f"unknown time zone {zone_name!r} in {original!r}: use an Area/City name"
        ) from e
    try:
        local = datetime.fromisoformat(local_text)
    except ValueError as e:
        raise ValueError(f"invalid time {original!r}: write it as {EXAMPLES}") from e
    if local.tzinfo is not None:
        raise ValueError(f"time {original!r} has both an offset and a zone; give one of them")
    early = local.replace(tzinfo=zone, fold=0)
    late = local.replace(tzinfo=zone, fold=1)
    # A skipped local time does not survive a round trip through UTC; check it first,
    # because in a gap the two folds also differ, as they do in a repeated hour.
    round_trip = early.astimezone(UTC).astimezone(zone).replace(tzinfo=None)
    if round_trip != local:
        raise ValueError(f"time {original!r} does not exist in {zone_name} (the clocks go forward)")
    if early.utcoffset() != late.utcoffset():
        raise ValueError(
            f"time {original!r} occurs twice in {zone_name} (the clocks go back): give an explicit offset"
        )
    return early.astimezone(UTC)
