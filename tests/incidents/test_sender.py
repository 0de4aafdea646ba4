"""The sender against a real local webhook peer, over simulated hours."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from breakglass.config.model import PlatformConfig
from breakglass.incidents import channels
from breakglass.incidents.desk import IncidentDesk
from breakglass.incidents.sender import Sender
from breakglass.incidents.timeline import build_timeline
from breakglass.store import Store, open_store
from tests.fakeclock import ManualClock

KEY = b"k" * 32


class Died(Exception):
    """Stands for the sender process dying at a crash point."""


@pytest.fixture
def peer() -> Iterator[HTTPServer]:
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.expect_request("/hook", method="POST").respond_with_data("ok", status=200)
    server.start()
    yield server
    server.clear()
    server.stop()


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(channels, "BACKOFF_SECONDS", 0.01)


def make_config(peer: HTTPServer) -> PlatformConfig:
    hook = {"kind": "webhook", "url": peer.url_for("/hook"), "retries": 0, "timeout": "2s"}
    # Port 9 (discard) on loopback has no listener: a peer that is down.
    down = {"kind": "webhook", "url": "http://127.0.0.1:9/hook", "retries": 0, "timeout": "1s"}
    return PlatformConfig.model_validate(
        {
            "channels": {"hook": hook, "down": down},
            "contacts": [
                {"id": "alice", "name": "Alice", "level": 1, "channels": ["hook"]},
                {"id": "bob", "name": "Bob", "level": 2, "channels": ["down", "hook"]},
                {"id": "carol", "name": "Carol", "level": 3, "channels": ["hook"]},
                {"id": "dave", "name": "Dave", "level": 4, "channels": ["down"]},
            ],
            "incidents": {"escalation": {1: ["alice"], 2: ["bob"], 3: ["carol"], 4: ["dave"]}},
        }
    )


def pages(labels: list[str]) -> list[str]:
    """Drop update reminders, which fall due hourly whatever else a test is about."""
    return [label for label in labels if ":update_due:" not in label]


class Rig:
    def __init__(self, tmp_path: Path, peer: HTTPServer) -> None:
        self.clock = ManualClock()
        self.config = make_config(peer)
        self.store: Store = open_store(f"sqlite:///{tmp_path / 'state.db'}")
        self.desk = IncidentDesk(self.store, self.clock, "oncall", self.config, KEY)
        self.peer = peer
        self.tmp_path = tmp_path

    def sender(self, owner: str = "sender-a", crash_at: str | None = None) -> Sender:
        def crash(point: str) -> None:
            if point == crash_at:
                raise Died(point)

        return Sender(
            self.store,
            self.clock,
            self.config,
            "watcher",
            KEY,
            self.tmp_path,
            owner,
            crash_hook=crash,
        )

    def received(self) -> list[dict[str, Any]]:
        return [json.loads(request.get_data()) for request, _ in self.peer.log]

    def keys(self) -> list[str]:
        return [payload["dedup_key"] for payload in self.received()]


@pytest.fixture
def rig(tmp_path: Path, peer: HTTPServer) -> Rig:
    return Rig(tmp_path, peer)


def test_pages_escalate_each_interval(rig: Rig) -> None:
    incident = rig.desk.open(title="api down", severity="P1", services=[])
    sender = rig.sender()
    assert sender.tick().sent == [f"{incident.id}:1:page to alice"]
    assert sender.tick().sent == []
    rig.clock.advance(minutes=30)
    assert sender.tick().sent == [f"{incident.id}:2:page to bob"]
    assert rig.keys() == [f"{incident.id}:1:page", f"{incident.id}:2:page"]
    assert rig.desk.get(incident.id).escalation_level == 2
    messages = [item.message for item in build_timeline(rig.store, incident.id)]
    assert any(
        message.startswith("page sent to bob via hook after failures on down: ")
        for message in messages
    )
    assert "escalated to level 2" in messages


def test_ack_stops_paging(rig: Rig) -> None:
    incident = rig.desk.open(title="api down", severity="P1", services=[])
    sender = rig.sender()
    sender.tick()
    rig.clock.advance(minutes=30)
    # Acknowledged in the same second as the deadline, before the pass runs.
    rig.desk.acknowledge(incident.id)
    assert sender.tick().sent == []
    rig.clock.advance(hours=2)
    assert pages(sender.tick().sent) == []
    assert pages(rig.keys()) == [f"{incident.id}:1:page"]


def test_ack_checked_right_before_send(rig: Rig) -> None:
    incident = rig.desk.open(title="api down", severity="P1", services=[])
    sender = rig.sender()
    original = sender.crash_hook

    def ack_meanwhile(point: str) -> None:
        if point == "notification_pending":
            rig.desk.acknowledge(incident.id)
        original(point)

    sender.crash_hook = ack_meanwhile
    report = sender.tick()
    assert report.sent == []
    assert report.skipped == [f"{incident.id}:1:page to alice"]
    assert rig.received() == []


def test_restart_after_send_resends_once(rig: Rig) -> None:
    incident = rig.desk.open(title="api down", severity="P1", services=[])
    with pytest.raises(Died):
        rig.sender(owner="first", crash_at="notification_sent").tick()
    # The dead sender's lease must lapse before another sender takes over.
    rig.clock.advance(seconds=rig.config.lease_ttl + 1)
    second = rig.sender(owner="second")
    assert second.tick().sent == [f"{incident.id}:1:page to alice"]
    assert second.tick().sent == []
    assert rig.keys() == [f"{incident.id}:1:page", f"{incident.id}:1:page"]
    assert rig.received()[1]["dedup_key"] == rig.received()[0]["dedup_key"]
    messages = [item.message for item in build_timeline(rig.store, incident.id)]
    assert any(
        "page sent again after an interrupted send (same deduplication key) to alice" in m
        for m in messages
    )


def test_second_sender_stays_idle(rig: Rig) -> None:
    rig.desk.open(title="api down", severity="P1", services=[])
    first = rig.sender(owner="first")
    second = rig.sender(owner="second")
    assert len(first.tick().sent) == 1
    idle = second.tick()
    assert idle.idle_reason == "another sender holds the sender lease"
    assert idle.sent == []
    first.release()
    rig.clock.advance(minutes=30)
    assert len(pages(second.tick().sent)) == 1


def test_resolution_breach_notifies_not_pages(rig: Rig) -> None:
    incident = rig.desk.open(title="slow", severity="P1", services=[])
    rig.desk.acknowledge(incident.id)
    sender = rig.sender()
    rig.clock.advance(hours=4, minutes=1)
    report = sender.tick()
    assert pages(report.sent) == [f"{incident.id}:2:resolution_breach to bob"]
    assert all(payload["kind"] == "notify" for payload in rig.received())


def test_all_channels_down_recorded_and_retried(rig: Rig) -> None:
    incident = rig.desk.open(title="db down", severity="P1", services=[])
    rig.desk.set_severity(incident.id, "P0")
    sender = rig.sender()
    sender.tick()
    rig.clock.advance(minutes=45)
    report = sender.tick()
    assert f"{incident.id}:4:page to dave" in report.failed
    failures = [
        item
        for item in build_timeline(rig.store, incident.id)
        if item.kind == "notification_failed"
    ]
    assert failures[0].message.startswith(
        "page to dave failed on every channel, will retry on the next pass: "
    )
    assert f"{incident.id}:4:page to dave" in sender.tick().failed


def test_failed_run_escalates_and_approval_notifies(rig: Rig) -> None:
    incident = rig.desk.open(title="db down", severity="P2", services=[], commander="carol")
    rig.desk.acknowledge(incident.id)
    sender = rig.sender()
    level, report = sender.escalate(incident.id, reason="run RUN-1 of db-pitr ended failed")
    assert level == 1
    assert report.sent == [f"{incident.id}:1:page to alice"]
    asked = sender.notify_commander(
        incident.id,
        dedup_key=f"{incident.id}:RUN-1:restore:approval",
        reason="approval_needed",
        summary="run RUN-1 waits",
    )
    assert asked.sent == [f"{incident.id}:RUN-1:restore:approval to carol"]
