"""Helpers for tests that start `breakglass` as a child process and inspect the runs it records."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.conftest import Cli

# A 1 s lease renewed every 300 ms, so that a killed run's lease expires about a second later.
LEASE_CONFIG = "lease_ttl: 1s\nlease_renew_every: 300ms\n"


def read_markers(side: Path) -> list[str]:
    """Return the markers that steps appended to the side file, or [] before the first one."""
    return side.read_text().split() if side.exists() else []


class RunFiles:
    """The files of one test: config, runbook, step script, side file, gate file and late file.

    The step script appends markers to the side file and may wait for the gate file. A child
    process that the step leaves behind writes the late file.
    """

    def __init__(self, root: Path, runbook_name: str, script_name: str) -> None:
        self.root = root
        self.runbook = root / runbook_name
        self.script = root / script_name
        self.side = root / "side.txt"
        self.gate = root / "gate"
        self.late = root / "late.txt"

    def write(self, step_script: str, runbook: str) -> None:
        """Write the config, the step script and the runbook, with this test's paths filled in."""
        (self.root / "breakglass.yaml").write_text(LEASE_CONFIG)
        self.script.write_text(step_script.format(side=self.side, late=self.late, gate=self.gate))
        self.runbook.write_text(runbook.format(side=self.side, script=self.script))

    def lines(self) -> list[str]:
        return read_markers(self.side)


def wait_until(condition: Callable[[], bool], description: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {description}"
        time.sleep(0.02)


def start_process(cli: Cli, *args: str, capture_output: bool = True) -> subprocess.Popen[str]:
    """Start a breakglass command without waiting for it.

    Its stdout and stderr go to pipes, or to /dev/null when `capture_output` is false.
    """
    stream = subprocess.PIPE if capture_output else subprocess.DEVNULL
    return subprocess.Popen(
        cli.command(*args),
        cwd=cli.cwd,
        env=cli.env(),
        stdout=stream,
        stderr=stream,
        text=True,
    )


@contextmanager
def background(cli: Cli, *args: str) -> Iterator[subprocess.Popen[str]]:
    """Start a breakglass command, and reap it on exit (killing it if it still runs)."""
    process = start_process(cli, *args)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def race_runs(cli: Cli, runbook: Path, count: int = 2) -> list[tuple[int, str, str]]:
    """Start `count` runs of one runbook at once, and return each exit code, stdout and stderr."""
    racers = [start_process(cli, "run", str(runbook)) for _ in range(count)]
    return [(racer.wait(timeout=60), *racer.communicate()) for racer in racers]


def read_run_id(process: subprocess.Popen[str]) -> str:
    """Read the run id from the first line `breakglass run` prints."""
    assert process.stdout is not None
    first = process.stdout.readline()
    match = re.match(r"run (RUN-\S+) started", first)
    assert match, f"unexpected first line of `breakglass run`: {first!r}"
    return match.group(1)


def pause_for_approval(cli: Cli, runbook: Path) -> str:
    """Run a gated runbook until it pauses for approval (exit 3), and return the run id."""
    paused = cli("run", str(runbook))
    assert paused.code == 3, paused.output
    match = re.search(r"run (RUN-\S+) awaiting_approval", paused.stdout)
    assert match, paused.output
    return match.group(1)


def show(cli: Cli, run_id: str) -> dict[str, Any]:
    """Return `runs show RUN --output json`: the run record, its step table and journal."""
    result = cli("runs", "show", run_id, "--output", "json")
    assert result.code == 0, result.output
    return dict(json.loads(result.stdout))


def kinds(report: dict[str, Any]) -> list[str]:
    return [entry["kind"] for entry in report["journal"]]
