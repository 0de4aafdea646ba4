"""Third-party actions found through the entry point group `breakglass.actions`.

Each test builds a minimal installed distribution in tmp_path/site (a module and its
`.dist-info` with METADATA and entry_points.txt) and runs the real CLI with that
directory on PYTHONPATH, where importlib.metadata finds it.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from tests.conftest import Cli, CliResult

FAKE_ACTIONS = """\
from typing import ClassVar

from breakglass.actions.base import Action, ActionContext, Outputs, Params, PlanResult


class EchoParams(Params):
    text: str


class EchoOutputs(Outputs):
    text: str


class Echo(Action[EchoParams, EchoOutputs]):
    name = "fake.echo"
    summary = "Return the given text as the step's output."
    params_model: ClassVar[type[Params]] = EchoParams
    outputs_model: ClassVar[type[Outputs]] = EchoOutputs
    mutating = False
    idempotent = True

    def plan(self, params: EchoParams, ctx: ActionContext) -> PlanResult:
        return PlanResult(summary=f"echo {params.text!r}", target="the test process")

    def run(self, params: EchoParams, ctx: ActionContext) -> EchoOutputs:
        return EchoOutputs(text=params.text)
"""
METADATA = "Metadata-Version: 2.1\nName: fake-actions\nVersion: 0.1\n"
RUNBOOK = """\
apiVersion: breakglass/v1
kind: Runbook
metadata: {{name: echoing}}
steps:
  - id: mark
    action: shell.run
    timeout: 5s
    with: {{argv: [sh, -c, "echo ran >> {side}"]}}
  - id: say
    action: {action}
    with: {{text: hello from a plugin}}
  - id: repeat
    action: {action}
    with: {{text: "again: {{{{ steps.say.outputs.text }}}}"}}
"""


class Plugin:
    """Site directory containing the fake_actions distribution, and a runbook that uses it."""

    def __init__(self, root: Path) -> None:
        self.site = root / "site"
        self.side = root / "side.txt"
        self.runbook = root / "echoing.yaml"
        dist_info = self.site / "fake_actions-0.1.dist-info"
        dist_info.mkdir(parents=True)
        (self.site / "fake_actions.py").write_text(FAKE_ACTIONS)
        (dist_info / "METADATA").write_text(METADATA)
        self.entry_points = dist_info / "entry_points.txt"

    def register(self, lines: str, action: str) -> None:
        """Write the entry points and a runbook whose second and third steps use `action`."""
        self.entry_points.write_text(f"[breakglass.actions]\n{lines}\n")
        self.runbook.write_text(RUNBOOK.format(side=self.side, action=action))

    def env(self) -> dict[str, str]:
        existing = os.environ.get("PYTHONPATH")
        return {"PYTHONPATH": os.pathsep.join(filter(None, [str(self.site), existing]))}


@pytest.fixture
def plugin(tmp_path: Path) -> Plugin:
    return Plugin(tmp_path)


def run_cli(cli: Cli, plugin: Plugin, *args: str) -> CliResult:
    return cli(*args, env=plugin.env())


def test_entry_point_action_runs(cli: Cli, plugin: Plugin) -> None:
    plugin.register("fake.echo = fake_actions:Echo", "fake.echo")

    linted = run_cli(cli, plugin, "lint", str(plugin.runbook))
    assert linted.code == 0, linted.output
    assert "0 finding(s)" in linted.stdout

    planned = run_cli(cli, plugin, "plan", str(plugin.runbook))
    assert planned.code == 0, planned.output
    assert "say [fake.echo]" in planned.stdout
    assert "echo 'hello from a plugin'" in planned.stdout
    assert "where: the test process" in planned.stdout

    ran = run_cli(cli, plugin, "run", str(plugin.runbook))
    assert ran.code == 0, ran.output
    run_id = re.findall(r"run (RUN-\S+) succeeded", ran.stdout)[0]
    report = run_cli(cli, plugin, "runs", "show", run_id, "--output", "json")
    outputs = {
        entry["step_id"]: entry["data"]["outputs"]
        for entry in json.loads(report.stdout)["journal"]
        if entry["kind"] == "step_ended"
    }
    assert outputs["say"] == {"text": "hello from a plugin"}
    assert outputs["repeat"] == {"text": "again: hello from a plugin"}


def test_entry_point_name_mismatch_rejected(cli: Cli, plugin: Plugin) -> None:
    plugin.register("fake.shout = fake_actions:Echo", "fake.shout")
    expected = "action 'fake.shout' is not registered correctly"

    linted = run_cli(cli, plugin, "lint", str(plugin.runbook))
    assert linted.code == 2, linted.output
    assert expected in linted.stdout

    ran = run_cli(cli, plugin, "run", str(plugin.runbook))
    assert ran.code == 2, ran.output
    assert expected in ran.stderr
    assert "Traceback" not in ran.stderr
    assert not plugin.side.exists()
    listed = run_cli(cli, plugin, "runs", "--output", "json")
    assert json.loads(listed.stdout) == []


def test_mismatch_named_at_every_use(cli: Cli, plugin: Plugin) -> None:
    plugin.register("fake.shout = fake_actions:Echo", "fake.shout")
    linted = run_cli(cli, plugin, "lint", str(plugin.runbook))
    assert linted.code == 2, linted.output
    findings = [line for line in linted.stdout.splitlines() if "fake.shout" in line]
    assert len(findings) == 2, linted.stdout
    assert all("not registered correctly" in line for line in findings), findings


def test_broken_entry_point_clear_error(cli: Cli, plugin: Plugin) -> None:
    plugin.register("fake.echo = not_installed:Echo", "fake.echo")
    linted = run_cli(cli, plugin, "lint", str(plugin.runbook))
    assert "Traceback" not in linted.stderr
    assert "fake.echo" in linted.output
    assert linted.code == 2, linted.output


def test_builtin_name_not_overridden(cli: Cli, plugin: Plugin) -> None:
    plugin.register("shell.run = fake_actions:Echo\nfake.echo = fake_actions:Echo", "fake.echo")
    ran = run_cli(cli, plugin, "run", str(plugin.runbook))
    assert ran.code == 0, ran.output
    assert "ignoring entry point fake_actions:Echo: a built-in action has that name" in ran.stderr
    assert plugin.side.read_text().split() == ["ran"]
