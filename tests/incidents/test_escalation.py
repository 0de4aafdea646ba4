"""When each page and notification falls due, over simulated hours."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from breakglass.config.incidents import IncidentSettings
from breakglass.incidents.escalation import due_notifications
from breakglass.store.records import IncidentRecord

OPENED = datetime(2026, 12, 4, 3, 0, tzinfo=UTC)
SETTINGS = IncidentSettings()


def incident(**values: object) -> IncidentRecord:
    base: dict[str, object] = {
        "id": "INC-1",
        "title": "api down",
        "severity": "P1",
        "status": "investigating",
        "services": [],
        "commander": None,
        "opened_at": OPENED,
        "opened_by": "alice",
        "clock_started_at": OPENED,
        "updated_at": OPENED,
    }
    return IncidentRecord(**{**base, **values})


def keys(
    record: IncidentRecord, minutes: float, *, updates: bool = False, **kwargs: object
) -> list[str]:
    """Return the due keys; update reminders only when `updates` is set."""
    now = OPENED + timedelta(minutes=minutes)
    found = [due.dedup_key for due in due_notifications(record, SETTINGS, now, **kwargs)]  # type: ignore[arg-type]
    return [key for key in found if updates or ":update_due:" not in key]


def test_p1_escalates_each_response_interval() -> None:
    record = incident()
    assert keys(record, 0) == ["INC-1:1:page"]
    assert keys(record, 29) == ["INC-1:1:page"]
    assert keys(record, 30) == ["INC-1:1:page", "INC-1:2:page"]
    assert keys(record, 61) == ["INC-1:1:page", "INC-1:2:page", "INC-1:3:page"]


def test_level_capped_at_four() -> None:
    pages = [key for key in keys(incident(), 180) if key.endswith(":page")]
    assert pages == ["INC-1:1:page", "INC-1:2:page", "INC-1:3:page", "INC-1:4:page"]


def test_p0_pages_two_levels_at_once() -> None:
    assert keys(incident(severity="P0"), 0) == ["INC-1:1:page", "INC-1:2:page"]
    assert keys(incident(severity="P0"), 15) == ["INC-1:1:page", "INC-1:2:page", "INC-1:3:page"]


def test_acknowledged_never_paged() -> None:
    record = incident(acknowledged_at=OPENED + timedelta(minutes=30))
    assert keys(record, 30) == []
    assert keys(record, 90) == []


def test_resolution_breach_notifies_next_level() -> None:
    record = incident(acknowledged_at=OPENED, escalation_level=1)
    assert keys(record, 240) == []
    [breach] = [
        due
        for due in due_notifications(record, SETTINGS, OPENED + timedelta(minutes=241))
        if due.reason != "update_due"
    ]
    assert breach.dedup_key == "INC-1:2:resolution_breach"
    assert breach.kind == "notify"
    assert breach.summary == "P1 INC-1 missed its resolution target of 4 h: api down"


def test_update_reminder_per_window() -> None:
    record = incident(acknowledged_at=OPENED, commander="alice")
    assert keys(record, 59, updates=True) == []
    assert keys(record, 60, updates=True) == [
        "INC-1:commander:update_due:2026-12-04T04:00:00+00:00"
    ]
    updated = OPENED + timedelta(minutes=70)
    assert keys(record, 100, updates=True, last_update=updated) == []
    assert keys(record, 130, updates=True, last_update=updated) == [
        "INC-1:commander:update_due:2026-12-04T05:10:00+00:00"
    ]


def test_severity_change_rearms_pages() -> None:
    raised = OPENED + timedelta(hours=5)
    record = incident(severity="P0", clock_started_at=raised, escalation_level=1)
    now_minutes = 5 * 60 + 1
    assert keys(record, now_minutes)[:2] == ["INC-1:1:page", "INC-1:2:page"]
    assert "INC-1:3:page" not in keys(record, now_minutes)


def test_resolved_is_silent() -> None:
    assert keys(incident(status="resolved", resolved_at=OPENED), 600) == []


def test_update_reminder_without_commander_goes_to_level_one() -> None:
    record = incident(acknowledged_at=OPENED)
    [reminder] = due_notifications(record, SETTINGS, OPENED + timedelta(minutes=60))
    assert reminder.dedup_key == "INC-1:1:update_due:2026-12-04T04:00:00+00:00"
    assert reminder.level == 1
