"""`log.message` and `manual`: steps that talk to people rather than systems."""

from __future__ import annotations

import logging
from typing import ClassVar, Literal

from pydantic import Field

from breakglass.actions.base import Action, ActionContext, ActionError, Outputs, Params, PlanResult

log = logging.getLogger(__name__)


class LogParams(Params):
    message: str
    level: Literal["info", "warning", "error"] = "info"


class LogOutputs(Outputs):
    message: str


class LogMessage(Action[LogParams, LogOutputs]):
    name = "log.message"
    summary = "Write a message to the run's journal and log."
    params_model: ClassVar[type[Params]] = LogParams
    outputs_model: ClassVar[type[Outputs]] = LogOutputs
    mutating = False
    idempotent = True

    def plan(self, params: LogParams, ctx: ActionContext) -> PlanResult:
        return PlanResult(summary=f"log: {params.message}", target="the run journal")

    def run(self, params: LogParams, ctx: ActionContext) -> LogOutputs:
        log.log(logging.getLevelName(params.level.upper()), "%s", params.message)
        ctx.progress(params.message)
        return LogOutputs(message=params.message)


class ManualParams(Params):
    instructions: str = Field(description="What the operator must do by hand.")
    target: str = Field(default="outside breakglass", description="Where the operator acts.")


class ManualOutputs(Outputs):
    confirmed_by: str
    note: str


class Manual(Action[ManualParams, ManualOutputs]):
    """A step no API can do. The engine gates it like a confirmation: the operator reads
    the instructions, does the work, and confirms with a note (at the prompt, or with
    `breakglass approve RUN STEP --note ...`)."""

    name = "manual"
    summary = "Show instructions and wait for the operator's confirmation and note."
    params_model: ClassVar[type[Params]] = ManualParams
    outputs_model: ClassVar[type[Outputs]] = ManualOutputs
    mutating = True
    idempotent = True
    interactive = True

    def plan(self, params: ManualParams, ctx: ActionContext) -> PlanResult:
        return PlanResult(
            summary=f"operator does by hand: {params.instructions}",
            target=params.target,
            mutating=True,
        )

    def run(self, params: ManualParams, ctx: ActionContext) -> ManualOutputs:
        if ctx.approval is None:
            raise ActionError("manual step ran without the operator's confirmation")
        return ManualOutputs(confirmed_by=ctx.approval.actor, note=ctx.approval.note or "")
