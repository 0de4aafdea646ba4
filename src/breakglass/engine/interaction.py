"""How the engine asks the operator: approvals and manual steps.

The CLI implements this with a terminal prompt; without a terminal there is nobody to
ask, and the run pauses in `awaiting_approval` until `breakglass approve`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from breakglass.engine.planning import StepPlan


@dataclass(frozen=True)
class ApprovalRequest:
    run_id: str
    plan: StepPlan
    instructions: str | None = None


@dataclass(frozen=True)
class ApprovalAnswer:
    approved: bool
    note: str | None = None


class PromptAbortedError(Exception):
    """The operator interrupted a prompt (Ctrl-C or end of input) instead of answering it."""


class Interaction(Protocol):
    def can_prompt(self) -> bool: ...

    def ask_approval(self, request: ApprovalRequest) -> ApprovalAnswer: ...


class NoInteraction:
    """The interaction without a terminal: every gate pauses the run."""

    def can_prompt(self) -> bool:
        return False

    def ask_approval(self, request: ApprovalRequest) -> ApprovalAnswer:
        raise RuntimeError("no terminal to ask on")
