"""Cold start: `breakglass --help` as a fresh process, relative to `python -c pass`.

Every command runs as a new subprocess of the project's venv Python, with the same
environment, working directory and state directory, all inside a temporary directory.
The commands are interleaved round by round, so that a burst of load from other
processes spreads over all of them instead of one.

Python's bytecode cache changes start-up a lot, so there are two modes. `warm cache`
writes and reads .pyc files under a temporary PYTHONPYCACHEPREFIX, filled by one
untimed run of each command first, which is what a user sees from the second run on.
`no cache` sets PYTHONDONTWRITEBYTECODE=1 and points the prefix at an empty directory,
so every module is compiled from source on every run.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import BenchmarkResult, Figure

NAME = "cold_start"
SUMMARY = "breakglass --help as a fresh process, as a ratio to python -c pass"

COMMAND_TIMEOUT_SECONDS = 60.0


@dataclass(frozen=True)
class Command:
    """One timed command line and how many rounds it takes part in."""

    label: str
    arguments: tuple[str, ...]
    rounds: int
    fresh_state: bool = False


@dataclass(frozen=True)
class Mode:
    """A bytecode cache setting and the number of rounds for the quick and slow commands."""

    name: str
    write_bytecode: bool
    quick_rounds: int
    slow_rounds: int


MODES = (
    Mode("warm cache", write_bytecode=True, quick_rounds=30, slow_rounds=5),
    Mode("no cache", write_bytecode=False, quick_rounds=10, slow_rounds=3),
)


def breakglass_script() -> Path:
    """Return the `breakglass` console script installed next to this Python."""
    script = Path(sys.executable).parent / "breakglass"
    if not script.is_file():
        raise FileNotFoundError(
            f"breakglass console script not found next to {sys.executable}. "
            "Run `uv sync` in the project first."
        )
    return script


def commands(mode: Mode, script: Path) -> list[Command]:
    """List the commands of one mode: the baseline, --help, and two commands for context."""
    tool = str(script)
    return [
        Command("python -c pass", ("-c", "pass"), mode.quick_rounds),
        Command("breakglass --help", (tool, "--help"), mode.quick_rounds),
        Command("breakglass version", (tool, "version"), mode.slow_rounds),
        Command("breakglass runs (store exists, no runs)", (tool, "runs"), mode.slow_rounds),
        Command(
            "breakglass runs (new state dir)", (tool, "runs"), mode.slow_rounds, fresh_state=True
        ),
    ]


def base_environment(root: Path, mode: Mode) -> dict[str, str]:
    """Build the environment every command of `mode` shares, isolated under `root`."""
    env = dict(os.environ)
    env.pop("BREAKGLASS_CONFIG", None)
    env["BREAKGLASS_STATE_DIR"] = str(root / "state")
    env["XDG_STATE_HOME"] = str(root / "xdg")
    env["BREAKGLASS_ACTOR"] = "bench"
    env["NO_COLOR"] = "1"
    env["PYTHONPYCACHEPREFIX"] = str(root / "pycache")
    if mode.write_bytecode:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def time_command(arguments: tuple[str, ...], env: dict[str, str], cwd: Path) -> float:
    """Run one command to completion and return its wall time in seconds.

    Raises RuntimeError with the command's stderr when it exits with a non-zero status.
    """
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, *arguments],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=COMMAND_TIMEOUT_SECONDS,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if completed.returncode != 0:
        error = completed.stderr.decode(errors="replace").strip()
        raise RuntimeError(
            f"`python {' '.join(arguments)}` failed with exit status {completed.returncode}: {error}"
        )
    return elapsed


def environment_for(
    command: Command, env: dict[str, str], root: Path, round_index: int
) -> dict[str, str]:
    """Return `env`, with a new empty state directory when `command.fresh_state` is set."""
    if not command.fresh_state:
        return env
    return {**env, "BREAKGLASS_STATE_DIR": str(root / f"fresh-state-{round_index}")}


def measure_mode(mode: Mode, script: Path) -> dict[str, list[float]]:
    """Time every command of `mode` over its rounds and return the samples per label, in ms."""
    with tempfile.TemporaryDirectory(prefix="breakglass-bench-") as name:
        root = Path(name)
        env = base_environment(root, mode)
        planned = commands(mode, script)
        for command in planned:
            # Untimed: fills the bytecode cache in warm mode and creates the state store.
            time_command(command.arguments, env, root)
        samples: dict[str, list[float]] = {command.label: [] for command in planned}
        for round_index in range(max(command.rounds for command in planned)):
            for command in planned:
                if round_index >= command.rounds:
                    continue
                command_env = environment_for(command, env, root, round_index)
                seconds = time_command(command.arguments, command_env, root)
                samples[command.label].append(seconds * 1000)
        return samples


def figures_for(mode: Mode, samples: dict[str, list[float]]) -> list[Figure]:
    """Turn one mode's samples into figures, led by the --help to baseline ratio."""
    baseline = statistics.median(samples["python -c pass"])
    help_median = statistics.median(samples["breakglass --help"])
    figures = [
        Figure.single(
            f"[{mode.name}] --help / python -c pass",
            "ratio",
            help_median / baseline,
            note="median over median",
        )
    ]
    for label, values in samples.items():
        figures.append(Figure.from_samples(f"[{mode.name}] {label}", "ms", values))
    return figures


def run() -> BenchmarkResult:
    """Measure start-up times in both bytecode cache modes."""
    script = breakglass_script()
    result = BenchmarkResult(NAME, SUMMARY)
    for mode in MODES:
        result.figures.extend(figures_for(mode, measure_mode(mode, script)))
    inherited = os.environ.get("PYTHONDONTWRITEBYTECODE")
    result.notes.append(
        f"PYTHONDONTWRITEBYTECODE in the caller's environment: {inherited or 'unset'} "
        "(each mode sets its own value)"
    )
    result.notes.append(f"interpreter: {sys.executable}, script: {script}")
    return result
