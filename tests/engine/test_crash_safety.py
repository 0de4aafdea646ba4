"""Crash safety for real: `breakglass run` is SIGKILLed at several points and resumed.

The crash points between commits come from BREAKGLASS_TEST_CRASH_AFTER, which kills the
process with SIGKILL right after the named journal entry is committed; the crash inside
a step is a SIGKILL sent from here while the step's child process sleeps.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from tests.conftest import Cli
from tests.processes import LEASE_CONFIG, read_markers, start_process, wait_until

pytestmark = pytest.mark.slow

RUNBOOK = """\
apiVersion: breakglass/v1
kind: Runbook
metadata: {{name: crashy}}
locks: [crash-test]
steps:
  - id: one
    action: shell.run
    timeout: 10s
    with: {{argv: [sh, -c, "echo one >> {side}"]}}
  - id: two
    action: shell.run
    timeout: 20s
    with: {{argv: [sh, -c, "echo two-start >> {side}; sleep {sleep}; echo two-end >> {side}"]}}
  - id: three
    action: shell.run
    timeout: 10s
    with: {{argv: [sh, -c, "echo three >> {side}"]}}
"""


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "breakglass.yaml").write_text(LEASE_CONFIG)
    side = tmp_path / "side.txt"
    runbook = tmp_path / "crashy.yaml"
    runbook.write_text(RUNBOOK.format(side=side, sleep="0"))
    return runbook, side


def run_state(cli: Cli) -> str:
    result = cli("runs", "--output", "json")
    [run] = json.loads(result.stdout)
    return str(run["state"])


def wait_for_lease_expiry() -> None:
    time.sleep(1.3)


@pytest.mark.parametrize(
    ("crash_after", "expected"),
    [
        ("run_created:", ["one", "two-start", "two-end", "three"]),
        ("run_started:", ["one", "two-start", "two-end", "three"]),
        ("step_ended:one", ["one", "two-start", "two-end", "three"]),
        ("step_ended:two", ["one", "two-start", "two-end", "three"]),
    ],
)
def test_crash_between_steps_resumes_once(
    cli: Cli, setup: tuple[Path, Path], crash_after: str, expected: list[str]
) -> None:
    runbook, side = setup
    crashed = cli("run", str(runbook), env={"BREAKGLASS_TEST_CRASH_AFTER": crash_after})
    assert crashed.code == -signal.SIGKILL
    wait_for_lease_expiry()
    assert run_state(cli) == "interrupted"
    [run] = json.loads(cli("runs", "--output", "json").stdout)
    resumed = cli("resume", run["id"])
    assert resumed.code == 0, resumed.output
    assert read_markers(side) == expected
    assert run_state(cli) == "succeeded"


def test_crash_after_step_started_needs_decision(cli: Cli, setup: tuple[Path, Path]) -> None:
    runbook, side = setup
    crashed = cli("run", str(runbook), env={"BREAKGLASS_TEST_CRASH_AFTER": "step_started:one"})
    assert crashed.code == -signal.SIGKILL
    assert read_markers(side) == []
    wait_for_lease_expiry()
    [run] = json.loads(cli("runs", "--output", "json").stdout)
    blocked = cli("resume", run["id"])
    assert blocked.code == 4
    assert "step one started and never ended and is not idempotent" in blocked.output
    assert run_state(cli) == "needs_decision"
    assert read_markers(side) == []
    retried = cli("resume", run["id"], "--retry-step", "one")
    assert retried.code == 0, retried.output
    assert read_markers(side) == ["one", "two-start", "two-end", "three"]
    journal = json.loads(cli("runs", "show", run["id"], "--output", "json").stdout)["journal"]
    decisions = [entry for entry in journal if entry["kind"] == "operator_decision"]
    assert decisions[0]["actor"] == "tester"
    assert decisions[0]["data"] == {"decision": "retry"}


def test_sigkill_inside_step_left_to_operator(cli: Cli, tmp_path: Path) -> None:
    side = tmp_path / "side.txt"
    runbook = tmp_path / "crashy.yaml"
    runbook.write_text(RUNBOOK.format(side=side, sleep="1"))
    (tmp_path / "breakglass.yaml").write_text(LEASE_CONFIG)
    process = start_process(cli, "run", str(runbook), capture_output=False)
    try:
        wait_until(lambda: "two-start" in read_markers(side), "step two started")
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=10)
    # The step's own child lives in its own session and finishes its work.
    wait_until(lambda: "two-end" in read_markers(side), "step two's child ended", timeout=10)
    wait_for_lease_expiry()
    assert run_state(cli) == "interrupted"
    [run] = json.loads(cli("runs", "--output", "json").stdout)
    blocked = cli("resume", run["id"])
    assert blocked.code == 4
    assert "--skip-step two" in blocked.output
    skipped = cli("resume", run["id"], "--skip-step", "two")
    assert skipped.code == 0, skipped.output
    assert read_markers(side) == ["one", "two-start", "two-end", "three"]


def test_resume_refused_while_lease_live(
    cli: Cli, setup: tuple[Path, Path], tmp_path: Path
) -> None:
    runbook, _ = setup
    # A long lease: the killed run still looks alive for the whole test.
    (tmp_path / "breakglass.yaml").write_text("lease_ttl: 60s\nlease_renew_every: 10s\n")
    cli("run", str(runbook), env={"BREAKGLASS_TEST_CRASH_AFTER": "step_ended:one"})
    assert run_state(cli) == "running"
    [run] = json.loads(cli("runs", "--output", "json").stdout)
    refused = cli("resume", run["id"])
    assert refused.code == 2
    assert "still running in another process" in refused.stderr


def test_idempotent_step_rerun_after_crash(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "breakglass.yaml").write_text(LEASE_CONFIG)
    side = tmp_path / "side.txt"
    runbook = tmp_path / "idem.yaml"
    runbook.write_text(
        "apiVersion: breakglass/v1\nkind: Runbook\nmetadata: {name: idem}\nsteps:\n"
        f"  - id: mark\n    action: shell.run\n    idempotent: true\n    timeout: 5s\n"
        f"    with: {{argv: [sh, -c, 'echo mark > {side}']}}\n"
    )
    crashed = cli("run", str(runbook), env={"BREAKGLASS_TEST_CRASH_AFTER": "step_started:mark"})
    assert crashed.code == -signal.SIGKILL
    wait_for_lease_expiry()
    [run] = json.loads(cli("runs", "--output", "json").stdout)
    resumed = cli("resume", run["id"])
    assert resumed.code == 0, resumed.output
    assert "re-running it because it is idempotent" in cli("runs", "show", run["id"]).stdout
    assert read_markers(side) == ["mark"]
