"""`tick`, `watch` and the run hooks, from the command line against a local webhook peer."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from tests.conftest import Cli

FAILING = """\
apiVersion: breakglass/v1
kind: Runbook
metadata: {name: failing}
steps:
  - id: broken
    action: shell.run
    timeout: 5s
    with: {argv: ['false']}
"""

GATED = """\
apiVersion: breakglass/v1
kind: Runbook
metadata: {name: gated}
steps:
  - id: restore
    action: log.message
    confirm: {message: "Restore the database?"}
    with: {message: restoring}
"""


@pytest.fixture
def peer() -> Iterator[HTTPServer]:
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.expect_request("/hook", method="POST").respond_with_data("ok")
    server.start()
    yield server
    server.clear()
    server.stop()


def write_config(tmp_path: Path, peer: HTTPServer) -> None:
    (tmp_path / "breakglass.yaml").write_text(
        "lease_ttl: 2s\nlease_renew_every: 500ms\n"
        f"channels:\n  hook: {{kind: webhook, url: '{peer.url_for('/hook')}', retries: 0}}\n"
        "contacts:\n"
        "  - {id: alice, name: Alice, level: 1, channels: [hook]}\n"
        "  - {id: bob, name: Bob, level: 2, channels: [hook]}\n"
        "incidents:\n  escalation: {1: [alice], 2: [bob]}\n"
    )


def keys(peer: HTTPServer) -> list[str]:
    return [json.loads(request.get_data())["dedup_key"] for request, _ in peer.log]


def test_tick_pages_once(cli: Cli, tmp_path: Path, peer: HTTPServer) -> None:
    write_config(tmp_path, peer)
    incident_id = json.loads(
        cli("incident", "open", "api down", "-s", "P0", "--output", "json").stdout
    )["id"]
    first = cli("tick")
    assert first.code == 0, first.output
    assert f"sent {incident_id}:1:page to alice" in first.stdout
    assert f"sent {incident_id}:2:page to bob" in first.stdout
    assert cli("tick").stdout == ""
    assert keys(peer) == [f"{incident_id}:1:page", f"{incident_id}:2:page"]


def test_two_watchers_page_once(cli: Cli, tmp_path: Path, peer: HTTPServer) -> None:
    write_config(tmp_path, peer)
    incident_id = json.loads(
        cli("incident", "open", "api down", "-s", "P0", "--output", "json").stdout
    )["id"]
    watchers = [
        subprocess.Popen(
            cli.command("watch", "--interval", "200ms"),
            cwd=tmp_path,
            env=cli.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        deadline = time.monotonic() + 20
        while len(peer.log) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.5)
    finally:
        for watcher in watchers:
            watcher.send_signal(signal.SIGINT)
        outputs = [watcher.communicate(timeout=30) for watcher in watchers]
    assert sorted(keys(peer)) == [f"{incident_id}:1:page", f"{incident_id}:2:page"]
    assert any("another sender holds the sender lease" in out for out, _ in outputs)
    assert all("stopped watching" in err for _, err in outputs)


def test_failed_run_escalates_incident(cli: Cli, tmp_path: Path, peer: HTTPServer) -> None:
    write_config(tmp_path, peer)
    incident_id = json.loads(
        cli("incident", "open", "db down", "-s", "P2", "--output", "json").stdout
    )["id"]
    cli("incident", "ack", incident_id)
    runbook = tmp_path / "failing.yaml"
    runbook.write_text(FAILING)
    ran = cli("run", str(runbook), "--incident", incident_id)
    assert ran.code == 1
    shown = json.loads(cli("incident", "show", incident_id, "--output", "json").stdout)
    assert shown["escalation_level"] == 1
    assert any(
        item["message"].startswith("escalated to level 1: run RUN-") for item in shown["timeline"]
    )
    assert keys(peer) == [f"{incident_id}:1:page"]
    # The watcher's page of level 1 has the same key, so it is not sent again.
    assert cli("tick").stdout == ""


def test_paused_run_notifies_commander(cli: Cli, tmp_path: Path, peer: HTTPServer) -> None:
    write_config(tmp_path, peer)
    opened = cli(
        "incident", "open", "db down", "-s", "P2", "--commander", "bob", "--output", "json"
    )
    incident_id = json.loads(opened.stdout)["id"]
    runbook = tmp_path / "gated.yaml"
    runbook.write_text(GATED)
    paused = cli("run", str(runbook), "--incident", incident_id)
    assert paused.code == 3
    [request] = [json.loads(request.get_data()) for request, _ in peer.log]
    assert request["dedup_key"].endswith(":restore:approval")
    assert request["contact"]["id"] == "bob"
    assert "waits for approval of step restore" in request["summary"]


def test_ack_and_resolve_close_pagerduty_pages(cli: Cli, tmp_path: Path, peer: HTTPServer) -> None:
    peer.expect_request("/v2/enqueue", method="POST").respond_with_data("{}", status=202)
    (tmp_path / "breakglass.yaml").write_text(
        "channels:\n"
        f"  pager: {{kind: pagerduty, routing_key: 'env:BG_PD_KEY', endpoint: '{peer.url_for('/v2/enqueue')}', retries: 0}}\n"
        "contacts:\n  - {id: alice, name: Alice, level: 1, channels: [pager]}\n"
        "incidents:\n  escalation: {1: [alice]}\n"
    )
    env = {"BG_PD_KEY": "routing-key-0123456789"}
    incident_id = json.loads(
        cli("incident", "open", "api down", "-s", "P1", "--output", "json", env=env).stdout
    )["id"]
    assert cli("tick", env=env).code == 0
    assert cli("incident", "ack", incident_id, env=env).code == 0
    assert cli("incident", "resolve", incident_id, env=env).code == 0
    events = [json.loads(request.get_data()) for request, _ in peer.log]
    assert [event["event_action"] for event in events] == ["trigger", "acknowledge", "resolve"]
    assert {event["dedup_key"] for event in events} == {f"{incident_id}:1:page"}
    assert all(event["routing_key"] == "routing-key-0123456789" for event in events)
    shown = json.loads(cli("incident", "show", incident_id, "--output", "json", env=env).stdout)
    kinds = [item["kind"] for item in shown["timeline"]]
    assert "pagerduty_acknowledge" in kinds
    assert "pagerduty_resolve" in kinds


def test_escalate_past_last_staffed_level_warns(cli: Cli, tmp_path: Path, peer: HTTPServer) -> None:
    write_config(tmp_path, peer)
    opened = cli("incident", "open", "checkout down", "--severity", "P2", "--output", "json")
    incident = json.loads(opened.stdout)["id"]
    for level in (1, 2):
        escalated = cli("incident", "escalate", incident)
        assert escalated.code == 0, escalated.output
        assert f"escalated to level {level}" in escalated.stdout
    unstaffed = cli("incident", "escalate", incident)
    assert unstaffed.code == 1
    assert "escalated to level 3" in unstaffed.stdout
    assert "nobody was paged, because escalation level 3 has no contacts" in unstaffed.stderr
