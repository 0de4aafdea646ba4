"""Actions used only by tests: one that ignores its deadline, one that fails temporarily."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import ClassVar

from breakglass.actions.base import (
    Action,
    ActionContext,
    ActionError,
    NoOutputs,
    Outputs,
    Params,
    PlanResult,
)


class StallParams(Params):
    seconds: float
    marker: str


class Stall(Action[StallParams, NoOutputs]):
    """Sleeps past any deadline without looking at it, like a client without a timeout."""

    name = "test.stall"
    summary = "Sleep, ignoring the deadline."
    params_model: ClassVar[type[Params]] = StallParams
    mutating = True

    def plan(self, params: StallParams, ctx: ActionContext) -> PlanResult:
        return PlanResult(summary=f"stall {params.seconds}s", target="nowhere", mutating=True)

    def run(self, params: StallParams, ctx: ActionContext) -> NoOutputs:
        threading.Event().wait(params.seconds)
        Path(params.marker).write_text("finished late")
        return NoOutputs()


class FlakyParams(Params):
    counter: str
    fail_times: int
    temporary: bool = True


class FlakyOutputs(Outputs):
    attempts: int


class Flaky(Action[FlakyParams, FlakyOutputs]):
    """Fails the first `fail_times` calls, counting calls in a file."""

    name = "test.flaky"
    summary = "Fail a few times, then succeed."
    params_model: ClassVar[type[Params]] = FlakyParams
    outputs_model: ClassVar[type[Outputs]] = FlakyOutputs
    mutating = False
    idempotent = True

    def plan(self, params: FlakyParams, ctx: ActionContext) -> PlanResult:
        return PlanResult(summary="flaky", target="nowhere")

    def run(self, params: FlakyParams, ctx: ActionContext) -> FlakyOutputs:
        path = Path(params.counter)
        count = int(path.read_text()) + 1 if path.exists() else 1
        path.write_text(str(count))
        if count <= params.fail_times:
            raise ActionError(f"call {count} failed", temporary=params.temporary)
        return FlakyOutputs(attempts=count)
