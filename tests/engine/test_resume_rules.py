"""What `resume` accepts and rejects: changed files and plans, expired approvals, bad choices.

Without a terminal, a gated step pauses the run in `awaiting_approval` (exit 3), which
makes a resumable run without signals or crashes.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from tests.conftest import Cli
from tests.processes import LEASE_CONFIG, kinds, pause_for_approval, read_markers, show

pytestmark = pytest.mark.slow

CONFIG = LEASE_CONFIG + "vars:\n  target: blue\n"
GATED_RUNBOOK = """\
apiVersion: breakglass/v1
kind: Runbook
metadata: {{name: gated}}
locks: [traffic]
steps:
  - id: prepare
    action: shell.run
    timeout: 5s
    with: {{argv: [sh, -c, "echo prepared >> {side}"]}}
  - id: switch
    action: shell.run
    timeout: 5s
    confirm: {{message: "Switch the traffic?"}}
    with: {{argv: [sh, -c, "echo switched-$0 >> {side}", "{{{{ config.vars.target }}}}"]}}
  - id: announce
    action: log.message
    with: {{message: traffic switched}}
"""
OTHER_RUNBOOK = """\
apiVersion: breakglass/v1
kind: Runbook
metadata: {name: other}
locks: [traffic]
steps:
  - id: note
    action: log.message
    with: {message: the lock was free}
"""


class Gated:
    """A gated runbook with its config and side file in tmp_path."""

    def __init__(self, root: Path, config: str = CONFIG) -> None:
        self.config = root / "breakglass.yaml"
        self.runbook = root / "gated.yaml"
        self.side = root / "side.txt"
        self.config.write_text(config)
        self.runbook.write_text(GATED_RUNBOOK.format(side=self.side))

    def lines(self) -> list[str]:
        return read_markers(self.side)


@pytest.fixture
def gated(tmp_path: Path) -> Gated:
    return Gated(tmp_path)


def approve(cli: Cli, run_id: str) -> None:
    approved = cli("approve", run_id, "switch")
    assert approved.code == 0, approved.output


def test_changed_runbook_rejected(cli: Cli, gated: Gated) -> None:
    run_id = pause_for_approval(cli, gated.runbook)
    approve(cli, run_id)
    text = gated.runbook.read_text()
    gated.runbook.write_text(text.replace("traffic switched", "traffic moved"))

    rejected = cli("resume", run_id)
    assert rejected.code == 2, rejected.output
    assert f"runbook {gated.runbook} changed since the run started" in rejected.stderr
    assert "--accept-changes" in rejected.stderr
    assert gated.lines() == ["prepared"]

    accepted = cli("resume", run_id, "--accept-changes")
    assert accepted.code == 0, accepted.output
    assert gated.lines() == ["prepared", "switched-blue"]
    exported = cli("audit", "export")
    assert exported.code == 0, exported.output
    audit = [json.loads(line) for line in exported.stdout.splitlines()]
    accepted_entries = [entry for entry in audit if entry["kind"] == "changes_accepted"]
    assert [entry["subject"] for entry in accepted_entries] == [run_id]
    assert accepted_entries[0]["actor"] == "tester"


def test_changed_plan_voids_approval(cli: Cli, gated: Gated) -> None:
    run_id = pause_for_approval(cli, gated.runbook)
    approve(cli, run_id)
    gated.config.write_text(CONFIG.replace("target: blue", "target: green"))

    resumed = cli("resume", run_id, "--accept-changes")
    assert resumed.code == 3, resumed.output
    assert gated.lines() == ["prepared"]
    report = show(cli, run_id)
    assert report["run"]["state"] == "awaiting_approval"
    after_approval = kinds(report)[kinds(report).index("approval_granted") :]
    assert after_approval == [
        "approval_granted",
        "run_resumed",
        "approval_voided",
        "approval_requested",
    ]
    request = report["journal"][-1]
    assert "green" in json.dumps(request["data"]["plan"])


def test_approval_keeps_locks(cli: Cli, gated: Gated, tmp_path: Path) -> None:
    run_id = pause_for_approval(cli, gated.runbook)
    other = tmp_path / "other.yaml"
    other.write_text(OTHER_RUNBOOK)

    blocked = cli("run", str(other))
    assert blocked.code == 5, blocked.output
    assert f"lock traffic is held by run {run_id}" in blocked.stderr


def test_approval_expiry_frees_locks(cli: Cli, tmp_path: Path) -> None:
    gated = Gated(tmp_path, CONFIG + "approval_timeout: 1s\n")
    run_id = pause_for_approval(cli, gated.runbook)
    paused_at = time.monotonic()
    other = tmp_path / "other.yaml"
    other.write_text(OTHER_RUNBOOK)
    time.sleep(max(0.0, paused_at + 1.2 - time.monotonic()))

    assert show(cli, run_id)["run"]["state"] == "approval_expired"
    second_run = cli("run", str(other))
    assert second_run.code == 0, second_run.output


@pytest.mark.parametrize(
    ("flag", "step", "message"),
    [
        ("--retry-step", "prepare", "--retry-step prepare: step prepare is not in doubt"),
        ("--skip-step", "switch", "--skip-step switch: step switch is not in doubt"),
        ("--retry-step", "nosuch", "has no step nosuch"),
    ],
    ids=["retry-finished-step", "skip-waiting-step", "retry-unknown-step"],
)
def test_choice_for_step_not_in_doubt(
    cli: Cli, gated: Gated, flag: str, step: str, message: str
) -> None:
    run_id = pause_for_approval(cli, gated.runbook)
    rejected = cli("resume", run_id, flag, step)
    assert rejected.code == 2, rejected.output
    assert message in rejected.stderr
    assert "Traceback" not in rejected.stderr
    assert gated.lines() == ["prepared"]


def test_rejected_choice_keeps_run_paused(cli: Cli, gated: Gated) -> None:
    run_id = pause_for_approval(cli, gated.runbook)
    rejected = cli("resume", run_id, "--retry-step", "prepare")
    assert rejected.code == 2, rejected.output
    report = show(cli, run_id)
    assert report["run"]["state"] == "awaiting_approval"
    assert kinds(report)[-1] == "approval_requested"


def test_resume_finished_run_rejected(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "breakglass.yaml").write_text(CONFIG)
    runbook = tmp_path / "other.yaml"
    runbook.write_text(OTHER_RUNBOOK)
    ran = cli("run", str(runbook))
    assert ran.code == 0, ran.output
    run_id = re.findall(r"run (RUN-\S+) succeeded", ran.stdout)[0]

    rejected = cli("resume", run_id)
    assert rejected.code == 2, rejected.output
    assert f"run {run_id} already ended as succeeded" in rejected.stderr


def test_resume_unknown_run_rejected(cli: Cli) -> None:
    rejected = cli("resume", "RUN-20990101-042")
    assert rejected.code == 2, rejected.output
    assert "run RUN-20990101-042 not found" in rejected.stderr


TYPED_RUNBOOK = """\
apiVersion: breakglass/v1
kind: Runbook
metadata: {{name: typed}}
inputs:
  service: {{type: string, required: true, enum: [frontend, backend]}}
  window_start: {{type: datetime}}
