from __future__ import annotations

from datetime import UTC, datetime

import pytest

from breakglass.timeinput import parse_instant


def test_offset_normalized_to_utc() -> None:
    assert parse_instant("2026-12-04T10:30:00+01:00") == datetime(2026, 12, 4, 9, 30, tzinfo=UTC)


def test_z_accepted() -> None:
    assert parse_instant("2026-12-04T10:30:00Z") == datetime(2026, 12, 4, 10, 30, tzinfo=UTC)


def test_area_city_zone() -> None:
    assert parse_instant("2026-07-01T12:00:00 Europe/Berlin") == datetime(
        2026, 7, 1, 10, 0, tzinfo=UTC
    )


def test_naive_time_rejected() -> None:
    with pytest.raises(ValueError, match="has no time zone"):
        parse_instant("2026-12-04T10:30:00")


def test_dst_gap_rejected() -> None:
    with pytest.raises(ValueError, match="does not exist in Europe/Berlin"):
        parse_instant("2026-03-29T02:30:00 Europe/Berlin")


def test_dst_overlap_rejected() -> None:
    with pytest.raises(ValueError, match="occurs twice in Europe/Berlin"):
        parse_instant("2026-10-25T02:30:00 Europe/Berlin")


def test_unknown_zone_rejected() -> None:
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        parse_instant("2026-12-04T10:30:00 Mars/Olympus")


def test_offset_and_zone_together_rejected() -> None:
    with pytest.raises(ValueError, match="both an offset and a zone"):
        parse_instant("2026-12-04T10:30:00+01:00 Europe/Berlin")
