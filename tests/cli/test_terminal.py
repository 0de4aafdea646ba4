"""Approval prompts and the live display, driven under a pseudo-terminal."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pexpect
import pytest

from tests.conftest import Cli

RUNBOOK = """\
apiVersion: breakglass/v1
kind: Runbook
metadata: {{name: gated}}
steps:
  - id: prepare
    action: shell.run
    timeout: 5s
    with: {{argv: [sh, -c, "echo prepared >> {side}"]}}
    undo:
      action: shell.run
      with: {{argv: [sh, -c, "echo unprepared >> {side}"]}}
  - id: gate
    action: shell.run
    timeout: 5s
    confirm: {{message: "Restart the frontend?"}}
    with: {{argv: [sh, -c, "echo restarted >> {side}"]}}
  - id: drop
    action: shell.run
    timeout: 5s
    confirm: {{message: "Drop the cache?", destructive: true}}
    with: {{argv: [sh, -c, "echo dropped >> {side}"]}}
  - id: by_hand
    action: manual
    with: {{instructions: "Call the CDN provider and ask for a purge", target: "CDN provider"}}
"""


def spawn(cli: Cli, *args: str, env: dict[str, str] | None = None) -> pexpect.spawn:
    child = pexpect.spawn(
        sys.executable,
        ["-m", "breakglass", *args],
        cwd=str(cli.cwd),
        env=cli.env(env),
        encoding="utf-8",
        timeout=30,
        dimensions=(40, 160),
    )
    return child


@pytest.fixture
def gated(tmp_path: Path) -> tuple[Path, Path]:
    side = tmp_path / "side.txt"
    runbook = tmp_path / "gated.yaml"
    runbook.write_text(RUNBOOK.format(side=side))
    return runbook, side


def test_prompts_name_step_target_and_plan(cli: Cli, gated: tuple[Path, Path]) -> None:
    runbook, side = gated
    child = spawn(cli, "run", str(runbook))
    child.expect("Approval needed")
    child.expect("gate")
    child.expect("where: local host")
    child.expect("asks:  Restart the frontend\\?")
    child.expect("Approve step gate\\? \\[y/N\\]: ")
    child.sendline("y")
    child.expect("destructive")
    child.expect("Type the target")
    child.sendline(f"local host {os.uname().nodename}")
    child.expect("Do this by hand:")
    child.expect("Call the CDN provider")
    child.expect("Done, and confirm\\? \\[y/N\\]: ")
    child.sendline("yes")
    child.expect("Note for the journal")
    child.sendline("purge ticket 4411 opened")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert side.read_text().split() == ["prepared", "restarted", "dropped"]
    [run] = json.loads(cli("runs", "--output", "json").stdout)
    journal = json.loads(cli("runs", "show", run["id"], "--output", "json").stdout)["journal"]
    manual = next(e for e in journal if e["kind"] == "step_ended" and e["step_id"] == "by_hand")
    assert manual["data"]["outputs"] == {
        "confirmed_by": "tester",
        "note": "purge ticket 4411 opened",
    }


def test_wrong_target_rejects_and_undoes(cli: Cli, gated: tuple[Path, Path]) -> None:
    runbook, side = gated
    child = spawn(cli, "run", str(runbook), "--yes")
    child.expect("Type the target")
    child.sendline("yes")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 1
    assert side.read_text().split() == ["prepared", "restarted", "unprepared"]
    assert "approval of step drop was rejected by tester" in cli("runs").stdout


def test_live_display_marks_steps(cli: Cli, tmp_path: Path) -> None:
    runbook = tmp_path / "plain.yaml"
    runbook.write_text(
        "apiVersion: breakglass/v1\nkind: Runbook\nmetadata: {name: plain}\nsteps:\n"
        "  - id: slow\n    action: shell.run\n    timeout: 5s\n    with: {argv: [sleep, '0.5']}\n"
        "  - id: quick\n    action: log.message\n    with: {message: all good}\n"
    )
    child = spawn(cli, "run", str(runbook), env={"NO_COLOR": "1"})
    child.expect("slow: running")
    child.expect("✔ slow succeeded")
    child.expect("✔ quick succeeded")
    child.expect(pexpect.EOF)
    assert "\x1b[3" not in (child.before or "")


def test_colour_only_without_no_color(cli: Cli, tmp_path: Path) -> None:
    runbook = tmp_path / "plain.yaml"
    runbook.write_text(
        "apiVersion: breakglass/v1\nkind: Runbook\nmetadata: {name: plain}\nsteps:\n"
        "  - id: quick\n    action: log.message\n    with: {message: hi}\n"
    )
    env = cli.env()
    env.pop("NO_COLOR", None)
    child = pexpect.spawn(
        sys.executable,
        ["-m", "breakglass", "run", str(runbook)],
        cwd=str(cli.cwd),
        env=env,
        encoding="utf-8",
        timeout=30,
    )
    child.expect(pexpect.EOF)
    assert "\x1b[" in (child.before or "")


def test_no_terminal_pauses_for_approval(cli: Cli, gated: tuple[Path, Path]) -> None:
    runbook, side = gated
    paused = cli("run", str(runbook))
    assert paused.code == 3
    assert "awaiting_approval" in paused.stdout
    [run] = json.loads(cli("runs", "--output", "json").stdout)
    assert run["state"] == "awaiting_approval"
    assert cli("approve", run["id"], "gate").code == 0
    again = cli("resume", run["id"])
    assert again.code == 3
    assert "step drop needs approval" in again.stdout
    assert side.read_text().split() == ["prepared", "restarted"]
