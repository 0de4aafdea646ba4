"""The runbook format, `apiVersion: breakglass/v1`, `kind: Runbook`.

A runbook declares typed inputs, the locks it needs and ordered steps. Step parameters
are Jinja2 templates, rendered just before the step runs against the run's inputs, the
platform config and the outputs of earlier steps.
"""

from __future__ import annotations

import datetime as dt
import re
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from breakglass.durations import Duration, PositiveDuration

STEP_ID = r"^[a-z][a-z0-9_]*$"
RUNBOOK_NAME = r"^[a-z0-9][a-z0-9-]*$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FailurePolicy(StrEnum):
    """The run's response to a failed step."""

    UNDO = "undo"
    HALT = "halt"


class StepFailure(StrEnum):
    """A step's own failure rule: keep going, or apply a policy to the whole run."""

    CONTINUE = "continue"
    UNDO = "undo"
    HALT = "halt"


class InputType(StrEnum):
    STRING = "string"
    INTEGER = "integer"
    NUMBER = "number"
    BOOLEAN = "boolean"
    DATETIME = "datetime"
    DURATION = "duration"


class InputSpec(Strict):
    type: InputType = InputType.STRING
    description: str = ""
    required: bool | None = Field(
        default=None,
        description="Whether the input must be given; by default, an input without a default is required.",
    )
    default: Any = None
    enum: list[Any] | None = None

    @property
    def is_required(self) -> bool:
        return self.required if self.required is not None else self.default is None

    @property
    def may_be_absent(self) -> bool:
        """Whether a run can lack this input: optional and without a default."""
        return not self.is_required and self.default is None

    @model_validator(mode="after")
    def _default_fits(self) -> InputSpec:
        if self.required and self.default is not None:
            raise ValueError("a required input cannot have a default; drop one of them")
        if self.enum is not None and not self.enum:
            raise ValueError("enum must list at least one value")
        return self


class Metadata(Strict):
    name: str = Field(description="Lower-case name used on the command line.")
    title: str = ""
    description: str = ""
    reviewed: dt.date | None = Field(
        default=None, description="Date of the last review, YYYY-MM-DD."
    )
    owner: str | None = None
    tags: list[str] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _command_line_name(cls, value: str) -> str:
        if not re.match(RUNBOOK_NAME, value):
            raise ValueError(
                f"runbook name {value!r} must be lower-case letters, digits and '-', starting "
                "with a letter or digit, for example db-pitr"
            )
        return value


class Retries(Strict):
    count: int = Field(ge=0, le=100)
    backoff: Duration = Field(default=1.0, description="Delay before the first retry; it doubles.")
    max_backoff: PositiveDuration = Field(default=300.0)


class Confirm(Strict):
    message: str
    destructive: bool = False
    target: str | None = Field(
        default=None,
        description=(
            "Name of what a destructive step acts on (a template), which the operator types to "
            "approve and --yes-destructive must name. Default: the target the step's plan names."
        ),
    )


class UndoSpec(Strict):
    action: str
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")
    timeout: PositiveDuration | None = None

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Step(Strict):
    id: str
    title: str = ""
    action: str
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")
    when: str | None = Field(
        default=None, description="Jinja expression; the step is skipped when false."
    )
    timeout: PositiveDuration | None = None
    retries: Retries | None = None
    confirm: Confirm | None = None
    on_failure: StepFailure | None = None
    undo: UndoSpec | None = None
    always: bool = False
    idempotent: bool | None = Field(
        default=None, description="Override the action's idempotent flag for resume decisions."
    )

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @field_validator("id")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not re.match(STEP_ID, value):
            raise ValueError(
                f"step id {value!r} must be lower-case letters, digits and '_', starting with a "
                "letter, for example restore_backup"
            )
        return value

    @field_validator("when")
    @classmethod
    def _bare_expression(cls, value: str | None) -> str | None:
        if value is not None and "{{" in value:
            raise ValueError(
                "when is already an expression: write `inputs.force`, not `{{ inputs.force }}`"
            )
        return value

    @property
    def label(self) -> str:
        return self.title or self.id


class IncidentSpec(Strict):
    """The incident a runbook opens when it is run without --incident."""

    severity: Literal["P0", "P1", "P2", "P3"]
    title: str = Field(
        description="Template for the incident's title, rendered against the inputs."
    )
    services: list[str] = Field(default_factory=list)


class Runbook(Strict):
    api_version: Literal["breakglass/v1"] = Field(alias="apiVersion")
    kind: Literal["Runbook"]
    metadata: Metadata
    inputs: dict[str, InputSpec] = Field(default_factory=dict)
    locks: list[str] = Field(default_factory=list)
    on_failure: FailurePolicy = FailurePolicy.UNDO
    incident: IncidentSpec | None = Field(
        default=None, description="Open an incident of this severity when run without one."
    )
    steps: list[Step] = Field(min_length=1)

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @field_validator("inputs")
    @classmethod
    def _input_names(cls, inputs: dict[str, InputSpec]) -> dict[str, InputSpec]:
        for name in inputs:
            if not re.match(r"^[a-z_][a-z0-9_]*$", name):
                raise ValueError(f"input name {name!r} must be lower-case letters, digits and _")
        return inputs

    @property
    def name(self) -> str:
        return self.metadata.name

    def step(self, step_id: str) -> Step:
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)