steps:
  - id: mark
    action: shell.run
    timeout: 5s
    with: {{argv: [sh, -c, "echo ran >> {side}"]}}
"""


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        (
            ["service=frontend", "colour=red"],
            "unknown input 'colour' (declared inputs: service, window_start)",
        ),
        ([], "input service is required (string)"),
        (["service=sidecar"], "input service: 'sidecar' is not one of the allowed values"),
        (
            ["service=frontend", "window_start=2026-12-04T10:30:00"],
            "input window_start: time '2026-12-04T10:30:00' has no time zone",
        ),
        (
            ["service=frontend", "window_start=2026-03-29T02:30:00 Europe/Berlin"],
            "input window_start: time '2026-03-29T02:30:00 Europe/Berlin' does not exist",
        ),
    ],
    ids=["unknown-key", "missing-required", "bad-enum", "datetime-no-zone", "datetime-dst-gap"],
)
def test_bad_input_runs_nothing(cli: Cli, tmp_path: Path, inputs: list[str], message: str) -> None:
    side = tmp_path / "side.txt"
    runbook = tmp_path / "typed.yaml"
    runbook.write_text(TYPED_RUNBOOK.format(side=side))
    arguments = [argument for pair in inputs for argument in ("-i", pair)]

    rejected = cli("run", str(runbook), *arguments)
    assert rejected.code == 2, rejected.output
    assert message in rejected.stderr
    assert not side.exists()
    listed = cli("runs", "--output", "json")
    assert json.loads(listed.stdout) == []
