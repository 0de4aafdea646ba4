"""The health suite behind `breakglass health`, and the `health.run` action that runs it.

Every check runs concurrently under its own timeout, so a hanging endpoint fails its own
check without holding up the others, and a check that raises fails alone.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import ClassVar, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails

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
    TRANSPORT_ERRORS,
    HttpCheckParams,
    OutgoingRequest,
    Reply,
    append_chunk,
    check_request,
    evaluate_reply,
    format_seconds,
    make_reply,
    resolve_headers,
    target_of,
    transport_error,
)
from breakglass.clock import SYSTEM_CLOCK, Clock
from breakglass.config.model import HttpHealthCheck
from breakglass.config.redaction import redact
from breakglass.errors import NotFoundError

log = logging.getLogger(__name__)

# Interval in seconds at which a running suite checks its cancel event.
CANCEL_POLL_INTERVAL = 0.1


class CheckStatus(StrEnum):
    PASS = "pass"  # noqa: S105 - a check status, not a password
    WARN = "warn"
    FAIL = "fail"


class CheckResult(BaseModel):
    """The result of one health check."""

    model_config = ConfigDict(extra="forbid")

    name: str
    status: CheckStatus
    severity: Literal["critical", "warning"]
    latency: float | None = Field(
        default=None, description="Seconds until the whole response arrived, or null without one."
    )
    message: str = Field(
        default="", description="Reasons for the failure or warning, empty when the check passed."
    )

    def counts_as_failure(self, strict: bool) -> bool:
        """Return whether this result fails the suite. With `strict`, warnings count too."""
        if self.status == CheckStatus.FAIL:
            return self.severity == "critical" or strict
        return self.status == CheckStatus.WARN and strict


class SuiteReport(BaseModel):
    """The results of a health suite, in the order the checks are configured."""

    model_config = ConfigDict(extra="forbid")

    results: list[CheckResult] = Field(default_factory=list)

    def failures(self, strict: bool) -> list[CheckResult]:
        return [result for result in self.results if result.counts_as_failure(strict)]

    def passed(self, strict: bool) -> bool:
        """Return whether the suite passed: warnings and warning-severity failures count only when strict."""
        return not self.failures(strict)

    def count(self, status: CheckStatus) -> int:
        return sum(1 for result in self.results if result.status == status)


def select_checks(
    configured: Sequence[HttpHealthCheck], names: Sequence[str] | None
) -> list[HttpHealthCheck]:
    """Return the named checks in the order given, or every configured check when `names` is None."""
    if names is None:
        return list(configured)
    by_name = {check.name: check for check in configured}
    unknown = [name for name in names if name not in by_name]
    if unknown:
        available = ", ".join(by_name) or "none"
        raise NotFoundError(
            f"unknown health check {', '.join(repr(name) for name in unknown)}; "
            f"configured checks: {available}",
            hint="check the names under health.checks in the config",
        )
    return [by_name[name] for name in dict.fromkeys(names)]


def run_suite(
    checks: Sequence[HttpHealthCheck],
    *,
    base_dir: Path,
    clock: Clock = SYSTEM_CLOCK,
    max_timeout: float | None = None,
    cancelled: threading.Event | None = None,
) -> SuiteReport:
    """Run every check concurrently and return one result per check.

    Each check's timeout is its own `timeout`, capped at `max_timeout` when that is given.
    When `cancelled` is set, checks still running fail as "cancelled before the check finished".
    `base_dir` resolves relative `file:` secret references. `clock` measures latency.

    NOTE: this starts its own event loop, so it cannot be called from a running one.
    """
    if not checks:
        return SuiteReport()
    results = asyncio.run(_run_all(checks, base_dir, clock, max_timeout, cancelled))
    return SuiteReport(results=results)


async def _run_all(
    checks: Sequence[HttpHealthCheck],
    base_dir: Path,
    clock: Clock,
    max_timeout: float | None,
    cancelled: threading.Event | None,
) -> list[CheckResult]:
    async with httpx.AsyncClient(follow_redirects=False) as client:
        tasks = []
        for check in checks:
            timeout = check.timeout if max_timeout is None else min(check.timeout, max_timeout)
            coroutine = _run_guarded(client, check, base_dir, clock, timeout)
            tasks.append(asyncio.create_task(coroutine))
        await _wait_all(tasks, cancelled)
    return [_result_of(task, check) for task, check in zip(tasks, checks, strict=True)]


async def _wait_all(
    tasks: list[asyncio.Task[CheckResult]], cancelled: threading.Event | None
) -> None:
    if cancelled is None:
        await asyncio.wait(tasks)
        return
    pending = set(tasks)
    while pending:
        _, pending = await asyncio.wait(pending, timeout=CANCEL_POLL_INTERVAL)
        if cancelled.is_set():
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            return


def _result_of(task: asyncio.Task[CheckResult], check: HttpHealthCheck) -> CheckResult:
    if task.cancelled():
        return _failed(check, "cancelled before the check finished")
    return task.result()


async def _run_guarded(
    client: httpx.AsyncClient, check: HttpHealthCheck, base_dir: Path, clock: Clock, timeout: float
) -> CheckResult:
    try:
        return await _run_check(client, check, base_dir, clock, timeout)
    except Exception as e:
        # One broken check must not stop the suite, so the bug is logged and the check fails.
        log.exception("health check %s raised an unexpected error", check.name)
        return _failed(check, redact(f"internal error: {type(e).__name__}: {e}"))


async def _run_check(
    client: httpx.AsyncClient, check: HttpHealthCheck, base_dir: Path, clock: Clock, timeout: float
) -> CheckResult:
    try:
        params = HttpCheckParams.from_health_check(check)
    except ValidationError as e:
        problems = "; ".join(_describe_error(error) for error in e.errors())
        return _failed(check, f"invalid check: {problems}")
    try:
        request = check_request(params, resolve_headers(params, base_dir))
    except ActionError as e:
        return _failed(check, e.message)
    try:
        # asyncio.timeout bounds the whole exchange, also a server that trickles bytes.
        async with asyncio.timeout(timeout):
            reply = await _send(client, request, timeout, clock)
    except TimeoutError:
        return _failed(check, f"{request.describe()} timed out after {format_seconds(timeout)}")
    except ActionError as e:
        return _failed(check, e.message)
    outcome = evaluate_reply(params, reply, clock.now())
    status = CheckStatus.PASS
    if outcome.failures:
        status = CheckStatus.FAIL
    elif outcome.warnings:
        status = CheckStatus.WARN
    return CheckResult(
        name=check.name,
        status=status,
        severity=check.severity,
        latency=reply.latency,
        message=redact(outcome.summary(reply)),
    )


async def _send(
    client: httpx.AsyncClient, request: OutgoingRequest, timeout: float, clock: Clock
) -> Reply:
    started = clock.monotonic()
    buffer = bytearray()
    try:
        async with client.stream(
            request.method,
            request.url,
            headers=request.headers,
            content=request.content,
            timeout=timeout,
        ) as response:
            async for chunk in response.aiter_bytes():
                append_chunk(buffer, chunk, request)
    except TRANSPORT_ERRORS as e:
        raise transport_error(request, e, timeout) from None
    return make_reply(response, bytes(buffer), clock.monotonic() - started)


def _describe_error(error: ErrorDetails) -> str:
    location = ".".join(str(part) for part in error["loc"])
    return f"{location}: {error['msg']}" if location else error["msg"]


def _failed(check: HttpHealthCheck, message: str) -> CheckResult:
    return CheckResult(
        name=check.name, status=CheckStatus.FAIL, severity=check.severity, message=message
    )


def describe_failures(report: SuiteReport, strict: bool) -> str:
    parts = [
        f"{result.name} ({result.status}): {result.message}" for result in report.failures(strict)
    ]
    return "; ".join(parts)


class HealthRunParams(Params):
    checks: list[str] | None = Field(
        default=None, description="Names of the checks to run. Default: every configured check."
    )
    strict: bool = Field(
        default=False,
        description="Also fail on warnings and on failing checks of severity warning.",
    )


class HealthRunOutputs(Outputs):
    passed: bool
    strict: bool
    report: SuiteReport


class HealthRun(Action[HealthRunParams, HealthRunOutputs]):
    name: ClassVar[str] = "health.run"
    summary: ClassVar[str] = "Run the configured health checks and fail when the suite fails."
    params_model: ClassVar[type[Params]] = HealthRunParams
    outputs_model: ClassVar[type[Outputs]] = HealthRunOutputs
    mutating: ClassVar[bool] = False
    idempotent: ClassVar[bool] = True

    def plan(self, params: HealthRunParams, ctx: ActionContext) -> PlanResult:
        checks = _select(params, ctx)
        names = ", ".join(check.name for check in checks)
        mode = " (strict)" if params.strict else ""
        warnings = []
        if not checks:
            warnings.append(
                f"no health checks are configured in {ctx.config.source}, so this step passes "
                "without checking anything"
            )
        targets = dict.fromkeys(target_of(check.url) for check in checks)
        return PlanResult(
            summary=f"run {len(checks)} health checks{mode}: {names or 'none'}",
            target=", ".join(targets) or "none",
            warnings=warnings,
        )

    def run(self, params: HealthRunParams, ctx: ActionContext) -> HealthRunOutputs:
        checks = _select(params, ctx)
        if not checks:
            ctx.progress(f"no health checks are configured in {ctx.config.source}")
        report = run_suite(
            checks,
            base_dir=ctx.config.base_dir,
            clock=ctx.clock,
            max_timeout=ctx.timeout,
            cancelled=ctx.cancelled,
        )
        if ctx.cancelled.is_set():
            raise ActionCancelledError("health.run was cancelled while the checks ran")
        passed = report.passed(params.strict)
        outputs = HealthRunOutputs(passed=passed, strict=params.strict, report=report)
        if not passed:
            raise ActionError(
                f"health checks failed: {describe_failures(report, params.strict)}",
                outputs=outputs.model_dump(),
            )
        return outputs


def _select(params: HealthRunParams, ctx: ActionContext) -> list[HttpHealthCheck]:
    try:
        return select_checks(ctx.config.model.health.checks, params.checks)
    except NotFoundError as e:
        raise ActionError(e.message) from e
