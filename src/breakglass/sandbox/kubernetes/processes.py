"""Running one Job container's command as a local process, with a timeout and a bounded log."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from dataclasses import dataclass
from pathlib import Path

from breakglass.sandbox.kubernetes.clock import SandboxClock

# The kubelet rotates container logs at 10 MiB by default. A sandbox process keeps the last
# 1 MiB of its output, which bounds memory.
LOG_LIMIT_BYTES = 1024 * 1024
# How long to keep reading a process's output after it exited, in case a grandchild that
# left its process group keeps the pipe open.
_DRAIN_SECONDS = 2.0
# The exit code container runtimes report when they cannot start the command.
_START_FAILED_EXIT_CODE = 128


@dataclass(frozen=True)
class Outcome:
    """The end of a Job container's process: exit code, output and reason."""

    exit_code: int
    output: str
    reason: str  # Completed, Error, DeadlineExceeded or StartError
    started_at: str
    finished_at: str


async def run_process(
    argv: list[str], env: dict[str, str], cwd: Path, timeout: float, clock: SandboxClock
) -> Outcome:
    """Run argv (no shell) with stdout and stderr combined; kill its process group on timeout.

    A cancelled call kills the process group too, and waits for the process to exit.
    """
    started_at = clock.timestamp()
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
            cwd=cwd,
            # A session of its own, so that a timeout or stop kills the whole process group.
            start_new_session=True,
        )
    except OSError as e:
        return start_failed(f"failed to start {argv[0]!r}: {e}", clock)
    output = bytearray()
    assert process.stdout is not None
    reader = asyncio.create_task(_read_into(process.stdout, output))
    reason = "Completed"
    try:
        await asyncio.wait_for(process.wait(), timeout)
    except TimeoutError:
        _kill_group(process.pid)
        await process.wait()
        reason = "DeadlineExceeded"
    except asyncio.CancelledError:
        _kill_group(process.pid)
        await process.wait()
        reader.cancel()
        raise
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(reader), _DRAIN_SECONDS)
    reader.cancel()
    code = int(process.returncode if process.returncode is not None else -1)
    if code < 0:
        # Killed by signal N: containers report 128 + N, as shells do.
        code = 128 - code
    if reason == "Completed" and code != 0:
        reason = "Error"
    return Outcome(code, output.decode(errors="replace"), reason, started_at, clock.timestamp())


def start_failed(message: str, clock: SandboxClock) -> Outcome:
    now = clock.timestamp()
    return Outcome(_START_FAILED_EXIT_CODE, message + "\n", "StartError", now, now)


async def _read_into(stream: asyncio.StreamReader, sink: bytearray) -> None:
    while chunk := await stream.read(65536):
        sink.extend(chunk)
        if len(sink) > LOG_LIMIT_BYTES:
            del sink[: len(sink) - LOG_LIMIT_BYTES]


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
