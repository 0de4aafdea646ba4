"""`breakglass runs show RUN --follow` against a run executing in another process.

Step `a` waits for a gate file that the test creates once the follower is running, so
the follower prints the end of step `a` as it happens instead of reading it from the
stored journal.
"""

from __future__ import annotations

import json
import queue
import re
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Cli
from tests.processes import RunFiles, background, read_run_id, wait_until

pytestmark = pytest.mark.slow

RUNBOOK = """\
apiVersion: breakglass/v1
kind: Runbook
metadata: {{name: followed}}
steps:
  - id: a
    action: shell.run
    timeout: 20s
    with: {{argv: [sh, {script}]}}
  - id: b
    action: shell.run
    timeout: 5s
    with: {{argv: [sleep, "1"]}}
  - id: c
    action: shell.run
    timeout: 5s
    with: {{argv: [sh, -c, "sleep 0.5; echo c >> {side}"]}}
"""
# Step a gives up waiting for the gate after about 10 s, so it never outlives a failed test.
GATE_STEP = """\
echo a >> {side}
i=0
while [ ! -e {gate} ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
"""
LINE_TIMEOUT = 20.0


@pytest.fixture
def followed(tmp_path: Path) -> RunFiles:
    files = RunFiles(tmp_path, runbook_name="followed.yaml", script_name="a.sh")
    files.write(GATE_STEP, RUNBOOK)
    return files


class LineReader:
    """Reader of a process's stdout on a background thread, so that the test can wait for a line."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(process,), daemon=True)
        self._thread.start()

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def until(self, matches: Callable[[str], bool], description: str) -> str:
        """Return the first new line that `matches`, failing after LINE_TIMEOUT or at the output's end."""
        deadline = time.monotonic() + LINE_TIMEOUT
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"no line with {description} within {LINE_TIMEOUT:g}s; got {self.seen}")
            if line is None:
                pytest.fail(f"output ended without a line with {description}; got {self.seen}")
            self.seen.append(line)
            if matches(line):
                return line

    def rest(self) -> list[str]:
        """Wait for the end of output, then return every line read, including earlier ones."""
        self._thread.join(timeout=LINE_TIMEOUT)
        assert not self._thread.is_alive(), f"output did not end; got {self.seen}"
        while (line := self.lines.get_nowait()) is not None:
            self.seen.append(line)
        return self.seen


def test_follow_prints_entries_live(cli: Cli, followed: RunFiles) -> None:
    with background(cli, "run", str(followed.runbook)) as run:
        run_id = read_run_id(run)
        with background(cli, "runs", "show", run_id, "--follow") as follower:
            reader = LineReader(follower)
            reader.until(lambda line: "step_started  a" in line, "step a started")
            followed.gate.touch()
            ended_a = reader.until(lambda line: "step_ended  a  succeeded" in line, "step a ended")
            # Step a's end was printed while steps b and c were still to come.
            assert run.poll() is None, ended_a
            assert "c" not in followed.lines()
            lines = reader.rest()
            assert follower.wait(timeout=LINE_TIMEOUT) == 0
        assert run.wait(timeout=LINE_TIMEOUT) == 0

    journal = [line for line in lines if line.startswith("  20")]
    step_lines = [line for line in journal if "step_" in line]
    assert len(step_lines) == 6, journal
    assert "run_ended  succeeded" in journal[-1]
    assert lines[-1] == f"run {run_id} is succeeded"


def test_follow_json_one_object_per_line(cli: Cli, followed: RunFiles) -> None:
    with background(cli, "run", str(followed.runbook)) as run:
        run_id = read_run_id(run)
        with background(cli, "runs", "show", run_id, "--follow", "--output", "json") as follower:
            reader = LineReader(follower)
            reader.until(lambda line: '"step_started"' in line, "the first step_started entry")
            followed.gate.touch()
            lines = reader.rest()
            assert follower.wait(timeout=LINE_TIMEOUT) == 0
        assert run.wait(timeout=LINE_TIMEOUT) == 0

    entries = [json.loads(line) for line in lines]
    assert all(isinstance(entry, dict) for entry in entries)
    assert all(entry["run_id"] == run_id for entry in entries)
    sequence = [entry["seq"] for entry in entries]
    assert sequence == sorted(set(sequence))
    assert entries[0]["kind"] == "run_created"
    assert entries[-1]["kind"] == "run_ended"
    assert entries[-1]["status"] == "succeeded"


def test_follow_ended_run_exits_at_once(cli: Cli, tmp_path: Path) -> None:
    runbook = tmp_path / "quick.yaml"
    runbook.write_text(
        "apiVersion: breakglass/v1\nkind: Runbook\nmetadata: {name: quick}\nsteps:\n"
        "  - id: note\n    action: log.message\n    with: {message: done}\n"
    )
    ran = cli("run", str(runbook))
    assert ran.code == 0, ran.output
    run_id = re.findall(r"run (RUN-\S+) succeeded", ran.stdout)[0]

    shown = cli("runs", "show", run_id, "--follow", timeout=15)
    assert shown.code == 0, shown.output
    assert shown.stdout.splitlines()[-1] == f"run {run_id} is succeeded"


def test_live_step_not_in_doubt(cli: Cli, followed: RunFiles) -> None:
    with background(cli, "run", str(followed.runbook)) as run:
        run_id = read_run_id(run)
        try:
            wait_until(lambda: "a" in followed.lines(), "step a started", timeout=LINE_TIMEOUT)
            live_report = cli("runs", "show", run_id, "--output", "json")
            assert run.poll() is None
        finally:
            followed.gate.touch()
        assert run.wait(timeout=LINE_TIMEOUT) == 0
    report = json.loads(live_report.stdout)
    assert report["run"]["state"] == "running"
    assert report["steps"][0]["status"] == "running"
