"""The run state machine: the journal so far in, the next thing to do and why out.

It performs no I/O and reads no clock, so the same journal always yields the same
decision. The local executor drives it now; a durable-execution backend (a Temporal
workflow) can drive the same function later, which keeps both meaning the same thing.

Phases of a step's journal entries: `main` (the step in its place), `undo` (its
compensation, run in reverse order under the `undo` policy) and `always` (an always-step
run during the cleanup after a failure).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from breakglass.runbooks.model import FailurePolicy, StepFailure
from breakglass.store.records import EntryKind, JournalEntry, RunState


class StepStatus(StrEnum):
    STARTED = "started"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"


class Phase(StrEnum):
    MAIN = "main"
    UNDO = "undo"
    ALWAYS = "always"


class DecisionKind(StrEnum):
    RUN_STEP = "run_step"
    REQUEST_APPROVAL = "request_approval"
    NEED_DECISION = "need_decision"
    RUN_UNDO = "run_undo"
    RUN_ALWAYS = "run_always"
    FINISH = "finish"


@dataclass(frozen=True)
class StepShape:
    """The part of a step that decisions depend on; templates and parameters stay outside."""

    id: str
    always: bool = False
    has_undo: bool = False
    mutating: bool = False
    gated: bool = False
    idempotent: bool = False
    undo_idempotent: bool = False
    on_failure: StepFailure | None = None
    retries: int = 0
    backoff: float = 1.0
    max_backoff: float = 300.0


@dataclass(frozen=True)
class RunShape:
    steps: tuple[StepShape, ...]
    policy: FailurePolicy = FailurePolicy.UNDO


@dataclass(frozen=True)
class Decision:
    kind: DecisionKind
    reason: str
    step_id: str | None = None
    phase: Phase = Phase.MAIN
    attempt: int = 1
    delay: float = 0.0
    approved_digest: str | None = None
    final_state: RunState | None = None
    interrupted: bool = False


@dataclass
class _Attempts:
    status: StepStatus | None = None
    attempts: int = 0
    temporary: bool = False
    retry_after: float | None = None
    error: str | None = None
    ended_seq: int = 0
    # A timeout recorded since the last resume: the overrunning step may still be
    # running inside this very process.
    fresh_timeout: bool = False


@dataclass
class _Approval:
    state: str
    actor: str | None = None
    digest: str | None = None


@dataclass
class JournalView:
    """The journal folded into per-step state."""

    main: dict[str, _Attempts] = field(default_factory=dict)
    undo: dict[str, _Attempts] = field(default_factory=dict)
    always: dict[str, _Attempts] = field(default_factory=dict)
    approvals: dict[str, _Approval] = field(default_factory=dict)
    decisions: dict[str, str] = field(default_factory=dict)
    cancel_level: int = 0
    # An abort survives a resume once undoing has begun, so the end still reads as interrupted.
    aborted: bool = False
    ended: RunState | None = None

    def phase_map(self, phase: str | None) -> dict[str, _Attempts]:
        if phase == Phase.UNDO:
            return self.undo
        if phase == Phase.ALWAYS:
            return self.always
        return self.main


def fold(entries: Sequence[JournalEntry]) -> JournalView:
    view = JournalView()
    for entry in entries:
        _apply(view, entry)
    return view


def _apply(view: JournalView, entry: JournalEntry) -> None:
    step = entry.step_id
    kind = entry.kind
    if kind == EntryKind.STEP_STARTED and step:
        record = view.phase_map(entry.phase).setdefault(step, _Attempts())
        record.status = StepStatus.STARTED
        record.attempts = entry.attempt or record.attempts + 1
        record.fresh_timeout = False
    elif kind == EntryKind.STEP_ENDED and step:
        record = view.phase_map(entry.phase).setdefault(step, _Attempts())
        record.status = StepStatus(entry.status or StepStatus.FAILED)
        record.temporary = bool(entry.data.get("temporary", False))
        record.retry_after = entry.data.get("retry_after")
        record.error = entry.message
        record.ended_seq = entry.seq
        record.fresh_timeout = record.status == StepStatus.TIMED_OUT
        view.decisions.pop(step, None)
    elif kind == EntryKind.STEP_SKIPPED and step:
        record = view.phase_map(entry.phase).setdefault(step, _Attempts())
        record.status = StepStatus.SKIPPED
        record.error = entry.message
        record.ended_seq = entry.seq
    elif kind in _APPROVAL_STATES and step:
        state = _APPROVAL_STATES[kind]
        view.approvals[step] = _Approval(state, entry.actor, entry.data.get("plan_digest"))
    elif kind == EntryKind.OPERATOR_DECISION and step:
        view.decisions[step] = str(entry.data.get("decision"))
    elif kind == EntryKind.CANCEL_REQUESTED:
        view.cancel_level = max(view.cancel_level, int(entry.data.get("level", 1)))
        view.aborted = view.aborted or view.cancel_level >= 2
    elif kind == EntryKind.RUN_RESUMED:
        _resume(view)
    elif kind == EntryKind.RUN_ENDED:
        view.ended = RunState(entry.status) if entry.status else RunState.FAILED


_APPROVAL_STATES = {
    EntryKind.APPROVAL_REQUESTED: "requested",
    EntryKind.APPROVAL_GRANTED: "granted",
    EntryKind.APPROVAL_REJECTED: "rejected",
    EntryKind.APPROVAL_VOIDED: "voided",
}


def _resume(view: JournalView) -> None:
    """Start a new pass: halted failures are retried, cleanup steps may run again.

    A rejection recorded while the run was paused remains, so resuming applies the failure
    policy. A rejection from a pass that already ended (halted) is cleared, so the operator
    is asked again.
    """
    ended_before = view.ended is not None
    view.cancel_level = 0
    view.ended = None
    if view.undo:
        return  # A run that began undoing keeps undoing; nothing goes forward again.
    view.aborted = False
    for record in view.main.values():
        record.fresh_timeout = False
        if record.status in (StepStatus.FAILED, StepStatus.CANCELLED):
            record.status = None
            record.temporary = False
    view.always.clear()
    for step_id, approval in list(view.approvals.items()):
        if approval.state == "voided" or (approval.state == "rejected" and ended_before):
            del view.approvals[step_id]


def decide(shape: RunShape, entries: Sequence[JournalEntry]) -> Decision:
    """Return the next thing the executor must do, with the reason."""
    view = fold(entries)
    if view.ended is not None:
        return Decision(
            DecisionKind.FINISH,
            f"the run already ended as {view.ended.value}",
            final_state=view.ended,
        )
    if view.undo:
        return _cleanup(
            shape, view, FailurePolicy.UNDO, _failure_reason(shape, view), interrupted=view.aborted
        )
    if view.cancel_level >= 2:
        return _cleanup(shape, view, shape.policy, "aborted by the operator", interrupted=True)
    return _forward(shape, view)


def _forward(shape: RunShape, view: JournalView) -> Decision:
    continued: list[str] = []
    for step in shape.steps:
        record = view.main.get(step.id, _Attempts())
        status = record.status
        if status in (StepStatus.SUCCEEDED, StepStatus.SKIPPED):
            continue
        if status in (StepStatus.FAILED, StepStatus.CANCELLED):
            if status == StepStatus.FAILED and step.on_failure == StepFailure.CONTINUE:
                continued.append(step.id)
                continue
            if status == StepStatus.FAILED and record.temporary and record.attempts <= step.retries:
                delay = _backoff(step, record)
                return Decision(
                    DecisionKind.RUN_STEP,
                    f"attempt {record.attempts} of {step.retries + 1} failed with a temporary error; "
                    f"retrying in {delay:g}s",
                    step_id=step.id,
                    attempt=record.attempts + 1,
                    delay=delay,
                )
            policy = _policy_for(shape, step)
            reason = f"step {step.id} failed: {record.error or 'no error recorded'}"
            return _cleanup(shape, view, policy, reason, interrupted=status == StepStatus.CANCELLED)
        if status in (StepStatus.STARTED, StepStatus.TIMED_OUT):
            return _in_doubt(shape, view, step, record)
        if view.cancel_level >= 1:
            return _cleanup(
                shape,
                view,
                FailurePolicy.HALT,
                f"halted by the operator before step {step.id}",
                interrupted=True,
            )
        if step.gated:
            gate = _gate(shape, view, step, record)
            if gate is not None:
                return gate
            continue
        return Decision(
            DecisionKind.RUN_STEP,
            f"step {step.id} is next",
            step_id=step.id,
            attempt=record.attempts + 1,
        )
    reason = "every step succeeded or was skipped"
    if continued:
        reason = f"the run finished; failed steps allowed to continue: {', '.join(continued)}"
    return Decision(DecisionKind.FINISH, reason, final_state=RunState.SUCCEEDED)


def _failure_reason(shape: RunShape, view: JournalView) -> str:
    """Name the failure that started an undo, so that later decisions keep citing it."""
    for step in shape.steps:
        record = view.main.get(step.id)
        if record is not None and record.status in (StepStatus.FAILED, StepStatus.CANCELLED):
            if record.status == StepStatus.FAILED and step.on_failure == StepFailure.CONTINUE:
                continue
            return f"step {step.id} failed: {record.error or 'no error recorded'}"
        approval = view.approvals.get(step.id)
        if approval is not None and approval.state == "rejected":
            return f"approval of step {step.id} was rejected by {approval.actor}"
    return "aborted by the operator"


def _gate(
    shape: RunShape, view: JournalView, step: StepShape, record: _Attempts
) -> Decision | None:
    approval = view.approvals.get(step.id)
    if approval is None or approval.state in ("requested", "voided"):
        return Decision(
            DecisionKind.REQUEST_APPROVAL,
            f"step {step.id} needs approval before it runs",
            step_id=step.id,
        )
    if approval.state == "rejected":
        policy = _policy_for(shape, step)
        return _cleanup(
            shape, view, policy, f"approval of step {step.id} was rejected by {approval.actor}"
        )
    return Decision(
        DecisionKind.RUN_STEP,
        f"step {step.id} was approved by {approval.actor}",
        step_id=step.id,
        attempt=record.attempts + 1,
        approved_digest=approval.digest,
    )


def _in_doubt(shape: RunShape, view: JournalView, step: StepShape, record: _Attempts) -> Decision:
    what = (
        "overran its timeout"
        if record.status == StepStatus.TIMED_OUT
        else "started and never ended"
    )
    if record.fresh_timeout:
        reason = f"step {step.id} {what} and may still be running, so the run halts rather than continue beside it"
        return _cleanup(shape, view, FailurePolicy.HALT, reason)
    choice = view.decisions.get(step.id)
    if choice == "retry":
        return Decision(
            DecisionKind.RUN_STEP,
            f"step {step.id} {what}; the operator chose to retry it",
            step_id=step.id,
            attempt=record.attempts + 1,
        )
    if step.idempotent:
        return Decision(
            DecisionKind.RUN_STEP,
            f"step {step.id} {what}; re-running it because it is idempotent",
            step_id=step.id,
            attempt=record.attempts + 1,
        )
    return Decision(
        DecisionKind.NEED_DECISION,
        f"step {step.id} {what} and is not idempotent: check whether it took effect, then resume "
        f"with --retry-step {step.id} or --skip-step {step.id}",
        step_id=step.id,
    )


def _policy_for(shape: RunShape, step: StepShape) -> FailurePolicy:
    if step.on_failure == StepFailure.HALT:
        return FailurePolicy.HALT
    if step.on_failure == StepFailure.UNDO:
        return FailurePolicy.UNDO
    return shape.policy


def _backoff(step: StepShape, record: _Attempts) -> float:
    if record.retry_after is not None:
        return min(float(record.retry_after), step.max_backoff)
    return float(min(step.backoff * (2 ** max(record.attempts - 1, 0)), step.max_backoff))


def _cleanup(
    shape: RunShape,
    view: JournalView,
    policy: FailurePolicy,
    reason: str,
    *,
    interrupted: bool = False,
) -> Decision:
    """After a failure: undo in reverse (under `undo`), then always-steps, then finish."""
    undo_failed: list[str] = []
    if policy == FailurePolicy.UNDO:
        done = [
            step
            for step in shape.steps
            if view.main.get(step.id, _Attempts()).status == StepStatus.SUCCEEDED
        ]
        done.sort(key=lambda step: view.main[step.id].ended_seq, reverse=True)
        for step in done:
            if not step.has_undo:
                continue
            record = view.undo.get(step.id, _Attempts())
            if record.status == StepStatus.SUCCEEDED:
                continue
            if record.status in (StepStatus.FAILED, StepStatus.CANCELLED, StepStatus.SKIPPED):
                undo_failed.append(step.id)
                continue
            in_doubt = record.status in (StepStatus.STARTED, StepStatus.TIMED_OUT)
            if in_doubt and not step.undo_idempotent and view.decisions.get(step.id) != "retry":
                return Decision(
                    DecisionKind.NEED_DECISION,
                    f"undo of step {step.id} started and never ended: check it, then resume with "
                    f"--retry-step {step.id} or --skip-step {step.id}",
                    step_id=step.id,
                    phase=Phase.UNDO,
                )
            return Decision(
                DecisionKind.RUN_UNDO,
                f"{reason}; undoing step {step.id}",
                step_id=step.id,
                phase=Phase.UNDO,
                attempt=record.attempts + 1,
            )
    for step in shape.steps:
        if not step.always:
            continue
        if view.main.get(step.id, _Attempts()).status is not None:
            continue  # it ran (or began) in its own place
        record = view.always.get(step.id, _Attempts())
        if record.status is None or (record.status == StepStatus.STARTED and step.idempotent):
            return Decision(
                DecisionKind.RUN_ALWAYS,
                f"{reason}; running always-step {step.id}",
                step_id=step.id,
                phase=Phase.ALWAYS,
                attempt=record.attempts + 1,
            )
    if policy == FailurePolicy.HALT:
        return Decision(
            DecisionKind.FINISH,
            f"{reason}; halted, resumable after a fix",
            final_state=RunState.HALTED,
            interrupted=interrupted,
        )
    if undo_failed:
        return Decision(
            DecisionKind.FINISH,
            f"{reason}; undo failed for {', '.join(undo_failed)}",
            final_state=RunState.FAILED,
            interrupted=interrupted,
        )
    undone = any(record.status == StepStatus.SUCCEEDED for record in view.undo.values())
    summary = (
        f"{reason}; completed steps were undone" if undone else f"{reason}; nothing was undone"
    )
    # A step that changed state without an undo stays changed, and the operator must know.
    left_changed = [
        step.id
        for step in shape.steps
        if step.mutating
        and not step.has_undo
        and view.main.get(step.id, _Attempts()).status == StepStatus.SUCCEEDED
    ]
    if left_changed:
        summary += f"; left changed, because they declare no undo: {', '.join(left_changed)}"
    return Decision(
        DecisionKind.FINISH,
        summary,
        final_state=RunState.ROLLED_BACK,
        interrupted=interrupted,
    )
