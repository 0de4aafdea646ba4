"""Planning: what each step would do, and where, with live reads only and no changes.

Parameters that depend on earlier steps' outputs cannot be known before those steps run;
the plan shows them as pending instead of guessing.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from breakglass.actions import registry
from breakglass.actions.base import Action, ActionContext, ActionError, PlanResult
from breakglass.config.loading import LoadedConfig
from breakglass.config.redaction import REDACTOR
from breakglass.runbooks.model import Runbook, Step
from breakglass.runbooks.templating import Pending, TemplateError, evaluate_condition, render_value


class StepPlan(BaseModel):
    id: str
    title: str
    action: str
    summary: str
    target: str
    changes: list[str] = Field(default_factory=list)
    details: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    mutating: bool = False
    gated: bool = False
    destructive: bool = False
    confirm_message: str | None = None
    gate_target: str | None = Field(
        default=None,
        description="What a destructive approval names: the confirm target, else the plan's.",
    )
    condition: str | None = None
    always: bool = False
    undo: str | None = None
    complete: bool = True
    error: str | None = Field(
        default=None,
        description="Why the step cannot run, when its action raised an error in planning.",
    )
    unreachable: bool = False

    def digest(self) -> str:
        """Return a fingerprint of the change itself, which an approval is bound to."""
        body = json.dumps([self.action, self.summary, self.target, self.changes], sort_keys=True)
        return hashlib.sha256(body.encode()).hexdigest()


@dataclass
class TemplateContext:
    inputs: dict[str, Any]
    config: LoadedConfig
    run: dict[str, Any]
    steps: dict[str, dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return {
            "inputs": self.inputs,
            "config": self.config.model.model_dump(mode="json", by_alias=False),
            "run": self.run,
            "steps": self.steps,
        }


def pending_steps(runbook: Runbook) -> dict[str, dict[str, Any]]:
    return {
        step.id: {
            "outputs": Pending(f"steps.{step.id}.outputs"),
            "status": Pending(f"steps.{step.id}.status"),
        }
        for step in runbook.steps
    }


def _has_pending(value: Any) -> bool:
    if isinstance(value, Pending):
        return True
    if isinstance(value, str):
        return "known after it runs>" in value
    if isinstance(value, dict):
        return any(_has_pending(item) for item in value.values())
    if isinstance(value, list):
        return any(_has_pending(item) for item in value)
    return False


def describe_error(error: Exception) -> str:
    """Say what is wrong with rendered parameters, one `field: problem` per error."""
    if not isinstance(error, ValidationError):
        return str(error)
    problems = []
    for item in error.errors(include_url=False):
        field = ".".join(str(part) for part in item["loc"]) or "parameters"
        problems.append(f"{field}: {item['msg']} (got {item.get('input')!r})")
    return "; ".join(problems)


def timeout_for(step: Step, action: Action[Any, Any]) -> float:
    return step.timeout if step.timeout is not None else action.default_timeout


def plan_step(step: Step, context: dict[str, Any], ctx: ActionContext) -> StepPlan:
    """Plan one step against a template context, reporting user errors in the plan instead of raising."""
    action = registry.get_action(step.action)
    ctx.timeout = timeout_for(step, action)
    gated = step.confirm is not None or action.interactive
    base: dict[str, Any] = {
        "id": step.id,
        "title": step.label,
        "action": step.action,
        "mutating": action.mutating,
        "gated": gated,
        "destructive": bool(step.confirm and step.confirm.destructive),
        "always": step.always,
        "condition": step.when,
        "undo": step.undo.action if step.undo else None,
    }
    if step.confirm is not None:
        try:
            base["confirm_message"] = str(render_value(step.confirm.message, context))
        except TemplateError:
            base["confirm_message"] = step.confirm.message
        if step.confirm.target is not None:
            try:
                base["gate_target"] = str(render_value(step.confirm.target, context))
            except TemplateError:
                base["gate_target"] = step.confirm.target
    try:
        rendered = render_value(step.with_, context)
    except TemplateError as e:
        return StepPlan(
            **base, summary=f"cannot render parameters: {e}", target="unknown", complete=False
        )
    if _has_pending(rendered):
        shown = REDACTOR.redact(json.dumps(rendered, default=str))
        return StepPlan(
            **base,
            summary=f"{step.action} with parameters that depend on earlier steps: {shown}",
            target="known after earlier steps run",
            complete=False,
        )
    try:
        params = action.parse(rendered)
    except ValidationError as e:
        return StepPlan(
            **base,
            summary=f"invalid parameters: {describe_error(e)}",
            target="unknown",
            complete=False,
            error=f"invalid parameters: {REDACTOR.redact(describe_error(e))}",
        )
    try:
        result: PlanResult = action.plan(params, ctx)
    except ActionError as e:
        return StepPlan(
            **base,
            summary=f"planning failed: {e.message}",
            target="unknown",
            complete=False,
            error=REDACTOR.redact(e.message),
            unreachable=e.unreachable,
        )
    return StepPlan(
        **base | {"mutating": result.mutating},
        summary=REDACTOR.redact(result.summary),
        target=REDACTOR.redact(result.target),
        changes=[REDACTOR.redact(line) for line in result.changes],
        details=[REDACTOR.redact(line) for line in result.details],
        warnings=[REDACTOR.redact(line) for line in result.warnings],
    )


def plan_runbook(runbook: Runbook, context: TemplateContext, ctx: ActionContext) -> list[StepPlan]:
    """Plan every step in order, assuming earlier steps succeed."""
    values = context.as_dict()
    values["steps"] = pending_steps(runbook)
    plans: list[StepPlan] = []
    for step in runbook.steps:
        ctx.step_id = step.id
        plan = plan_step(step, values, ctx)
        if step.when is not None:
            try:
                if not evaluate_condition(step.when, values):
                    plan.summary = f"skipped: when {step.when!r} is false"
                    plan.changes = []
                    plan.mutating = False
                    plan.error = None
            except TemplateError:
                plan.warnings.append(f"runs only if {step.when!r}, decided when the run reaches it")
                # Whether the step runs at all is not known yet, so its planning error does not stop the run.
                plan.error = None
        plans.append(plan)
    return plans


def refusals(plans: list[StepPlan]) -> list[StepPlan]:
    """Return the steps whose action refused in planning and that will run."""
    return [plan for plan in plans if plan.error is not None and not plan.always]
