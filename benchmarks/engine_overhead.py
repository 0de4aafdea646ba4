"""Engine overhead per no-op step, with the durable journal on.

A generated runbook of 200 `log.message` steps runs in this process through
`breakglass.engine.service.start_run`, with an `EventBus` that has no subscribers and
`NoInteraction`, against a new SQLite state directory per run. A 1-step runbook runs the
same way, and its time stands for the fixed costs (loading and linting the runbook,
creating the audit key and the run, one step, ending the run). The store is created
before the timer starts. The figure per step is (T(200 steps) - T(1 step)) / 199,
computed per repetition, so it includes parsing and linting each extra step.

Each step commits its `step_started` and `step_ended` journal entries in two write
transactions, the second with an audit entry. The store runs SQLite in WAL mode with
`synchronous=FULL`. To show how much of the time the fsyncs take, the same runs are
repeated with `PRAGMA synchronous=OFF` set on every connection of the benchmark's own
store, which the product never does.
"""

from __future__ import annotations

import sqlite3
import statistics
import tempfile
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event, text

from benchmarks.common import BenchmarkResult, Figure
from breakglass.engine.events import EventBus
from breakglass.engine.executor import RunOptions
from breakglass.engine.interaction import NoInteraction
from breakglass.engine.service import start_run
from breakglass.engine.workspace import Workspace
from breakglass.store.records import RunState

NAME = "engine_overhead"
SUMMARY = "engine cost per no-op step over a 200-step runbook, journal on"

STEP_COUNT = 200
WARM_UP_STEP_COUNT = 20
REPETITIONS = 5
# Slow fsync can make one 200-step run take 10 s or more, so a variant stops repeating
# once it has MIN_REPETITIONS and has used VARIANT_BUDGET_SECONDS.
MIN_REPETITIONS = 3
VARIANT_BUDGET_SECONDS = 30.0
CONFIG_TEXT = "state_dir: state\n"


@dataclass(frozen=True)
class RunMeasurement:
    """The wall time of one run and what it left in its state store."""

    seconds: float
    journal_rows: int
    audit_rows: int
    transactions: int
    connections: int
    database_bytes: int


def runbook_text(step_count: int) -> str:
    """Generate a runbook of `step_count` log.message steps."""
    lines = [
        "apiVersion: breakglass/v1",
        "kind: Runbook",
        "metadata:",
        f"  name: bench-noop-{step_count}",
        "steps:",
    ]
    for index in range(step_count):
        lines += [
            f"  - id: step_{index:04d}",
            "    action: log.message",
            "    with:",
            f"      message: no-op step {index}",
        ]
    return "\n".join(lines) + "\n"


def count_rows(database: Path, table: str) -> int:
    """Count the rows of one table, opening the database read-only."""
    with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as connection:
        row = connection.execute(f"SELECT count(*) FROM {table}").fetchone()
    return int(row[0])


def attach_counters(engine: Engine) -> dict[str, int]:
    """Count commits and new DB-API connections on `engine` from now on."""
    counts = {"transactions": 0, "connections": 0}

    def on_commit(_connection: Any) -> None:
        counts["transactions"] += 1

    def on_connect(_dbapi_connection: Any, _record: Any) -> None:
        counts["connections"] += 1

    event.listen(engine, "commit", on_commit)
    event.listen(engine, "connect", on_connect)
    return counts


def turn_sync_off(engine: Engine) -> None:
    """Set synchronous=OFF on every new connection, after the store's own FULL setting."""

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA synchronous=OFF")

    # Listeners run in the order they were added, so this one overrides the store's.
    event.listen(engine, "connect", on_connect)
    # The store keeps connections in a pool; drop the ones opened before the listener.
    engine.dispose()
    with engine.connect() as connection:
        level = connection.execute(text("PRAGMA synchronous")).scalar_one()
    if level != 0:
        raise RuntimeError(f"PRAGMA synchronous is {level} after setting it OFF, expected 0")


