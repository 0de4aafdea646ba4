"""Health suite of 20 HTTP checks where one endpoint takes 1 s to respond.

A ThreadingHTTPServer on 127.0.0.1 (port chosen by the OS) serves /fast at once, /medium
after 100 ms and /slow after 1 s. `run_suite` runs one check of /slow and 19 of /fast,
each with a 5 s timeout. A suite that runs its checks concurrently needs about 1 s, so
the figure is wall time / 1 s, ideally close to 1.0. A sequential suite would need at
least 1 s + 19 x the latency of one fast check, measured by a suite of a single check.

On loopback a fast check takes a few ms, so that sequential bound is close to 1.0 as
well. A second suite with 19 checks of /medium distinguishes the two, because it stays
near 1.1 when concurrent but would need at least 1 s + 19 x 100 ms = 2.9 s in sequence.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from benchmarks.common import BenchmarkResult, Figure
from breakglass.actions.health import CheckStatus, run_suite
from breakglass.config.model import HttpHealthCheck

NAME = "health_suite"
SUMMARY = "run_suite with 20 checks, one of them 1 s slow: wall time / 1 s"

HOST = "127.0.0.1"
CHECK_COUNT = 20
REPETITIONS = 5
MEDIUM_REPETITIONS = 3
SINGLE_CHECK_REPETITIONS = 10
SERVER_STOP_TIMEOUT_SECONDS = 5.0
RESPONSE_BODY = b'{"status": "ok"}'
# Seconds each endpoint waits before it sends its response.
DELAYS = {"/fast": 0.0, "/medium": 0.1, "/slow": 1.0}
SLOW_SECONDS = DELAYS["/slow"]


class EndpointHandler(BaseHTTPRequestHandler):
    """Serves the paths in DELAYS after their delay, and 404 for anything else."""

    def do_GET(self) -> None:
        delay = DELAYS.get(self.path)
        if delay is None:
            self.send_error(404)
            return
        time.sleep(delay)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(RESPONSE_BODY)))
        self.end_headers()
        self.wfile.write(RESPONSE_BODY)

    def log_message(self, format: str, *args: object) -> None:
        """Drop the per-request log line, which would flood the benchmark's output."""


class EndpointServer(ThreadingHTTPServer):
    # The default listen backlog of 5 drops connection attempts when 20 checks connect
    # at once, and a dropped SYN is retried only after about 1 s, which would measure
    # the kernel's retry timer instead of the suite.
    request_queue_size = 64
    daemon_threads = True


@contextmanager
def serving() -> Iterator[str]:
    """Serve the endpoints on 127.0.0.1 in a thread and yield the base URL."""
    server = EndpointServer((HOST, 0), EndpointHandler)
    thread = threading.Thread(target=server.serve_forever, name="bench-http", daemon=True)
    thread.start()
    try:
        yield f"http://{HOST}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=SERVER_STOP_TIMEOUT_SECONDS)


@contextmanager
def bypassing_proxies() -> Iterator[None]:
    """Add 127.0.0.1 to NO_PROXY while inside, so httpx never sends a check to a proxy."""
    saved = {name: os.environ.get(name) for name in ("NO_PROXY", "no_proxy")}
    for name, value in saved.items():
        os.environ[name] = f"{value},{HOST}" if value else HOST
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def build_checks(base_url: str, paths: list[str]) -> list[HttpHealthCheck]:
    """Build one check per path, in the order given."""
    return [
        HttpHealthCheck(name=f"check-{index:02d}", url=f"{base_url}{path}", timeout="5s")
        for index, path in enumerate(paths)
    ]


def run_checked(checks: list[HttpHealthCheck], base_dir: Path) -> list[float]:
    """Run the suite and return each check's latency. Raise RuntimeError when a check failed."""
    report = run_suite(checks, base_dir=base_dir)
    failed = [result for result in report.results if result.status != CheckStatus.PASS]
    if failed:
        details = "; ".join(f"{result.name}: {result.message}" for result in failed)
        raise RuntimeError(f"{len(failed)} health checks failed: {details}")
    return [result.latency or 0.0 for result in report.results]


