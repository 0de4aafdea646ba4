"""The executor in-process: timeouts, retries, plans without side effects."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from breakglass.actions import registry
from breakglass.engine import service
from breakglass.engine.events import Event, EventBus
from breakglass.engine.executor import RunOptions, RunOutcome
from breakglass.engine.interaction import NoInteraction
from breakglass.engine.workspace import Workspace
from breakglass.errors import ExitCode
from breakglass.store import audit as audit_repo
from breakglass.store.records import RunState


@pytest.fixture(autouse=True)
def test_actions(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setitem(registry.BUILTIN, "test.stall", "tests.engine.slow_actions:Stall")
    monkeypatch.setitem(registry.BUILTIN, "test.flaky", "tests.engine.slow_actions:Flaky")
    registry.get_action.cache_clear()
    yield
    registry.get_action.cache_clear()


def workspace() -> Workspace:
    return Workspace.load()


def write(tmp_path: Path, steps: str, *, policy: str = "undo", name: str = "rb") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        f"apiVersion: breakglass/v1\nkind: Runbook\nmetadata: {{name: {name}}}\non_failure: {policy}\nsteps:\n{steps}"
    )
    return path


def run(path: Path, events: list[Event] | None = None) -> RunOutcome:
    bus = EventBus()
    if events is not None:
        bus.subscribe(events.append)
    return service.start_run(
        workspace(),
        str(path),
        {},
        options=RunOptions(yes=True),
        interaction=NoInteraction(),
        bus=bus,
    )


def test_plan_of_mutating_steps_leaves_no_trace(tmp_path: Path, httpserver: HTTPServer) -> None:
    marker = tmp_path / "touched"
    path = write(
        tmp_path,
        f"  - id: touch\n    action: shell.run\n    timeout: 5s\n    with: {{argv: [touch, '{marker}']}}\n"
        f"  - id: post\n    action: http.request\n    with: {{url: '{httpserver.url_for('/deploy')}', method: POST, json: {{a: 1}}}}\n"
        f"  - id: hook\n    action: notify.webhook\n    with: {{url: '{httpserver.url_for('/hook')}', payload: {{b: 2}}}}\n",
    )
    report = service.plan_run(workspace(), str(path), {})
    assert [step.id for step in report.steps] == ["touch", "post", "hook"]
    assert report.steps[1].summary.startswith(
        f"HTTP POST {httpserver.url_for('/deploy')} with body"
    )
    assert not marker.exists()
    assert httpserver.log == []
    with workspace().store.read() as connection:
        entries = list(audit_repo.iter_entries(connection))
    assert [entry.kind for entry in entries] == ["plan"]
    assert service.list_runs(workspace()) == []


def test_subprocess_group_killed_at_deadline(tmp_path: Path) -> None:
    grandchild_marker = tmp_path / "grandchild"
    path = write(
        tmp_path,
        "  - id: slow\n    action: shell.run\n    timeout: 500ms\n"
        f"    with: {{argv: [sh, -c, '(sleep 2; touch {grandchild_marker}) & sleep 5']}}\n",
    )
    outcome = run(path)
    assert outcome.state == RunState.ROLLED_BACK
    assert "did not finish within 500ms; its process group was killed" in outcome.steps[0]["note"]
    time.sleep(2.5)
    assert not grandchild_marker.exists()


def test_in_process_overrun_is_in_doubt_and_halts(tmp_path: Path) -> None:
    late = tmp_path / "late"
    after = tmp_path / "after"
    path = write(
        tmp_path,
        f"  - id: stall\n    action: test.stall\n    timeout: 200ms\n    with: {{seconds: 3, marker: '{late}'}}\n"
        f"  - id: next\n    action: shell.run\n    timeout: 5s\n    with: {{argv: [touch, '{after}']}}\n",
    )
    outcome = run(path)
    assert outcome.state == RunState.HALTED
    assert outcome.exit_code == ExitCode.FAILED
    assert outcome.reason.startswith("step stall overran its timeout and may still be running")
    assert outcome.steps[0]["status"] == "in doubt"
    assert not after.exists()
    resumed = service.resume_run(
        workspace(),
        outcome.run_id,
        options=RunOptions(),
        interaction=NoInteraction(),
        bus=EventBus(),
    )
    assert resumed.exit_code == ExitCode.IN_DOUBT


def test_temporary_failure_retried_then_succeeds(tmp_path: Path) -> None:
    counter = tmp_path / "count"
    path = write(
        tmp_path,
        "  - id: flaky\n    action: test.flaky\n    retries: {count: 3, backoff: 10ms}\n"
        f"    with: {{counter: '{counter}', fail_times: 2}}\n",
    )
    events: list[Event] = []
    outcome = run(path, events)
    assert outcome.state == RunState.SUCCEEDED
    assert counter.read_text() == "3"
    assert len([event for event in events if event.kind == "step_started"]) == 3
    journal = service.journal_of(workspace(), outcome.run_id)
    assert [entry.attempt for entry in journal if entry.kind.value == "step_ended"] == [1, 2, 3]


def test_permanent_failure_not_retried(tmp_path: Path) -> None:
    counter = tmp_path / "count"
    path = write(
        tmp_path,
        "  - id: flaky\n    action: test.flaky\n    retries: {count: 3, backoff: 10ms}\n"
        f"    with: {{counter: '{counter}', fail_times: 2, temporary: false}}\n",
    )
    outcome = run(path)
    assert outcome.state == RunState.ROLLED_BACK
    assert counter.read_text() == "1"


def test_http_503_retried_until_ok(tmp_path: Path, httpserver: HTTPServer) -> None:
    httpserver.expect_ordered_request("/flaky").respond_with_data("busy", status=503)
    httpserver.expect_ordered_request("/flaky").respond_with_json({"ok": True})
    path = write(
        tmp_path,
        f"  - id: call\n    action: http.request\n    retries: {{count: 2, backoff: 10ms}}\n    with: {{url: '{httpserver.url_for('/flaky')}'}}\n",
    )
    outcome = run(path)
    assert outcome.state == RunState.SUCCEEDED
    assert len(httpserver.log) == 2


def test_when_false_skips_and_undo_reads_own_outputs(tmp_path: Path) -> None:
    record = tmp_path / "record"
    path = write(
        tmp_path,
        "  - id: first\n    action: shell.run\n    timeout: 5s\n    with: {argv: [echo, previous-value]}\n"
        "    undo:\n      action: shell.run\n"
        f"      with: {{argv: [sh, -c, 'printf %s \"$1\" > {record}', undo, '{{{{ steps.first.outputs.stdout | trim }}}}']}}\n"
        "  - id: skipped\n    action: shell.run\n    timeout: 5s\n    when: 'false'\n    with: {argv: ['false']}\n"
        "  - id: boom\n    action: shell.run\n    timeout: 5s\n    with: {argv: ['false']}\n",
    )
    outcome = run(path)
    assert outcome.state == RunState.ROLLED_BACK
    assert [row["status"] for row in outcome.steps] == ["succeeded", "skipped", "failed"]
    assert outcome.steps[0]["undo"] == "succeeded"
    assert record.read_text() == "previous-value"


def test_summary_lists_what_did_not_run(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "  - id: ok\n    action: log.message\n    with: {message: fine}\n"
        "  - id: bad\n    action: shell.run\n    timeout: 5s\n    with: {argv: ['false']}\n"
        "  - id: later\n    action: log.message\n    with: {message: never}\n"
        "  - id: cleanup\n    action: log.message\n    always: true\n    with: {message: cleanup}\n",
        policy="halt",
    )
    outcome = run(path)
    assert outcome.state == RunState.HALTED
    assert (
        outcome.reason
        == "step bad failed: false exited with 1 (expected [0]); halted, resumable after a fix"
    )
    assert [(row["id"], row["status"]) for row in outcome.steps] == [
        ("ok", "succeeded"),
        ("bad", "failed"),
        ("later", "not run"),
        ("cleanup", "succeeded"),
    ]
    assert os.environ.get("BREAKGLASS_ACTOR") == "tester"
    record = service.get_run(workspace(), outcome.run_id)
    assert record.actor == "tester"