def run_once(directory: Path, step_count: int, sync_full: bool) -> RunMeasurement:
    """Run a generated runbook once in a new state directory under `directory`."""
    directory.mkdir(parents=True)
    config = directory / "breakglass.yaml"
    config.write_text(CONFIG_TEXT, encoding="utf-8")
    runbook = directory / "runbook.yaml"
    runbook.write_text(runbook_text(step_count), encoding="utf-8")

    workspace = Workspace.load(config_path=str(config), actor="bench")
    engine = workspace.store.engine
    if not sync_full:
        turn_sync_off(engine)
    counts = attach_counters(engine)
    started = time.perf_counter()
    outcome = start_run(
        workspace,
        str(runbook),
        {},
        options=RunOptions(),
        interaction=NoInteraction(),
        bus=EventBus(),
    )
    seconds = time.perf_counter() - started
    workspace.store.dispose()
    if outcome.state != RunState.SUCCEEDED:
        raise RuntimeError(
            f"benchmark run {outcome.run_id} ended {outcome.state.value}: {outcome.reason}"
        )

    database = directory / "state" / "state.db"
    return RunMeasurement(
        seconds=seconds,
        journal_rows=count_rows(database, "journal"),
        audit_rows=count_rows(database, "audit_log"),
        transactions=counts["transactions"],
        connections=counts["connections"],
        database_bytes=database.stat().st_size,
    )


def per_step_ms(
    root: Path, sync_full: bool, label: str
) -> tuple[list[float], list[RunMeasurement]]:
    """Repeat the 1-step and 200-step runs and return ms per step and the long runs.

    Stops after MIN_REPETITIONS once VARIANT_BUDGET_SECONDS have passed.
    """
    started = time.monotonic()
    per_step: list[float] = []
    long_runs: list[RunMeasurement] = []
    for repetition in range(REPETITIONS):
        short = run_once(root / f"{label}-{repetition}-short", 1, sync_full)
        long = run_once(root / f"{label}-{repetition}-long", STEP_COUNT, sync_full)
        per_step.append((long.seconds - short.seconds) / (STEP_COUNT - 1) * 1000)
        long_runs.append(long)
        over_budget = time.monotonic() - started > VARIANT_BUDGET_SECONDS
        if repetition + 1 >= MIN_REPETITIONS and over_budget:
            break
    return per_step, long_runs


def store_figures(run: RunMeasurement) -> list[Figure]:
    """Describe what one 200-step run wrote, as counted figures."""
    return [
        Figure.single("journal rows", "rows", run.journal_rows),
        Figure.single("audit log rows", "rows", run.audit_rows),
        Figure.single(
            "transactions committed",
            "count",
            run.transactions,
            note=f"{run.transactions / STEP_COUNT:.2f} per step, reads and writes",
        ),
        Figure.single(
            "SQLite connections opened",
            "count",
            run.connections,
            note=f"{run.connections / STEP_COUNT:.2f} per step",
        ),
        Figure.single("state.db size", "KiB", run.database_bytes / 1024),
    ]


def timing_figures(
    full: list[float],
    full_runs: list[RunMeasurement],
    off: list[float],
    off_runs: list[RunMeasurement],
) -> list[Figure]:
    """Report ms per step and whole-run times for both sync settings, and the fsync share."""
    full_median = statistics.median(full)
    fsync_share = (full_median - statistics.median(off)) / full_median * 100
    return [
        Figure.from_samples("ms per step, synchronous=FULL", "ms", full),
        Figure.from_samples(
            "200-step run, synchronous=FULL", "s", [run.seconds for run in full_runs]
        ),
        Figure.from_samples(
            "ms per step, synchronous=OFF", "ms", off, note="comparison only, never in product"
        ),
        Figure.from_samples(
            "200-step run, synchronous=OFF", "s", [run.seconds for run in off_runs]
        ),
        Figure.single(
            "share of per-step time in fsync",
            "%",
            fsync_share,
            note="estimate: 1 - median(OFF) / median(FULL)",
        ),
    ]


def run() -> BenchmarkResult:
    """Measure ms per step with synchronous=FULL and, for comparison, synchronous=OFF."""
    with tempfile.TemporaryDirectory(prefix="breakglass-bench-") as name:
        root = Path(name)
        # Untimed: imports the actions and fills the template and SQL caches.
        run_once(root / "warm-up", WARM_UP_STEP_COUNT, sync_full=True)
        full, full_runs = per_step_ms(root, sync_full=True, label="full")
        off, off_runs = per_step_ms(root, sync_full=False, label="off")
    figures = timing_figures(full, full_runs, off, off_runs) + store_figures(full_runs[-1])
    result = BenchmarkResult(NAME, SUMMARY, figures)
    result.notes.append(
        f"per step = (T({STEP_COUNT} steps) - T(1 step)) / {STEP_COUNT - 1}, per repetition. "
        "Each run gets a new SQLite state directory."
    )
    return result