@dataclass
class Samples:
    """Raw measurements, in seconds, gathered by `measure`."""

    suite_wall: list[float] = field(default_factory=list)
    suite_overhead: list[float] = field(default_factory=list)
    fast_latency: list[float] = field(default_factory=list)
    medium_suite_wall: list[float] = field(default_factory=list)
    lone_wall: list[float] = field(default_factory=list)
    lone_latency: list[float] = field(default_factory=list)


def measure(base_url: str, base_dir: Path) -> Samples:
    """Run the 20-check suites and the single-check suite repeatedly against `base_url`."""
    samples = Samples()
    others = CHECK_COUNT - 1
    suite = build_checks(base_url, ["/slow"] + ["/fast"] * others)
    medium_suite = build_checks(base_url, ["/slow"] + ["/medium"] * others)
    lone = build_checks(base_url, ["/fast"])
    # Untimed: the first suite also pays for importing parts of httpx and asyncio.
    run_checked(suite, base_dir)
    for _ in range(REPETITIONS):
        started = time.perf_counter()
        latencies = run_checked(suite, base_dir)
        wall = time.perf_counter() - started
        samples.suite_wall.append(wall)
        samples.suite_overhead.append(wall - latencies[0])
        samples.fast_latency.extend(latencies[1:])
    for _ in range(MEDIUM_REPETITIONS):
        started = time.perf_counter()
        run_checked(medium_suite, base_dir)
        samples.medium_suite_wall.append(time.perf_counter() - started)
    for _ in range(SINGLE_CHECK_REPETITIONS):
        started = time.perf_counter()
        latencies = run_checked(lone, base_dir)
        samples.lone_wall.append(time.perf_counter() - started)
        samples.lone_latency.append(latencies[0])
    return samples


def in_ms(seconds: list[float]) -> list[float]:
    return [value * 1000 for value in seconds]


def per_slow_second(seconds: list[float]) -> list[float]:
    return [value / SLOW_SECONDS for value in seconds]


def figures_for(samples: Samples) -> list[Figure]:
    """Turn the samples into figures, led by the wall time to 1 s ratio."""
    others = CHECK_COUNT - 1
    sequential = SLOW_SECONDS + others * statistics.median(samples.lone_latency)
    medium_sequential = SLOW_SECONDS + others * DELAYS["/medium"]
    return [
        Figure.from_samples("suite wall time / 1 s", "ratio", per_slow_second(samples.suite_wall)),
        Figure.single(
            "sequential estimate / 1 s",
            "ratio",
            sequential / SLOW_SECONDS,
            note="estimate: 1 s + 19 x median latency of a lone fast check",
        ),
        Figure.from_samples("suite wall time", "s", samples.suite_wall),
        Figure.from_samples(
            "suite wall time - slow check latency",
            "ms",
            in_ms(samples.suite_overhead),
            note="the suite's own cost",
        ),
        Figure.from_samples(
            "fast check latency inside the suite", "ms", in_ms(samples.fast_latency)
        ),
        Figure.from_samples("suite of one fast check, wall time", "ms", in_ms(samples.lone_wall)),
        Figure.from_samples(
            "suite of one fast check, check latency", "ms", in_ms(samples.lone_latency)
        ),
        Figure.from_samples(
            "suite with 19 checks of 100 ms, wall / 1 s",
            "ratio",
            per_slow_second(samples.medium_suite_wall),
            note=f"sequential would be >= {medium_sequential / SLOW_SECONDS:.1f}",
        ),
    ]


def run() -> BenchmarkResult:
    """Measure the suite's wall time against the 1 s ideal, and one fast check alone."""
    with bypassing_proxies(), serving() as base_url:
        samples = measure(base_url, Path.cwd())
    result = BenchmarkResult(NAME, SUMMARY, figures_for(samples))
    result.notes.append(
        f"{CHECK_COUNT} checks with a 5 s timeout against a ThreadingHTTPServer on {HOST}, "
        f"endpoint delays in s: {DELAYS}"
    )
    return result
