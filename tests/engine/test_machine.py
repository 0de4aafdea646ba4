"""The state machine's decisions, from journal fixtures, each with its reason."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from breakglass.engine.machine import Decision, DecisionKind, Phase, RunShape, StepShape, decide
from breakglass.runbooks.model import FailurePolicy, StepFailure
from breakglass.store.records import EntryKind, JournalEntry, RunState

AT = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


class Journal:
    """Builds journal fixtures the way the executor writes them."""

    def __init__(self) -> None:
        self.entries: list[JournalEntry] = []

    def add(self, kind: EntryKind, step: str | None = None, **fields: Any) -> Journal:
        self.entries.append(
            JournalEntry(
                seq=len(self.entries) + 1,
                run_id="RUN-1",
                at=AT,
                kind=kind,
                step_id=step,
                actor="alice",
                **fields,
            )
        )
        return self

    def started(self, step: str, phase: str = "main", attempt: int = 1) -> Journal:
        return self.add(EntryKind.STEP_STARTED, step, phase=phase, attempt=attempt)

    def ended(
        self,
        step: str,
        status: str = "succeeded",
        phase: str = "main",
        attempt: int = 1,
        **data: Any,
    ) -> Journal:
        self.started(step, phase, attempt)
        message = data.pop("error", None)
        return self.add(
            EntryKind.STEP_ENDED,
            step,
            phase=phase,
            attempt=attempt,
            status=status,
            message=message,
            data=data,
        )

    def decide(self, shape: RunShape) -> Decision:
        return decide(shape, self.entries)


def shape(*steps: StepShape, policy: FailurePolicy = FailurePolicy.UNDO) -> RunShape:
    return RunShape(tuple(steps), policy)


A = StepShape("a", has_undo=True)
B = StepShape("b", has_undo=True)
C = StepShape("c")
ALWAYS = StepShape("notify", always=True, idempotent=True)


def test_empty_journal_runs_first_step() -> None:
    decision = Journal().decide(shape(A, B))
    assert decision.kind == DecisionKind.RUN_STEP
    assert decision.step_id == "a"
    assert decision.reason == "step a is next"


def test_all_done_finishes_succeeded() -> None:
    decision = Journal().ended("a").ended("b").decide(shape(A, B))
    assert decision.kind == DecisionKind.FINISH
    assert decision.final_state == RunState.SUCCEEDED
    assert decision.reason == "every step succeeded or was skipped"


def test_failure_undoes_in_reverse() -> None:
    journal = Journal().ended("a").ended("b").ended("c", "failed", error="boom")
    decision = journal.decide(shape(A, B, C))
    assert decision.kind == DecisionKind.RUN_UNDO
    assert decision.step_id == "b"
    assert decision.phase == Phase.UNDO
    assert decision.reason == "step c failed: boom; undoing step b"
    journal.ended("b", phase="undo")
    assert journal.decide(shape(A, B, C)).step_id == "a"
    journal.ended("a", phase="undo")
    final = journal.decide(shape(A, B, C))
    assert final.final_state == RunState.ROLLED_BACK
    assert final.reason == "step c failed: boom; completed steps were undone"


def test_rolled_back_names_steps_without_undo() -> None:
    changed = StepShape("scale", mutating=True)
    read_only = StepShape("probe")
    journal = Journal().ended("probe").ended("scale").ended("a").ended("c", "failed", error="boom")
    journal.ended("a", phase="undo")
    final = journal.decide(shape(read_only, changed, A, C))
    assert final.final_state == RunState.ROLLED_BACK
    assert final.reason == (
        "step c failed: boom; completed steps were undone; "
        "left changed, because they declare no undo: scale"
    )


def test_undo_order_follows_completion_not_position() -> None:
    # b finished before a (a was retried), so a is undone first.
    journal = Journal().ended("b").ended("a").ended("c", "failed", error="x")
    ordered = shape(A, B, C)
    assert journal.decide(ordered).step_id == "a"


def test_halt_policy_runs_always_then_halts() -> None:
    journal = Journal().ended("a").ended("c", "failed", error="db down")
    run = shape(A, C, ALWAYS, policy=FailurePolicy.HALT)
    decision = journal.decide(run)
    assert decision.kind == DecisionKind.RUN_ALWAYS
    assert decision.step_id == "notify"
    assert decision.reason == "step c failed: db down; running always-step notify"
    journal.ended("notify", phase="always")
    final = journal.decide(run)
    assert final.final_state == RunState.HALTED
    assert final.reason == "step c failed: db down; halted, resumable after a fix"


def test_step_on_failure_overrides_policy() -> None:
    halting_c = StepShape("c", on_failure=StepFailure.HALT)
    journal = Journal().ended("a").ended("c", "failed", error="x")
    assert journal.decide(shape(A, halting_c)).final_state == RunState.HALTED


def test_continue_keeps_going() -> None:
    tolerant = StepShape("c", on_failure=StepFailure.CONTINUE)
    journal = Journal().ended("c", "failed", error="optional check failed")
    decision = journal.decide(shape(tolerant, A))
    assert decision.step_id == "a"
    final = journal.ended("a").decide(shape(tolerant, A))
    assert final.final_state == RunState.SUCCEEDED
    assert final.reason == "the run finished; failed steps allowed to continue: c"


def test_temporary_failure_retried_with_backoff() -> None:
    flaky = StepShape("c", retries=3, backoff=2.0)
    journal = Journal().ended("c", "failed", error="503", temporary=True)
    first = journal.decide(shape(flaky))
    assert first.kind == DecisionKind.RUN_STEP
    assert first.attempt == 2
    assert first.delay == 2.0
    assert first.reason == "attempt 1 of 4 failed with a temporary error; retrying in 2s"
    journal.ended("c", "failed", attempt=2, error="503", temporary=True)
    assert journal.decide(shape(flaky)).delay == 4.0


def test_retry_after_wins_over_backoff() -> None:
    flaky = StepShape("c", retries=1, backoff=2.0)
    journal = Journal().ended("c", "failed", error="429", temporary=True, retry_after=7)
    assert journal.decide(shape(flaky)).delay == 7.0


def test_permanent_failure_not_retried() -> None:
    flaky = StepShape("c", retries=3)
    decision = Journal().ended("c", "failed", error="404").decide(shape(flaky))
    assert decision.kind == DecisionKind.FINISH
    assert decision.final_state == RunState.ROLLED_BACK


def test_retries_exhausted_apply_policy() -> None:
    flaky = StepShape("c", retries=1)
    journal = (
        Journal()
        .ended("c", "failed", error="t", temporary=True)
        .ended("c", "failed", attempt=2, error="t", temporary=True)
    )
    assert journal.decide(shape(flaky)).kind == DecisionKind.FINISH


def test_in_doubt_idempotent_rerun() -> None:
    idem = StepShape("a", idempotent=True)
    journal = Journal().started("a").add(EntryKind.RUN_RESUMED)
    decision = journal.decide(shape(idem))
    assert decision.kind == DecisionKind.RUN_STEP
    assert decision.attempt == 2
    assert (
        decision.reason == "step a started and never ended; re-running it because it is idempotent"
    )


def test_in_doubt_not_idempotent_needs_decision() -> None:
    journal = Journal().started("a").add(EntryKind.RUN_RESUMED)
    decision = journal.decide(shape(A))
    assert decision.kind == DecisionKind.NEED_DECISION
    assert decision.reason == (
        "step a started and never ended and is not idempotent: check whether it took effect, "
        "then resume with --retry-step a or --skip-step a"
    )


def test_operator_retry_reruns_in_doubt_step() -> None:
    journal = Journal().started("a").add(EntryKind.RUN_RESUMED)
    journal.add(EntryKind.OPERATOR_DECISION, "a", data={"decision": "retry"})
    decision = journal.decide(shape(A))
    assert decision.kind == DecisionKind.RUN_STEP
    assert decision.reason == "step a started and never ended; the operator chose to retry it"


def test_operator_skip_moves_on() -> None:
    journal = (
        Journal()
        .started("a")
        .add(EntryKind.RUN_RESUMED)
        .add(EntryKind.STEP_SKIPPED, "a", phase="main")
    )
    assert journal.decide(shape(A, B)).step_id == "b"


def test_fresh_timeout_halts() -> None:
    journal = Journal().ended("a").ended("b", "timed_out", error="overran")
    decision = journal.decide(shape(A, B, C))
    assert decision.kind == DecisionKind.FINISH
    assert decision.final_state == RunState.HALTED
    assert decision.reason.startswith("step b overran its timeout and may still be running")


def test_timeout_after_resume_needs_decision() -> None:
    journal = Journal().ended("b", "timed_out", error="overran").add(EntryKind.RUN_RESUMED)
    assert journal.decide(shape(B)).kind == DecisionKind.NEED_DECISION


def test_gate_requests_approval() -> None:
    gated = StepShape("a", gated=True)
    decision = Journal().decide(shape(gated))
    assert decision.kind == DecisionKind.REQUEST_APPROVAL
    assert decision.reason == "step a needs approval before it runs"


def test_granted_approval_carries_digest() -> None:
    gated = StepShape("a", gated=True)
    journal = Journal().add(EntryKind.APPROVAL_REQUESTED, "a", data={"plan_digest": "d1"})
    journal.add(EntryKind.APPROVAL_GRANTED, "a", data={"plan_digest": "d1"})
    decision = journal.decide(shape(gated))
    assert decision.kind == DecisionKind.RUN_STEP
    assert decision.approved_digest == "d1"
    assert decision.reason == "step a was approved by alice"


def test_voided_approval_asks_again() -> None:
    gated = StepShape("a", gated=True)
    journal = Journal().add(EntryKind.APPROVAL_GRANTED, "a", data={"plan_digest": "d1"})
    journal.add(EntryKind.APPROVAL_VOIDED, "a")
    assert journal.decide(shape(gated)).kind == DecisionKind.REQUEST_APPROVAL


def test_rejection_applies_policy() -> None:
    gated = StepShape("b", gated=True)
    journal = Journal().ended("a").add(EntryKind.APPROVAL_REJECTED, "b")
    decision = journal.decide(shape(A, gated))
    assert decision.kind == DecisionKind.RUN_UNDO
    assert decision.reason == "approval of step b was rejected by alice; undoing step a"


def test_first_interrupt_halts_before_next_step() -> None:
    journal = Journal().ended("a").add(EntryKind.CANCEL_REQUESTED, data={"level": 1})
    decision = journal.decide(shape(A, B, ALWAYS))
    assert decision.kind == DecisionKind.RUN_ALWAYS
    journal.ended("notify", phase="always")
    final = journal.decide(shape(A, B, ALWAYS))
    assert final.final_state == RunState.HALTED
    assert final.interrupted
    assert final.reason == "halted by the operator before step b; halted, resumable after a fix"


def test_second_interrupt_aborts_by_policy() -> None:
    journal = Journal().ended("a").add(EntryKind.CANCEL_REQUESTED, data={"level": 2})
    decision = journal.decide(shape(A, B))
    assert decision.kind == DecisionKind.RUN_UNDO
    assert decision.reason == "aborted by the operator; undoing step a"


def test_died_while_undoing_keeps_undoing() -> None:
    journal = (
        Journal().ended("a").ended("b").ended("c", "failed", error="x").ended("b", phase="undo")
    )
    journal.add(EntryKind.RUN_RESUMED)
    decision = journal.decide(shape(A, B, C))
    assert decision.kind == DecisionKind.RUN_UNDO
    assert decision.step_id == "a"
    assert decision.reason == "step c failed: x; undoing step a"


def test_undo_in_doubt_needs_decision() -> None:
    journal = Journal().ended("a").ended("c", "failed", error="x").started("a", phase="undo")
    journal.add(EntryKind.RUN_RESUMED)
    decision = journal.decide(shape(A, C))
    assert decision.kind == DecisionKind.NEED_DECISION
    assert decision.phase == Phase.UNDO


def test_failed_undo_ends_failed() -> None:
    journal = (
        Journal()
        .ended("a")
        .ended("c", "failed", error="x")
        .ended("a", "failed", phase="undo", error="undo broke")
    )
    final = journal.decide(shape(A, C))
    assert final.final_state == RunState.FAILED
    assert final.reason == "step c failed: x; undo failed for a"


def test_resume_after_halt_retries_failed_step() -> None:
    run = shape(A, C, policy=FailurePolicy.HALT)
    journal = (
        Journal()
        .ended("a")
        .ended("c", "failed", error="x")
        .add(EntryKind.RUN_ENDED, status="halted")
    )
    assert journal.decide(run).kind == DecisionKind.FINISH
    journal.add(EntryKind.RUN_RESUMED)
    decision = journal.decide(run)
    assert decision.kind == DecisionKind.RUN_STEP
    assert decision.step_id == "c"
    assert decision.attempt == 2


def test_always_step_in_place_not_repeated() -> None:
    journal = Journal().ended("notify").ended("c", "failed", error="x")
    final = journal.decide(shape(ALWAYS, C))
    assert final.kind == DecisionKind.FINISH


def test_skipped_step_counts_as_done() -> None:
    journal = Journal().add(EntryKind.STEP_SKIPPED, "a", phase="main", message="when false")
    assert journal.decide(shape(A, B)).step_id == "b"


def test_ended_run_stays_ended() -> None:
    journal = Journal().ended("a").add(EntryKind.RUN_ENDED, status="succeeded")
    decision = journal.decide(shape(A, B))
    assert decision.kind == DecisionKind.FINISH
    assert decision.reason == "the run already ended as succeeded"


def test_abort_then_undo_ends_interrupted() -> None:
    journal = Journal().ended("a").add(EntryKind.CANCEL_REQUESTED, data={"level": 2})
    journal.ended("a", phase="undo")
    final = journal.decide(shape(A, B))
    assert final.final_state == RunState.ROLLED_BACK
    assert final.interrupted
    assert final.reason == "aborted by the operator; completed steps were undone"


def test_rejection_while_paused_survives_resume() -> None:
    gated = StepShape("b", gated=True)
    journal = (
        Journal()
        .ended("a")
        .add(EntryKind.APPROVAL_REQUESTED, "b")
        .add(EntryKind.APPROVAL_REJECTED, "b")
    )
    journal.add(EntryKind.RUN_RESUMED)
    decision = journal.decide(shape(A, gated))
    assert decision.kind == DecisionKind.RUN_UNDO
    assert decision.reason == "approval of step b was rejected by alice; undoing step a"


def test_rejection_before_halt_asked_again() -> None:
    gated = StepShape("b", gated=True)
    journal = (
        Journal()
        .ended("a")
        .add(EntryKind.APPROVAL_REJECTED, "b")
        .add(EntryKind.RUN_ENDED, status="halted")
    )
    journal.add(EntryKind.RUN_RESUMED)
    assert (
        journal.decide(shape(A, gated, policy=FailurePolicy.HALT)).kind
        == DecisionKind.REQUEST_APPROVAL
    )
