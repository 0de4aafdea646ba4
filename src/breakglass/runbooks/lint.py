"""Static checks of a runbook, run by `breakglass lint` and before every plan and run.

Schema errors come from loading; this module adds what the schema cannot see: duplicate
step ids, unknown actions, parameters that fail an action's model, template references
to undefined inputs, steps, outputs or config keys, and undo or always steps that could
not run when they are needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from breakglass.actions import registry
from breakglass.actions.base import Action
from breakglass.config.loading import LoadedConfig
from breakglass.config.model import PlatformConfig
from breakglass.errors import RunbookError
from breakglass.runbooks.inputs import coerce_value
from breakglass.runbooks.loading import LoadedRunbook, parse_runbook, read_source
from breakglass.runbooks.model import Runbook, Step
from breakglass.runbooks.templating import (
    ROOTS,
    Reference,
    TemplateError,
    contains_template,
    references,
)
from breakglass.yamlfile import Finding, child_of

RUN_FIELDS = {"id", "actor", "runbook", "incident"}
STEP_FIELDS = {"outputs", "status"}


@dataclass
class _Place:
    """The place of a template: its step, its phase and its location in the file."""

    index: int | None
    step: Step | None
    loc: list[str | int]
    phase: str = "main"


class Linter:
    def __init__(self, loaded: LoadedRunbook, config: LoadedConfig) -> None:
        self.runbook: Runbook = loaded.runbook
        self.document = loaded.document
        self.file = str(loaded.path)
        self.config = config
        self.findings: list[Finding] = []
        self.actions: dict[str, Action[Any, Any] | None] = {}
        self.action_errors: dict[str, str] = {}

    def add(self, loc: list[str | int], message: str) -> None:
        where = self._where(loc)
        self.findings.append(Finding(self.file, self.document.line_of(loc), where, message))

    def _where(self, loc: list[str | int]) -> str:
        if len(loc) >= 2 and loc[0] == "steps" and isinstance(loc[1], int):
            step = self.runbook.steps[loc[1]]
            rest = ".".join(str(part) for part in loc[2:])
            return f"step {step.id} (steps[{loc[1]}])" + (f" field {rest}" if rest else "")
        return ".".join(str(part) for part in loc)

    def action(self, name: str, loc: list[str | int]) -> Action[Any, Any] | None:
        """Return the action named `name`, adding a finding at `loc` when it cannot be used."""
        if name not in self.actions:
            try:
                self.actions[name] = registry.get_action(name)
            except RunbookError as e:
                self.actions[name] = None
                self.action_errors[name] = e.message + (f"; {e.hint}" if e.hint else "")
        if self.actions[name] is None:
            self.add(loc, self.action_errors[name])
        return self.actions[name]

    def run(self) -> list[Finding]:
        self._check_inputs()
        self._check_ids()
        for index, lock in enumerate(self.runbook.locks):
            self._check_template(lock, _Place(None, None, ["locks", index]), allow_steps=False)
        for index, step in enumerate(self.runbook.steps):
            self._check_step(index, step)
        return self.findings

    def _check_inputs(self) -> None:
        for name, spec in self.runbook.inputs.items():
            if spec.default is not None:
                try:
                    coerce_value(name, spec, spec.default)
                except ValueError as e:
                    self.add(["inputs", name, "default"], f"default does not fit the input: {e}")

    def _check_ids(self) -> None:
        seen: dict[str, int] = {}
        for index, step in enumerate(self.runbook.steps):
            if step.id in seen:
                self.add(
                    ["steps", index, "id"],
                    f"duplicate step id {step.id!r} (first used by steps[{seen[step.id]}])",
                )
            else:
                seen[step.id] = index

    def _check_step(self, index: int, step: Step) -> None:
        base: list[str | int] = ["steps", index]
        action = self.action(step.action, [*base, "action"])
        place = _Place(index, step, [*base, "with"], phase="always" if step.always else "main")
        if action is not None:
            self._check_params(action, step.with_, [*base, "with"])
            if action.destructive and not (step.confirm and step.confirm.destructive):
                self.add(
                    [*base, "confirm"],
                    f"{step.action} replaces data: add `confirm: {{destructive: true, message: ...}}` "
                    "so the operator approves it by naming the target",
                )
            if action.requires_timeout and step.timeout is None:
                self.add(
                    [*base, "timeout"],
                    f"{step.action} needs a timeout: add `timeout: 30s` (or another duration)",
                )
        self._check_tree(step.with_, place)
        if step.when is not None:
            self._check_template(
                step.when, _Place(index, step, [*base, "when"], place.phase), expression=True
            )
        if step.confirm is not None:
            self._check_template(
                step.confirm.message,
                _Place(index, step, [*base, "confirm", "message"], place.phase),
            )
            if step.confirm.target is not None:
                self._check_template(
                    step.confirm.target,
                    _Place(index, step, [*base, "confirm", "target"], place.phase),
                )
        if step.undo is not None:
            undo_loc: list[str | int] = [*base, "undo"]
            undo_action = self.action(step.undo.action, [*undo_loc, "action"])
            if undo_action is not None:
                self._check_params(undo_action, step.undo.with_, [*undo_loc, "with"])
                if (
                    undo_action.requires_timeout
                    and step.undo.timeout is None
                    and step.timeout is None
                ):
                    self.add(
                        [*undo_loc, "timeout"], f"undo action {step.undo.action} needs a timeout"
                    )
            self._check_tree(
                step.undo.with_, _Place(index, step, [*undo_loc, "with"], phase="undo")
            )

    def _check_params(
        self, action: Action[Any, Any], params: dict[str, Any], loc: list[str | int]
    ) -> None:
        try:
            action.params_model.model_validate(params)
        except ValidationError as e:
            for item in e.errors(include_url=False):
                path = [part for part in item["loc"] if isinstance(part, str | int)]
                if _templated(params, path):
                    continue  # the value is known only when rendered
                message = item["msg"]
                if item["type"] == "extra_forbidden":
                    message = f"unknown parameter for {action.name}"
                elif item["type"] == "missing":
                    message = f"required parameter of {action.name} is missing"
                self.add([*loc, *path], message)

    def _check_tree(self, value: Any, place: _Place) -> None:
        if isinstance(value, str):
            self._check_template(value, place)
        elif isinstance(value, dict):
            for key, item in value.items():
                where = _Place(place.index, place.step, [*place.loc, key], place.phase)
                if isinstance(key, str):
                    self._check_template(key, where)
                self._check_tree(item, where)
        elif isinstance(value, list):
            for position, item in enumerate(value):
                self._check_tree(
                    item, _Place(place.index, place.step, [*place.loc, position], place.phase)
                )

    def _check_template(
        self, text: str, place: _Place, *, expression: bool = False, allow_steps: bool = True
    ) -> None:
        if not expression and not contains_template(text):
            return
        try:
            found = references(text, expression=expression)
        except TemplateError as e:
            self.add(place.loc, str(e))
            return
        for reference in found:
            problem = self._check_reference(reference, place, allow_steps=allow_steps)
            if problem:
                self.add(place.loc, problem)

    def _check_reference(
        self, reference: Reference, place: _Place, *, allow_steps: bool
    ) -> str | None:
        root, rest = reference.path[0], reference.path[1:]
        internal = next((part for part in reference.path if part.startswith("_")), None)
        if internal is not None:
            return (
                f"template reads {internal!r}, an internal attribute; templates can read only data"
            )
        if root not in ROOTS:
            return f"undefined variable {root!r} in template (known: {', '.join(ROOTS)})"
        if root == "inputs":
            if rest and rest[0] not in self.runbook.inputs:
                return f"template reads inputs.{rest[0]}, which the runbook does not declare"
            if rest and self.runbook.inputs[rest[0]].may_be_absent and not reference.guarded:
                return (
                    f"template reads inputs.{rest[0]}, which is optional and has no default: give it a "
                    "default, or write `| default(...)` or `if inputs.NAME is defined`"
                )
            return None
        if root == "run":
            if rest and rest[0] not in RUN_FIELDS:
                return f"template reads run.{rest[0]}; run has {', '.join(sorted(RUN_FIELDS))}"
            return None
        if root == "config":
            return self._check_config_path(list(rest))
        if not allow_steps:
            return "locks are taken before any step runs, so they cannot read steps"
        return self._check_step_reference(reference, place)

    def _check_step_reference(self, reference: Reference, place: _Place) -> str | None:
        rest = reference.path[1:]
        if not rest:
            return None
        ids = [step.id for step in self.runbook.steps]
        target = rest[0]
        if target not in ids:
            return f"template reads steps.{target}, but no step has that id"
        position = ids.index(target)
        current = place.index if place.index is not None else len(ids)
        is_self = position == current
        if is_self and place.phase != "undo":
            return f"step {target} reads its own outputs, which exist only after it ends"
        if position > current:
            return f"template reads steps.{target}, which runs later"
        if len(rest) >= 2 and rest[1] not in STEP_FIELDS:
            return f"template reads steps.{target}.{rest[1]}; a step has outputs and status"
        if len(rest) >= 3 and rest[1] == "outputs":
            step = self.runbook.steps[position]
            action = self.actions.get(step.action)
            names = output_names(action.outputs_model) if action is not None else set()
            if action is not None and rest[2] not in names:
                fields = ", ".join(sorted(names)) or "none"
                return (
                    f"step {target} ({step.action}) has no output {rest[2]!r} (outputs: {fields})"
                )
        if (
            place.phase == "always"
            and not is_self
            and rest[1:2] == ("outputs",)
            and not reference.guarded
        ):
            return (
                f"always-step reads steps.{target}.outputs, which do not exist if {target} failed or "
                f"was skipped, so this step could not run after a failure: add `| default(...)`"
            )
        return None

    def _check_config_path(self, path: list[str]) -> str | None:
        model: type[BaseModel] | None = PlatformConfig
        value: Any = self.config.model
        for position, key in enumerate(path):
            if model is not None:
                fields = model.model_fields
                if key not in fields:
                    return f"template reads config.{'.'.join(path[: position + 1])}, which is not a config key"
                annotation = fields[key].annotation
                value = getattr(value, key, None)
                model = (
                    annotation
                    if isinstance(annotation, type) and issubclass(annotation, BaseModel)
                    else None
                )
            elif isinstance(value, dict):
                if key not in value:
                    return (
                        f"template reads config.{'.'.join(path[: position + 1])}, which config "
                        f"{self.config.source} does not define"
                    )
                value = value[key]
            else:
                return None
        return None


def output_names(model: type[BaseModel]) -> set[str]:
    """Return the keys a step's outputs have once stored: serialization aliases win."""
    names = set()
    for name, field in model.model_fields.items():
        names.add(field.serialization_alias or field.alias or name)
    return names


def _templated(params: Any, path: list[str | int]) -> bool:
    current = params
    for key in path:
        if isinstance(current, str):
            return contains_template(current)
        found, current = child_of(current, key)
        if not found:
            return False
    return contains_template(current)


def lint_loaded(loaded: LoadedRunbook, config: LoadedConfig) -> list[Finding]:
    return Linter(loaded, config).run()


def lint_path(path: Path, config: LoadedConfig) -> list[Finding]:
    """Parse, validate and lint one file, returning every finding."""
    try:
        text, digest = read_source(path)
    except RunbookError as e:
        return [Finding(str(path), None, "", e.message)]
    runbook, document, findings = parse_runbook(text, file=str(path))
    if findings or runbook is None or document is None:
        return findings
    return lint_loaded(LoadedRunbook(runbook, path, digest, document), config)
