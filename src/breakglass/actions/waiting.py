"""`wait.until`: poll an HTTP check until it passes, the step times out or it is cancelled."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from pydantic import Field, field_validator

from breakglass.actions.base import (
    Action,
    ActionCancelledError,
    ActionContext,
    ActionError,
    Outputs,
    Params,
    PlanResult,
)
from breakglass.actions.http import (
    HttpCheckParams,
    describe_conditions,
    describe_headers,
    format_seconds,
    resolve_headers,
    run_check,
    target_of,
)
from breakglass.durations import Duration

# Sleeps are cut into slices of at most this many seconds so that a cancel is noticed
# without waiting out a long interval.
SLEEP_SLICE = 1.0


class WaitUntilParams(Params):
    check: HttpCheckParams
    interval: Duration = Field(description="Pause between attempts, for example 5s.")
    max_attempts: int | None = Field(
        default=None, ge=1, description="Stop after this many attempts. Default: until timeout."
    )

    @field_validator("interval")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("interval must be longer than 0s, for example 5s")
        return value


class WaitUntilOutputs(Outputs):
    attempts: int
    elapsed: float = Field(description="Seconds from the first attempt until the check passed.")


class WaitUntil(Action[WaitUntilParams, WaitUntilOutputs]):
    name: ClassVar[str] = "wait.until"
    summary: ClassVar[str] = "Repeat an HTTP check until it passes or the step times out."
    params_model: ClassVar[type[Params]] = WaitUntilParams
    outputs_model: ClassVar[type[Outputs]] = WaitUntilOutputs
    mutating: ClassVar[bool] = False
    idempotent: ClassVar[bool] = True

    def plan(self, params: WaitUntilParams, ctx: ActionContext) -> PlanResult:
        check = params.check
        request = f"HTTP {check.method} {check.url}"
        headers = describe_headers(check.headers, check.secret_headers)
        if headers:
            request += f" with headers {headers}"
        limit = f"up to {format_seconds(ctx.timeout)}"
        if params.max_attempts is not None:
            limit += f" or {_count(params.max_attempts)}"
        return PlanResult(
            summary=(
                f"wait until {request} returns {', '.join(describe_conditions(check))}; "
                f"poll every {format_seconds(params.interval)}, {limit}"
            ),
            target=target_of(check.url),
        )

    def run(self, params: WaitUntilParams, ctx: ActionContext) -> WaitUntilOutputs:
        # Secrets are read once, so a missing secret fails at once instead of at the deadline.
        headers = resolve_headers(params.check, ctx.config.base_dir)
        started = ctx.clock.monotonic()
        attempts = 0
        last: str | None = None
        unreachable = False
        while True:
            remaining = ctx.remaining(started)
            if remaining <= 0:
                timeout = format_seconds(ctx.timeout)
                raise _gave_up(
                    f"timed out after {timeout} and {_count(attempts)}", attempts, last, unreachable
                )
            _raise_if_cancelled(ctx, attempts)
            attempts += 1
            try:
                # Each attempt gets only what is left of the step's timeout.
                attempt_ctx = dataclasses.replace(ctx, timeout=remaining)
                run_check(params.check, headers, attempt_ctx, timeout=remaining)
            except ActionCancelledError:
                raise
            except ActionError as e:
                last = e.message
                unreachable = e.unreachable
            else:
                elapsed = ctx.clock.monotonic() - started
                return WaitUntilOutputs(attempts=attempts, elapsed=elapsed)
            if params.max_attempts is not None and attempts >= params.max_attempts:
                raise _gave_up(
                    f"failed all {_count(attempts)} (max_attempts)", attempts, last, unreachable
                )
            _sleep(ctx, min(params.interval, ctx.remaining(started)))


def _sleep(ctx: ActionContext, seconds: float) -> None:
    while seconds > 0 and not ctx.cancelled.is_set():
        pause = min(seconds, SLEEP_SLICE)
        ctx.clock.sleep(pause)
        seconds -= pause


def _raise_if_cancelled(ctx: ActionContext, attempts: int) -> None:
    if ctx.cancelled.is_set():
        raise ActionCancelledError(
            f"wait.until was cancelled after {_count(attempts)}",
            outputs={"attempts": attempts},
        )


def _gave_up(reason: str, attempts: int, last: str | None, unreachable: bool) -> ActionError:
    message = f"wait.until {reason}"
    if last is not None:
        message += f"; last failure: {last}"
    return ActionError(message, outputs={"attempts": attempts}, unreachable=unreachable)


def _count(attempts: int) -> str:
    return "1 attempt" if attempts == 1 else f"{attempts} attempts"
