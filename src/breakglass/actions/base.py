"""The contract every action meets: a parameter model, an output model, `plan` and `run`.

`plan` may read live state but never changes anything; `run` performs the change and
returns typed outputs, including the before-state an undo needs. Failures are raised as
ActionError, marked temporary when a retry could succeed.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from breakglass.clock import SYSTEM_CLOCK, Clock
from breakglass.config.loading import LoadedConfig

if TYPE_CHECKING:
    from breakglass.store.db import Store


class Params(BaseModel):
    """Base of every action's parameter model: unknown parameters are errors."""

    model_config = ConfigDict(extra="forbid")


class Outputs(BaseModel):
    """Base of every action's output model."""

    model_config = ConfigDict(extra="forbid")


class NoOutputs(Outputs):
    pass


class PlanResult(BaseModel):
    """The change a step would make, and where, described without making it."""

    summary: str
    target: str
    changes: list[str] = Field(default_factory=list)
    # Facts that move while nothing relevant changes (free disk, the newest archived WAL
    # segment), shown in the plan but left out of the fingerprint approvals are bound to.
    details: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    mutating: bool = False


class ActionError(Exception):
    """A failed step; `temporary` marks whether retrying the same step could succeed."""

    def __init__(
        self,
        message: str,
        *,
        temporary: bool = False,
        retry_after: float | None = None,
        outputs: Mapping[str, Any] | None = None,
        unreachable: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.temporary = temporary
        # The target did not respond at all (refused, timed out, name not resolved), which
        # ends a run with its own exit code.
        self.unreachable = unreachable
        self.retry_after = retry_after
        self.outputs = dict(outputs or {})


class ActionTimeoutError(ActionError):
    """The step reached its deadline; what it changed before that is unknown."""


class ActionCancelledError(ActionError):
    """The operator aborted the step while it ran."""


@dataclass(frozen=True)
class BackupMade:
    """A verified backup an action wrote, for the store's backup catalogue."""

    database: str
    kind: str
    path: str
    sha256: str | None = None
    size: int | None = None
    server_version: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Approval:
    """The operator's consent to a gated step, with their note."""

    actor: str
    note: str | None = None


@dataclass
class ActionContext:
    """The resources an action may use while it plans or runs."""

    config: LoadedConfig
    run_id: str | None = None
    step_id: str | None = None
    actor: str = "unknown"
    timeout: float = 60.0
    clock: Clock = SYSTEM_CLOCK
    cancelled: threading.Event = field(default_factory=threading.Event)
    approval: Approval | None = None
    progress: Callable[[str], None] = lambda message: None
    # Called with the process group id of each child process a step starts, so that a
    # resume after a crash can tell whether that child is still running.
    on_process: Callable[[int], None] = lambda pgid: None
    # Journals a milestone inside a long step (a data directory moved aside, one migration
    # downgraded), so that after a crash the journal shows how far the step got.
    note: Callable[[str, dict[str, Any]], None] = lambda message, data: None
    # Called with each verified backup, which the executor records in the store.
    record_backup: Callable[[BackupMade], None] = lambda backup: None
    work_dir: Path | None = None
    # The state store, for actions that read records such as snapshots; None outside a run.
    store: Store | None = None

    def remaining(self, started: float) -> float:
        """Seconds left of the step's timeout, counted from `started` (monotonic)."""
        return max(0.0, self.timeout - (self.clock.monotonic() - started))


ParamsT = TypeVar("ParamsT", bound=Params)
OutputsT = TypeVar("OutputsT", bound=Outputs)


class Action(ABC, Generic[ParamsT, OutputsT]):
    """One kind of step. Subclasses set the class attributes and implement plan and run."""

    name: ClassVar[str]
    summary: ClassVar[str]
    params_model: ClassVar[type[Params]]
    outputs_model: ClassVar[type[Outputs]] = NoOutputs
    mutating: ClassVar[bool] = True
    idempotent: ClassVar[bool] = False
    requires_timeout: ClassVar[bool] = False
    default_timeout: ClassVar[float] = 60.0
    # True when the action enforces its own deadline (a subprocess killed with its
    # process group), so the engine need not watch it from another thread.
    enforces_timeout: ClassVar[bool] = False
    # True when the action talks to the operator (manual steps) and needs a prompt.
    interactive: ClassVar[bool] = False
    # True when the action replaces data that cannot be got back without it (a cluster
    # restored to an earlier time): lint requires the step to ask for a destructive
    # confirmation, which the operator approves by naming the target.
    destructive: ClassVar[bool] = False

    @abstractmethod
    def plan(self, params: ParamsT, ctx: ActionContext) -> PlanResult: ...

    @abstractmethod
    def run(self, params: ParamsT, ctx: ActionContext) -> OutputsT: ...

    def parse(self, raw: Mapping[str, Any]) -> ParamsT:
        return self.params_model.model_validate(dict(raw))  # type: ignore[return-value]
