"""Locks declared by runbooks are leases: two racing processes, exactly one proceeds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import Cli
from tests.processes import race_runs, start_process

pytestmark = pytest.mark.slow

RUNBOOK = """\
apiVersion: breakglass/v1
kind: Runbook
metadata: {{name: locked}}
inputs:
  target: {{type: string, default: backend}}
locks: ["k8s:deployment/{{{{ inputs.target }}}}"]
steps:
  - id: hold
    action: shell.run
    timeout: 20s
    with: {{argv: [sh, -c, "echo $$ >> {side}; sleep 2"]}}
"""


def test_racing_runs_exactly_one_proceeds(cli: Cli, tmp_path: Path) -> None:
    side = tmp_path / "side.txt"
    runbook = tmp_path / "locked.yaml"
    runbook.write_text(RUNBOOK.format(side=side))
    results = race_runs(cli, runbook)
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 5], results
    loser = next(result for result in results if result[0] == 5)
    assert "lock k8s:deployment/backend is held by run RUN-" in loser[2]
    assert "Traceback" not in loser[2]
    assert len(side.read_text().split()) == 1
    runs = json.loads(cli("runs", "--output", "json").stdout)
    assert [run["state"] for run in runs] == ["succeeded"]


def test_different_targets_do_not_conflict(cli: Cli, tmp_path: Path) -> None:
    side = tmp_path / "side.txt"
    runbook = tmp_path / "locked.yaml"
    runbook.write_text(RUNBOOK.format(side=side))
    racers = [
        start_process(cli, "run", str(runbook), "-i", f"target={name}")
        for name in ("backend", "frontend")
    ]
    results = [(racer.wait(timeout=60), *racer.communicate()) for racer in racers]
    assert [code for code, _, _ in results] == [0, 0], results


def test_wait_flag_queues_behind_holder(cli: Cli, tmp_path: Path) -> None:
    side = tmp_path / "side.txt"
    runbook = tmp_path / "locked.yaml"
    runbook.write_text(RUNBOOK.format(side=side))
    first = start_process(cli, "run", str(runbook), capture_output=False)
    try:
        # Give the first run time to take the lock before the second requests it.
        while not side.exists():
            assert first.poll() is None
        second = cli("run", str(runbook), "--wait", "--wait-timeout", "30")
    finally:
        first.wait(timeout=60)
    assert second.code == 0, second.output
    assert "waiting (--wait)" in second.stderr
    assert len(side.read_text().split()) == 2
