"""Run the benchmarks, print their figures and write them to benchmarks/results/.

Usage: `uv run python benchmarks/run.py [NAME ...]`, or `make bench` for all of them.
The exit status is 1 when any benchmark raised an exception. The other benchmarks still
run, and their results are written.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import shlex
import sys
import time
import traceback
from pathlib import Path
from typing import Any

BENCHMARKS_DIR = Path(__file__).resolve().parent
PROJECT_DIR = BENCHMARKS_DIR.parent
RESULTS_DIR = BENCHMARKS_DIR / "results"
NAMES = (
    "cold_start",
    "engine_overhead",
    "health_suite",
    "pitr_overhead",
    "restore_drill",
    "sandbox_demo",
    "snapshot_restore",
)

# `python benchmarks/run.py` puts only benchmarks/ on sys.path, but the modules import
# each other as `benchmarks.*`, so the project directory must be there too.
if str(PROJECT_DIR) not in sys.path:
    sys.path.insert(0, str(PROJECT_DIR))

from benchmarks.common import BenchmarkResult, Figure, load_average, machine_facts  # noqa: E402


def parse_names(argv: list[str]) -> list[str]:
    """Return the benchmark names to run, all of them when none are given."""
    parser = argparse.ArgumentParser(description="Run breakglass benchmarks.")
    parser.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help=f"benchmarks to run (default: all): {', '.join(NAMES)}",
    )
    names: list[str] = parser.parse_args(argv).names
    unknown = [name for name in names if name not in NAMES]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}, choose from {', '.join(NAMES)}")
    return names or list(NAMES)


def run_benchmark(name: str) -> tuple[BenchmarkResult | None, str | None]:
    """Import and run one benchmark. Return its result, or the traceback when it raised."""
    started = time.perf_counter()
    try:
        module = importlib.import_module(f"benchmarks.{name}")
        result: BenchmarkResult = module.run()
    except Exception:
        return None, traceback.format_exc()
    result.elapsed_seconds = time.perf_counter() - started
    return result, None


def format_value(value: float) -> str:
    """Format a figure with about three significant digits."""
    if value == 0 or abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def figure_row(figure: Figure) -> list[str]:
    spread = (
        f"{format_value(figure.minimum)}..{format_value(figure.maximum)}" if figure.runs > 1 else ""
    )
    return [
        figure.label,
        format_value(figure.median),
        spread,
        str(figure.runs),
        figure.unit,
        figure.note,
    ]


def print_table(result: BenchmarkResult) -> None:
    """Print one benchmark's figures as an aligned text table."""
    header = ["figure", "median", "min..max", "runs", "unit", "note"]
    rows = [header, *(figure_row(figure) for figure in result.figures)]
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    print(f"\n== {result.name}: {result.summary} ({result.elapsed_seconds:.1f} s)")
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
        print("  " + "  ".join(cells).rstrip())
    for note in result.notes:
        print(f"  note: {note}")


def print_machine(facts: dict[str, Any]) -> None:
    print(
        f"machine: {facts['cpu_model']}, {facts['cpu_count']} CPUs "
        f"({facts['usable_cpus']} usable), {facts['python']}, SQLite {facts['sqlite']}, "
        f"{facts['platform']}"
    )
    print(f"load average (1, 5, 15 min) at start: {facts['load_average']}")


def write_results(document: dict[str, Any], names: list[str]) -> Path:
    """Write the JSON document under benchmarks/results/ and return its path."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    suffix = "all" if list(names) == list(NAMES) else "-".join(names)
    path = RESULTS_DIR / f"{stamp}-{suffix}.json"
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return path


def main(argv: list[str]) -> int:
    names = parse_names(argv)
    facts = machine_facts()
    print_machine(facts)
    started = dt.datetime.now(dt.UTC)
    results: list[dict[str, Any]] = []
    failures: dict[str, str] = {}
    for name in names:
        print(f"\nrunning {name} ...", flush=True)
        result, error = run_benchmark(name)
        if result is None:
            failures[name] = error or "unknown error"
            print(f"{name} failed:\n{error}", file=sys.stderr)
            continue
        print_table(result)
        results.append(result.to_json())
    facts["load_average_at_end"] = load_average()
    print(f"\nload average (1, 5, 15 min) at end: {facts['load_average_at_end']}")
    document = {
        "started_at": started.isoformat(timespec="seconds"),
        "command": shlex.join([Path(sys.executable).name, *sys.argv]),
        "machine": facts,
        "results": results,
        "failures": failures,
    }
    print(f"results written to {write_results(document, names)}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
