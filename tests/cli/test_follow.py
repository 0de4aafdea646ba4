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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import Cli

pytestmark = pytest.mark.slow

CONFIG = "lease_ttl: 1s\nlease_renew_every: 300ms\n"
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


class Followed:
    """The files of one test: config, runbook, step script, side file and gate file."""

    def __init__(self, root: Path) -> None:
        self.side = root / "side.txt"
        self.gate = root / "gate"
        self.script = root / "a.sh"
        self.runbook = root / "followed.yaml"
        (root / "breakglass.yaml").write_text(CONFIG)
        self.script.write_text(GATE_STEP.format(side=self.side, gate=self.gate))
        self.runbook.write_text(RUNBOOK.format(script=self.script, side=self.side))

    def lines(self) -> list[str]:
        return self.side.read_text().split() if self.side.exists() else []


@pytest.fixture
def followed(tmp_path: Path) -> Followed:
    return Followed(tmp_path)


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


@contextmanager
def background(cli: Cli, *args: str) -> Iterator[subprocess.Popen[str]]:
    """Start a breakglass command, and reap it on exit (killing it if it still runs)."""
    process = subprocess.Popen(
        cli.command(*args),
        cwd=cli.cwd,
        env=cli.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def read_run_id(run: subprocess.Popen[str]) -> str:
    """Read the run id from the first line `breakglass run` prints."""
    assert run.stdout is not None
    first = run.stdout.readline()
    match = re.match(r"run (RUN-\S+) started", first)
    assert match, f"unexpected first line of `breakglass run`: {first!r}"
    return match.group(1)


def test_follow_prints_entries_live(cli: Cli, followed: Followed) -> None:
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


def test_follow_json_one_object_per_line(cli: Cli, followed: Followed) -> None:
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


def test_live_step_not_in_doubt(cli: Cli, followed: Followed) -> None:
    with background(cli, "run", str(followed.runbook)) as run:
        run_id = read_run_id(run)
        try:
            deadline = time.monotonic() + LINE_TIMEOUT
            while "a" not in followed.lines():
                assert time.monotonic() < deadline, "step a never started"
                time.sleep(0.02)
            live_report = cli("runs", "show", run_id, "--output", "json")
            assert run.poll() is None
        finally:
            followed.gate.touch()
        assert run.wait(timeout=LINE_TIMEOUT) == 0
    report = json.loads(live_report.stdout)
    assert report["run"]["state"] == "running"
    assert report["steps"][0]["status"] == "running"
