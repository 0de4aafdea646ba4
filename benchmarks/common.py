"""Result types, summary statistics and machine facts shared by the benchmarks."""

from __future__ import annotations

import os
import platform
import sqlite3
import statistics
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

CPUINFO = Path("/proc/cpuinfo")


@dataclass(frozen=True)
class Figure:
    """One reported number: the median of its samples, with their minimum and maximum."""

    label: str
    unit: str
    median: float
    minimum: float
    maximum: float
    runs: int
    note: str = ""

    @classmethod
    def from_samples(
        cls, label: str, unit: str, samples: Sequence[float], note: str = ""
    ) -> Figure:
        """Summarize repeated measurements. Raise ValueError when there are none."""
        if not samples:
            raise ValueError(f"figure {label!r} has no samples")
        return cls(
            label=label,
            unit=unit,
            median=statistics.median(samples),
            minimum=min(samples),
            maximum=max(samples),
            runs=len(samples),
            note=note,
        )

    @classmethod
    def single(cls, label: str, unit: str, value: float, note: str = "") -> Figure:
        """Wrap a derived or counted value, such as a ratio of medians or a row count."""
        return cls(label, unit, value, value, value, 1, note)


@dataclass
class BenchmarkResult:
    """The figures and notes of one benchmark, and how long the benchmark took to run."""

    name: str
    summary: str
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    elapsed_seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def cpu_model() -> str:
    """Read the CPU model name from /proc/cpuinfo, falling back to platform.processor()."""
    try:
        for line in CPUINFO.read_text(encoding="utf-8").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                return value.strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_average() -> list[float] | None:
    """Return the 1, 5 and 15 minute load averages, or None where the OS has none."""
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return None


def machine_facts() -> dict[str, Any]:
    """Collect the facts that the figures depend on: CPU, Python, OS, SQLite and load."""
    from breakglass import __version__

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "usable_cpus": usable,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "python_executable": sys.executable,
        "platform": platform.platform(),
        "sqlite": sqlite3.sqlite_version,
        "breakglass": __version__,
        "load_average": load_average(),
    }
