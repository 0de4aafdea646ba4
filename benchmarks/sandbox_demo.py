"""`breakglass sandbox up`, `sandbox down` and `breakglass demo`: wall time as a user sees it.

Each command runs as a fresh subprocess of the project's venv, with its state directory in
a temporary directory, exactly as the README's first command runs the demo after
installation. Three rounds: up, down, then the whole demo, which starts and stops its own
sandbox.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import BenchmarkResult, Figure

NAME = "sandbox_demo"
SUMMARY = "sandbox up, sandbox down and the whole demo, each as a fresh breakglass process"
ROUNDS = 3
_TIMEOUT_SECONDS = 600


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    """Run one breakglass command and return its wall time. Raise RuntimeError if it fails."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "breakglass", *argv],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=_TIMEOUT_SECONDS,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"breakglass {' '.join(argv)} exited {done.returncode}: {done.stderr}")
    return elapsed


def run() -> BenchmarkResult:
    up: list[float] = []
    down: list[float] = []
    demo: list[float] = []
    for _ in range(ROUNDS):
        with tempfile.TemporaryDirectory(prefix="breakglass-bench-sandbox-") as scratch:
            work = Path(scratch)
            env = dict(os.environ)
            env["BREAKGLASS_STATE_DIR"] = str(work / "state")
            env["XDG_STATE_HOME"] = str(work / "xdg")
            env.pop("BREAKGLASS_CONFIG", None)
            up.append(timed(["sandbox", "up"], env, work))
            down.append(timed(["sandbox", "down"], env, work))
            demo.append(timed(["demo"], env, work))
    result = BenchmarkResult(
        NAME,
        SUMMARY,
        [
            Figure.from_samples("sandbox up", "s", up),
            Figure.from_samples("sandbox down", "s", down),
            Figure.from_samples("demo, start to finish", "s", demo),
        ],
    )
    result.notes.append(
        "sandbox up: initdb, migrations and sample data, the emulator seeded with 11 "
        "revisions, moto, and a base backup through the db-base-backup runbook"
    )
    return result
