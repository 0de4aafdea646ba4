"""`breakglass demo`: the main job, from a broken release to a post-mortem, in a sandbox.

The demo starts a sandbox platform and then types the commands an on-call engineer would,
each shown before it runs and run as its own `breakglass` process against the sandbox's
config. Only the operator's mistake (the dropped table) is played by the demo itself.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from breakglass.errors import BreakglassError, ExitCode

if TYPE_CHECKING:
    from breakglass.sandbox.platform import Sandbox

GOOD_SCHEMA = "0003_subscriptions"
_HEALTH_WAIT_SECONDS = 60.0
_COMMAND_SECONDS = 600.0


class DemoError(BreakglassError):
    """A demo command failed; the demo stops there."""


class Demo:
    def __init__(self, config: Path, say: Callable[[str], None]) -> None:
        self.config = config
        self.say = say

    def breakglass(self, *args: str, show: bool = True, expect: tuple[int, ...] = (0,)) -> str:
        """Run `breakglass --config SANDBOX ARGS`, echo its output, and return it."""
        command_text = " ".join(_quote(arg) for arg in args)
        if show:
            self.say(f"$ breakglass {command_text}")
        # Output is echoed line by line as it comes, so a long run shows its progress.
        process = subprocess.Popen(
            [sys.executable, "-m", "breakglass", "--config", str(self.config), *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        timer = threading.Timer(_COMMAND_SECONDS, process.kill)
        timer.start()
        lines: list[str] = []
        try:
            assert process.stdout is not None
            for line in process.stdout:
                lines.append(line)
                if show:
                    typer.echo(f"  {line.rstrip()}")
            code = process.wait()
        finally:
            timer.cancel()
            if process.poll() is None:
                process.kill()
                process.wait()
        if code not in expect:
            raise DemoError(
                f"`breakglass {command_text}` exited {code}",
                hint="the output above says why; `breakglass runs` in the sandbox shows the run",
            )
        return "".join(lines)

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + _HEALTH_WAIT_SECONDS
        while time.monotonic() < deadline:
            report = json.loads(
                self.breakglass("health", "--output", "json", show=False, expect=(0, 1))
            )
            if report.get("passed"):
                return
            time.sleep(1)


def _quote(arg: str) -> str:
    return arg if re.fullmatch(r"[\w@%+=:,./-]+", arg) else "'" + arg.replace("'", "'\\''") + "'"


def demo(
    keep: Annotated[
        bool,
        typer.Option("--keep", help="Leave the sandbox running afterwards, to look around."),
    ] = False,
    directory: Annotated[
        Path | None,
        typer.Option("--dir", help="The sandbox directory (default: STATE_DIR/sandbox)."),
    ] = None,
) -> None:
    """Run the main job in a sandbox: roll a broken release back, recover a dropped table.

    Starts a sandbox platform on 127.0.0.1 (PostgreSQL, the Kubernetes emulator, moto,
    health endpoints), opens a P1 incident, runs backend-rollback, then recovers a
    mistakenly dropped table with db-pitr, resolves the incident and writes its
    post-mortem. It takes under a minute. The sandbox is removed at the end unless --keep.
    """
    from breakglass.cli import state as cli_state
    from breakglass.cli.sandbox_cmd import sandbox_dir
    from breakglass.sandbox import platform

    workspace = cli_state.STATE.workspace()
    target = sandbox_dir(directory)
    reports = workspace.state_dir / "demo"
    started = time.monotonic()

    def say(text: str) -> None:
        typer.echo(text)

    def section(text: str) -> None:
        typer.echo(f"\n== {text} ({time.monotonic() - started:.0f} s)")

    section("1. Start a sandbox platform on 127.0.0.1")
    sandbox = platform.up(target, lambda text: say(f"  {text}"))
    completed = False
    try:
        with platform.terminate_as_interrupt():
            steps = Demo(sandbox.config_path, say)
            _main_job(steps, sandbox, reports, section, say)
        completed = True
    finally:
        if not completed:
            say("\nThe demo stopped early; the error or interrupt is command_text below.")
        if keep:
            say(
                f"\nThe sandbox keeps running: breakglass --config {sandbox.config_path} ...\n"
                "Stop it with `breakglass sandbox down"
                + (f" --dir {sandbox.directory}" if directory is not None else "")
                + "`."
            )
        else:
            section("Stop the sandbox and remove its files")
            platform.down(target, lambda text: say(f"  {text}"))
    if completed:
        say(f"\nThe demo took {time.monotonic() - started:.0f} s.")
    raise typer.Exit(int(ExitCode.OK))


def _main_job(
    steps: Demo,
    sandbox: Sandbox,
    reports: Path,
    section: Callable[[str], None],
    say: Callable[[str], None],
) -> None:
    from breakglass.sandbox.platform import count_rows, database_where, drop_table

    gate = f"database {database_where(sandbox)}"

    section("2. Backend release 2.5.0 is failing its health check")
    steps.breakglass("health", expect=(1,))

    section("3. Open a P1 incident and acknowledge it: the response clock stops")
    opened = steps.breakglass(
        "incident",
        "open",
        "checkout fails after backend 2.5.0",
        "--severity",
        "P1",
        "--service",
        "backend",
        "--commander",
        "oncall",
    )
    found = re.search(r"INC-\d{8}-\d{3}", opened)
    if found is None:
        raise DemoError(f"no incident id in the output of `incident open`: {opened!r}")
    incident = found[0]
    steps.breakglass("incident", "ack", incident)

    section("4. Plan the backend rollback: what would change, and where; nothing runs")
    rollback = [
        "backend-rollback",
        "-i",
        "database=app",
        "-i",
        f"migration_version={GOOD_SCHEMA}",
        "-i",
        "distribution=frontend",
    ]
    steps.breakglass("plan", *rollback)

    section("5. Run it: maintenance on, safety dump, schema rolled back in a Job, rollback")
    say("   (the gates are pre-approved for the demo; without --yes each one asks)")
    steps.breakglass("run", *rollback, "--incident", incident, "--yes", "--yes-destructive", gate)
    steps.breakglass("health")
    steps.breakglass("incident", "status", incident, "monitoring")

    section("6. An operator drops the orders table by mistake")
    before = drop_table(sandbox, "orders")
    say(f"   (played by the demo: DROP TABLE orders, just after {before})")
    steps.breakglass("health", expect=(1,))
    steps.breakglass(
        "incident", "note", incident, f"orders table dropped by mistake after {before}"
    )

    section("7. Recover the database to the moment before the drop")
    steps.breakglass(
        "run",
        "db-pitr",
        "-i",
        "database=app",
        "-i",
        f"target_time={before}",
        "--incident",
        incident,
        "--yes",
        "--yes-destructive",
        gate,
        "--yes-destructive",
        "writers of app",
    )
    say("   (waiting for the writers' pods to come back)")
    steps.wait_healthy()
    steps.breakglass("health")
    say(f"   orders: {count_rows(sandbox, 'orders')} rows again, as before the drop")

    section("8. Resolve the incident; its timeline becomes the post-mortem")
    steps.breakglass(
        "incident",
        "resolve",
        incident,
        "--summary",
        "rolled backend 2.5.0 back to 2.4.1 with its schema; restored the dropped orders table by PITR",
    )
    steps.breakglass("incident", "show", incident)
    reports.mkdir(parents=True, exist_ok=True)
    # Each demo's sandbox starts a fresh store, so incident ids repeat: the time keeps
    # earlier drafts.
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    postmortem = reports / f"postmortem-{incident}-{stamp}.md"
    steps.breakglass("incident", "postmortem", incident, "--file", str(postmortem))
    say(f"\nPost-mortem draft: {postmortem}")
