"""A crashed run's step process may outlive it; resume must not act beside it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import Cli

pytestmark = pytest.mark.slow

RUNBOOK = """\
apiVersion: breakglass/v1
kind: Runbook
metadata: {{name: orphan}}
steps:
  - id: long
    action: shell.run
    timeout: 30s
    with: {{argv: [sh, -c, "echo start >> {side}; sleep 4; echo end >> {side}"]}}
"""


def test_resume_refused_while_child_runs(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "breakglass.yaml").write_text("lease_ttl: 1s\nlease_renew_every: 300ms\n")
    side = tmp_path / "side.txt"
    runbook = tmp_path / "orphan.yaml"
    runbook.write_text(RUNBOOK.format(side=side))
    process = subprocess.Popen(
        cli.command("run", str(runbook)),
        cwd=tmp_path,
        env=cli.env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while not side.exists():
            assert time.monotonic() < deadline
            time.sleep(0.02)
        time.sleep(0.2)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=10)
    time.sleep(1.3)
    [run] = json.loads(cli("runs", "--output", "json").stdout)
    refused = cli("resume", run["id"])
    assert refused.code == 4
    assert "which is still running on this host" in refused.stderr
    assert "kill -TERM -" in refused.stderr
    deadline = time.monotonic() + 15
    while "end" not in side.read_text():
        assert time.monotonic() < deadline
        time.sleep(0.1)
    time.sleep(0.2)
    after = cli("resume", run["id"], "--skip-step", "long")
    assert after.code == 0, after.output
