"""The incident desk on a real store, with a clock the tests move."""

from __future__ import annotations

from pathlib import Path

import pytest

from breakglass.config.model import PlatformConfig
from breakglass.errors import NotFoundError, UserInputError
from breakglass.incidents.desk import IncidentDesk
from breakglass.incidents.timeline import build_timeline, export_csv, export_jsonl
from breakglass.store import audit as audit_repo
from breakglass.store import open_store
from tests.fakeclock import ManualClock

KEY = b"k" * 32


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def desk(tmp_path: Path, clock: ManualClock) -> IncidentDesk:
    config = PlatformConfig.model_validate(
        {
            # Port 9 on loopback has no listener; these tests never send.
            "channels": {"hook": {"kind": "webhook", "url": "http://127.0.0.1:9/hook"}},
            "contacts": [
                {"id": "alice", "name": "Alice", "level": 1, "channels": ["hook"]},
                {"id": "bob", "name": "Bob", "level": 2, "channels": ["hook"]},
            ],
            "incidents": {"escalation": {1: ["alice"], 2: ["bob"]}},
        }
    )
    return IncidentDesk(
        open_store(f"sqlite:///{tmp_path / 'state.db'}"), clock, "carol", config, KEY
    )


def test_ids_unique_within_one_second(desk: IncidentDesk) -> None:
    ids = [desk.open(title=f"outage {index}", severity="P2", services=[]).id for index in range(3)]
    assert ids == ["INC-20261204-001", "INC-20261204-002", "INC-20261204-003"]


def test_open_validates_input(desk: IncidentDesk) -> None:
    with pytest.raises(UserInputError, match="invalid severity 'P7'"):
        desk.open(title="x", severity="P7", services=[])
    with pytest.raises(UserInputError, match="needs a title"):
        desk.open(title="  ", severity="P1", services=[])
    with pytest.raises(UserInputError, match="commander 'zed' is not a contact"):
        desk.open(title="x", severity="P1", services=[], commander="zed")


def test_ack_only_once(desk: IncidentDesk, clock: ManualClock) -> None:
    incident = desk.open(title="db down", severity="P0", services=["db"])
    clock.advance(minutes=3)
    acked, first = desk.acknowledge(incident.id)
    assert first is True
    assert acked.acknowledged_by == "carol"
    clock.advance(minutes=1)
    again, second = desk.acknowledge(incident.id)
    assert second is False
    assert again.acknowledged_at == acked.acknowledged_at


def test_severity_change_rearms(desk: IncidentDesk, clock: ManualClock) -> None:
    incident = desk.open(title="slow", severity="P2", services=[])
    clock.advance(hours=3)
    raised = desk.set_severity(incident.id, "P0", reason="payments failing")
    assert raised.clock_started_at == clock.now()
    assert desk.view(raised).deadline_lines()[0] == "response due in 15 min"
    with pytest.raises(UserInputError, match="already P0"):
        desk.set_severity(incident.id, "p0")


def test_status_flow_and_mitigation(desk: IncidentDesk, clock: ManualClock) -> None:
    incident = desk.open(title="cdn", severity="P1", services=[])
    desk.set_status(incident.id, "identified")
    clock.advance(minutes=20)
    monitoring = desk.set_status(incident.id, "monitoring")
    assert monitoring.mitigated_at == clock.now()
    clock.advance(minutes=10)
    resolved = desk.resolve(incident.id, summary="purged the cache")
    assert resolved.resolved_at == clock.now()
    assert resolved.mitigated_at == monitoring.mitigated_at
    assert resolved.summary == "purged the cache"
    with pytest.raises(UserInputError, match="invalid status 'fixed'"):
        desk.set_status(incident.id, "fixed")
    reopened = desk.set_status(incident.id, "investigating")
    assert reopened.resolved_at is None


def test_commander_handover(desk: IncidentDesk) -> None:
    incident = desk.open(title="x", severity="P1", services=[], commander="alice")
    handed = desk.set_commander(incident.id, "bob")
    assert handed.commander == "bob"
    with pytest.raises(UserInputError, match="already the commander"):
        desk.set_commander(incident.id, "bob")


def test_open_incidents_listed_first(desk: IncidentDesk, clock: ManualClock) -> None:
    old = desk.open(title="old", severity="P0", services=[])
    desk.resolve(old.id, summary=None)
    minor = desk.open(title="minor", severity="P3", services=[])
    major = desk.open(title="major", severity="P1", services=[])
    assert [view.incident.id for view in desk.list_views()] == [major.id, minor.id]
    assert [view.incident.id for view in desk.list_views(include_resolved=True)] == [
        major.id,
        minor.id,
        old.id,
    ]


def test_every_change_on_timeline_and_audit(desk: IncidentDesk, clock: ManualClock) -> None:
    incident = desk.open(title="api", severity="P1", services=["api"])
    desk.acknowledge(incident.id, note="looking")
    desk.note(incident.id, "error rate 40%")
    item = desk.add_action(incident.id, "add an alert", owner="bob", due="2026-12-11")
    desk.finish_action(incident.id, item)
    kinds = [entry.kind for entry in build_timeline(desk.store, incident.id)]
    assert kinds == ["opened", "acknowledged", "note", "action_added", "action_done"]
    with desk.store.read() as connection:
        audited = [entry.kind for entry in audit_repo.iter_entries(connection)]
    assert audited == [
        "incident_opened",
        "incident_acknowledged",
        "incident_note",
        "incident_action_added",
        "incident_action_done",
    ]
    assert desk.action_items(incident.id)[0].done_by == "carol"


def test_export_formats(desk: IncidentDesk) -> None:
    incident = desk.open(title="api", severity="P1", services=[])
    desk.note(incident.id, 'quote " and, comma')
    items = build_timeline(desk.store, incident.id)
    lines = export_jsonl(items).splitlines()
    assert len(lines) == 2
    csv_text = export_csv(items)
    assert csv_text.splitlines()[0] == "at,source,kind,actor,message,data"
    assert '"quote "" and, comma"' in csv_text


def test_unknown_incident_named(desk: IncidentDesk) -> None:
    with pytest.raises(NotFoundError, match="incident INC-20261204-404 not found"):
        desk.acknowledge("INC-20261204-404")


def test_action_done_once(desk: IncidentDesk) -> None:
    incident = desk.open(title="api", severity="P2", services=[])
    item = desk.add_action(incident.id, "add an alert", owner=None, due=None)
    desk.finish_action(incident.id, item)
    with pytest.raises(UserInputError, match="was already done by carol"):
        desk.finish_action(incident.id, item)


def test_status_case_insensitive(desk: IncidentDesk) -> None:
    incident = desk.open(title="api", severity="P2", services=[])
    assert desk.set_status(incident.id, "Monitoring").status == "monitoring"
