"""`shell.run`: run one program from an argv list, with a mandatory timeout.

There is no shell string form: arguments are never re-parsed, so a value with spaces or
quotes cannot turn into another command. Secrets reach the child only through its
environment (`secret_env`), never its argv, which any user on the host can read.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import ClassVar

from pydantic import Field, field_validator

from breakglass.actions.base import (
    Action,
    ActionCancelledError,
    ActionContext,
    ActionError,
    ActionTimeoutError,
    Outputs,
    Params,
    PlanResult,
)
from breakglass.config.redaction import REDACTOR
from breakglass.config.secrets import SecretRef, resolve_secret
from breakglass.durations import format_duration

MAX_CAPTURE = 1024 * 1024
# After SIGTERM, how long the process group gets to exit before SIGKILL.
KILL_GRACE_SECONDS = 3.0
# How often a running child is checked for cancellation.
POLL_SECONDS = 0.1
PASSED_THROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "USER", "LOGNAME")


def _number_as_text(value: object) -> object:
    # A template such as "{{ inputs.seconds }}" renders an integer input as an integer.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


class ShellParams(Params):
    argv: list[str] = Field(
        min_length=1, description="Program and arguments; never a shell string."
    )
    env: dict[str, str] = Field(default_factory=dict)
    secret_env: dict[str, SecretRef] = Field(
        default_factory=dict, description="Environment variables read from secret references."
    )
    cwd: Path | None = None
    inherit_env: bool = Field(
        default=False,
        description="Pass breakglass's whole environment to the child instead of PATH, HOME and the locale.",
    )
    expect_exit: list[int] = Field(default_factory=lambda: [0])

    @field_validator("argv", mode="before")
    @classmethod
    def _list_only(cls, value: object) -> object:
        if isinstance(value, str):
            raise ValueError(
                "argv must be a list such as [systemctl, restart, app]; a shell command string is not accepted"
            )
        return value


class ShellOutputs(Outputs):
    exit_code: int
    stdout: str
    stderr: str
    duration: float


class ShellRun(Action[ShellParams, ShellOutputs]):
    name = "shell.run"
    summary = "Run a program from an argv list with a timeout; its process group is killed at the deadline."
    params_model: ClassVar[type[Params]] = ShellParams
    outputs_model: ClassVar[type[Outputs]] = ShellOutputs
    mutating = True
    idempotent = False
    requires_timeout = True
    enforces_timeout = True

    def plan(self, params: ShellParams, ctx: ActionContext) -> PlanResult:
        changes = [f"argv: {params.argv}"]
        if params.cwd is not None:
            changes.append(f"working directory: {params.cwd}")
        names = sorted([*params.env, *params.secret_env])
        if names:
            changes.append(f"environment: {', '.join(names)}")
        return PlanResult(
            summary=f"run {params.argv[0]} with {len(params.argv) - 1} argument(s) "
            f"(timeout {format_duration(ctx.timeout)}; the process group is killed at the deadline)",
            target=f"local host {socket.gethostname()}",
            changes=changes,
            mutating=True,
        )

    def run(self, params: ShellParams, ctx: ActionContext) -> ShellOutputs:
        env = self._environment(params, ctx)
        for argument in params.argv:
            if REDACTOR.contains_secret(argument):
                raise ActionError(
                    "argv contains a secret value, which other users of this host could read; "
                    "pass it through secret_env instead"
                )
        started = time.monotonic()
        try:
            child = subprocess.Popen(
                params.argv,
                cwd=params.cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as e:
            raise ActionError(f"cannot start {params.argv[0]}: {e.strerror}") from e
        ctx.on_process(child.pid)
        stdout, stderr = self._wait(child, params, ctx, started)
        duration = time.monotonic() - started
        outputs = ShellOutputs(
            exit_code=child.returncode,
            stdout=REDACTOR.redact(stdout),
            stderr=REDACTOR.redact(stderr),
            duration=round(duration, 3),
        )
        if child.returncode not in params.expect_exit:
            tail = (outputs.stderr or outputs.stdout).strip()[-500:]
            raise ActionError(
                f"{params.argv[0]} exited with {child.returncode} (expected {params.expect_exit})"
                + (f": {tail}" if tail else ""),
                outputs=outputs.model_dump(),
            )
        return outputs

    def _environment(self, params: ShellParams, ctx: ActionContext) -> dict[str, str]:
        if params.inherit_env:
            env = dict(os.environ)
        else:
            env = {name: os.environ[name] for name in PASSED_THROUGH if name in os.environ}
        env.update(params.env)
        for name, reference in params.secret_env.items():
            env[name] = resolve_secret(reference, base_dir=ctx.config.base_dir)
        return env

    def _wait(
        self,
        child: subprocess.Popen[bytes],
        params: ShellParams,
        ctx: ActionContext,
        started: float,
    ) -> tuple[str, str]:
        while True:
            left = ctx.timeout - (time.monotonic() - started)
            if ctx.cancelled.is_set():
                self._kill_group(child)
                raise ActionCancelledError(f"{params.argv[0]} was stopped: the run was aborted")
            if left <= 0:
                self._kill_group(child)
                raise ActionTimeoutError(
                    f"{params.argv[0]} did not finish within {format_duration(ctx.timeout)}; "
                    "its process group was killed"
                )
            try:
                out, err = child.communicate(timeout=min(POLL_SECONDS, left))
            except subprocess.TimeoutExpired:
                continue
            return _decode(out), _decode(err)

    def _kill_group(self, child: subprocess.Popen[bytes]) -> None:
        # The child may have started its own children; killing only the leader would leave
        # them running with the step's effects still unfolding.
        for sig, grace in ((signal.SIGTERM, KILL_GRACE_SECONDS), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(child.pid, sig)
            except ProcessLookupError:
                break
            try:
                child.communicate(timeout=grace)
                break
            except subprocess.TimeoutExpired:
                continue
        # The leader has exited; members that ignored SIGTERM may remain until SIGKILL.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)


def _decode(data: bytes | None) -> str:
    if not data:
        return ""
    text = data[:MAX_CAPTURE].decode("utf-8", errors="replace")
    return text + ("\n[output cut at 1 MiB]" if len(data) > MAX_CAPTURE else "")
