"""Typed records read from and written to the store."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


class RunState(StrEnum):
    """A run's stored state. INTERRUPTED and APPROVAL_EXPIRED are derived when it is read."""

    RUNNING = "running"
    AWAITING_APPROVAL = "awaiting_approval"
    NEEDS_DECISION = "needs_decision"
    HALTED = "halted"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"
    INTERRUPTED = "interrupted"
    APPROVAL_EXPIRED = "approval_expired"

    @property
    def is_final(self) -> bool:
        return self in {RunState.SUCCEEDED, RunState.FAILED, RunState.ROLLED_BACK}


class EntryKind(StrEnum):
    """The kind of event a journal entry records."""

    RUN_CREATED = "run_created"
    RUN_STARTED = "run_started"
    STEP_STARTED = "step_started"
    STEP_ENDED = "step_ended"
    STEP_SKIPPED = "step_skipped"
    APPROVAL_REQUESTED = "approval_requested"
    APPROVAL_GRANTED = "approval_granted"
    APPROVAL_REJECTED = "approval_rejected"
    APPROVAL_VOIDED = "approval_voided"
    DECISION_NEEDED = "decision_needed"
    OPERATOR_DECISION = "operator_decision"
    CANCEL_REQUESTED = "cancel_requested"
    RUN_RESUMED = "run_resumed"
    RUN_PAUSED = "run_paused"
    RUN_ENDED = "run_ended"
    NOTE = "note"


class RunRecord(BaseModel):
    id: str
    runbook: str
    runbook_path: str
    runbook_digest: str
    config_path: str | None
    config_digest: str
    inputs: dict[str, Any]
    state: RunState
    policy: str
    actor: str
    incident_id: str | None = None
    cancel_level: int = 0
    summary: str | None = None
    created_at: datetime
    updated_at: datetime
    ended_at: datetime | None = None
    approval_deadline: datetime | None = None
    lease_expires_at: datetime | None = None
    lease_holder_alive: bool = False


class JournalEntry(BaseModel):
    seq: int = 0
    run_id: str
    at: datetime
    kind: EntryKind
    step_id: str | None = None
    phase: str | None = None
    attempt: int | None = None
    status: str | None = None
    duration: float | None = None
    actor: str
    message: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)


class AuditEntry(BaseModel):
    seq: int
    at: datetime
    actor: str
    kind: str
    subject: str
    data: dict[str, Any]
    prev_hash: str
    hash: str


class IncidentRecord(BaseModel):
    id: str
    title: str
    severity: str
    status: str
    services: list[str]
    commander: str | None
    opened_at: datetime
    opened_by: str
    clock_started_at: datetime
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    mitigated_at: datetime | None = None
    resolved_at: datetime | None = None
    escalation_level: int = 0
    summary: str | None = None
    updated_at: datetime


class IncidentEvent(BaseModel):
    seq: int = 0
    incident_id: str
    at: datetime
    kind: str
    actor: str
    message: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)


class ActionItem(BaseModel):
    id: int
    incident_id: str
    text: str
    owner: str | None = None
    due: str | None = None
    created_at: datetime
    created_by: str
    done_at: datetime | None = None
    done_by: str | None = None
