from __future__ import annotations

from datetime import UTC, datetime, timedelta

from breakglass.config.incidents import DEFAULT_SEVERITIES, Severity
from breakglass.incidents.deadlines import deadlines, humanize
from breakglass.store.records import IncidentRecord

OPENED = datetime(2026, 12, 4, 3, 0, tzinfo=UTC)


def incident(**values: object) -> IncidentRecord:
    base: dict[str, object] = {
        "id": "INC-20261204-001",
        "title": "checkout down",
        "severity": "P0",
        "status": "investigating",
        "services": [],
        "commander": None,
        "opened_at": OPENED,
        "opened_by": "alice",
        "clock_started_at": OPENED,
        "updated_at": OPENED,
    }
    return IncidentRecord(**{**base, **values})


def texts(record: IncidentRecord, now: datetime) -> list[str]:
    return [
        deadline.describe(now)
        for deadline in deadlines(record, DEFAULT_SEVERITIES[Severity(record.severity)])
    ]


def test_due_in_minutes() -> None:
    assert texts(incident(), OPENED + timedelta(minutes=11)) == [
        "response due in 4 min",
        "resolution due in 49 min",
        "next update due in 19 min",
    ]


def test_breached_says_how_long_ago() -> None:
    lines = texts(incident(), OPENED + timedelta(hours=1, minutes=12))
    assert lines[0] == "response target breached 57 min ago"
    assert lines[1] == "resolution target breached 12 min ago"


def test_met_targets_say_when() -> None:
    record = incident(
        acknowledged_at=OPENED + timedelta(minutes=20), resolved_at=OPENED + timedelta(minutes=50)
    )
    assert texts(record, OPENED + timedelta(hours=2)) == [
        "acknowledged at 2026-12-04T03:20+00:00, 5 min after the response target",
        "resolved at 2026-12-04T03:50+00:00",
    ]


def test_severity_change_rearms_clock() -> None:
    raised = OPENED + timedelta(hours=3)
    record = incident(severity="P0", clock_started_at=raised)
    assert texts(record, raised + timedelta(minutes=5))[0] == "response due in 10 min"


def test_p3_targets_in_hours() -> None:
    record = incident(severity="P3")
    assert texts(record, OPENED)[:2] == ["response due in 4 h", "resolution due in 3 d"]


def test_humanize_spans() -> None:
    assert [humanize(value) for value in (45, 240, 7500, 3 * 86400 + 7200)] == [
        "45 s",
        "4 min",
        "2 h 5 min",
        "3 d 2 h",
    ]


def test_resolution_ends_unacknowledged_response() -> None:
    record = incident(status="resolved", resolved_at=OPENED + timedelta(minutes=40))
    lines = texts(record, OPENED + timedelta(hours=2))
    assert lines[0] == (
        "resolved without an acknowledgement at 2026-12-04T03:40+00:00, "
        "25 min after the response target"
    )
    assert lines[1] == "resolved at 2026-12-04T03:40+00:00"
