"""The local executor: drives the state machine and performs each decision.

Every decision's effect is journaled: an entry is committed before a step starts and
after it ends, in the same transaction as its audit entry and after checking this
process still holds the run's lease. A process that dies anywhere leaves a journal
from which `resume` can tell finished steps from steps in doubt.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from types import FrameType
from typing import Any

from pydantic import ValidationError

from breakglass.actions import registry
from breakglass.actions.base import (
    Action,
    ActionCancelledError,
    ActionContext,
    ActionError,
    ActionTimeoutError,
    Approval,
    BackupMade,
)
from breakglass.config.redaction import REDACTOR
from breakglass.engine.events import Event, EventBus
from breakglass.engine.interaction import ApprovalRequest, Interaction, PromptAbortedError
from breakglass.engine.leasing import LeaseKeeper
from breakglass.engine.machine import (
    Decision,
    DecisionKind,
    Phase,
    RunShape,
    StepShape,
    StepStatus,
    decide,
)
from breakglass.engine.planning import (
    StepPlan,
    TemplateContext,
    describe_error,
    plan_step,
    timeout_for,
)
from breakglass.engine.workspace import Workspace
from breakglass.errors import BreakglassError, ExitCode, LeaseLostError
from breakglass.incidents.sender import Sender
from breakglass.runbooks.loading import LoadedRunbook
from breakglass.runbooks.model import Runbook, Step
from breakglass.runbooks.templating import TemplateError, evaluate_condition, render_value
from breakglass.store import backups as backup_repo
from breakglass.store import leases as lease_repo
from breakglass.store import runs as run_repo
from breakglass.store.audit import append as audit_append
from breakglass.store.leases import Lease
from breakglass.store.records import EntryKind, JournalEntry, RunState

log = logging.getLogger(__name__)

# Extra time an in-process action gets past its deadline to notice its clients' timeouts.
OVERRUN_GRACE_SECONDS = 2.0
# After an abort, how long a running step gets to stop before it is treated as in doubt.
ABORT_GRACE_SECONDS = 5.0
# How often a waiting executor re-reads the cancel level written by `breakglass cancel`.
CANCEL_POLL_SECONDS = 0.5


@dataclass
class RunOptions:
    yes: bool = False
    yes_destructive: tuple[str, ...] = ()
    wait_for_locks: bool = False
    lock_wait_timeout: float = 600.0
    retry_step: str | None = None
    skip_step: str | None = None
    accept_changes: bool = False


@dataclass
class RunOutcome:
    run_id: str
    state: RunState
    reason: str
    exit_code: ExitCode
    steps: list[dict[str, Any]] = field(default_factory=list)


CRASH_ENV = "BREAKGLASS_TEST_CRASH_AFTER"


def crash_point(point: str) -> None:
    """Kill this process right after the named journal entry is committed, for crash tests.

    Set BREAKGLASS_TEST_CRASH_AFTER to `KIND:STEP` (for example `step_ended:backup`). A real
    crash can happen at any instant; this makes the instants between commits repeatable.
    """
    if os.environ.get(CRASH_ENV) == point:
        os.kill(os.getpid(), signal.SIGKILL)


def shape_of(runbook: Runbook) -> RunShape:
    steps = []
    for step in runbook.steps:
        action = registry.get_action(step.action)
        undo_action = registry.get_action(step.undo.action) if step.undo else None
        steps.append(
            StepShape(
                id=step.id,
                always=step.always,
                has_undo=step.undo is not None,
                mutating=action.mutating,
                gated=step.confirm is not None or action.interactive,
                idempotent=step.idempotent if step.idempotent is not None else action.idempotent,
                undo_idempotent=bool(undo_action and undo_action.idempotent),
                on_failure=step.on_failure,
                retries=step.retries.count if step.retries else 0,
                backoff=step.retries.backoff if step.retries else 1.0,
                max_backoff=step.retries.max_backoff if step.retries else 300.0,
            )
        )
    return RunShape(tuple(steps), runbook.on_failure)


class Executor:
    """Drives one run in this process until it ends, pauses or needs the operator."""

    def __init__(
        self,
        workspace: Workspace,
        loaded: LoadedRunbook,
        *,
        run_id: str,
        inputs: dict[str, Any],
        owner: str,
        held: list[Lease],
        options: RunOptions,
        interaction: Interaction,
        bus: EventBus,
        entries: list[JournalEntry],
        incident_id: str | None = None,
    ) -> None:
        self.ws = workspace
        self.incident_id = incident_id
        self.runbook = loaded.runbook
        self.run_id = run_id
        self.inputs = inputs
        self.owner = owner
        self.held = held
        self.run_lease = next(
            lease for lease in held if lease.name == lease_repo.run_lease_name(run_id)
        )
        self.options = options
        self.interaction = interaction
        self.bus = bus
        self.entries = entries
        self.shape = shape_of(self.runbook)
        self.outputs: dict[str, dict[str, Any]] = {}
        self._journaled_cancel = 0
        self._stored_cancel = 0
        self.statuses: dict[str, str] = {}
        for entry in entries:
            self._remember(entry)
        settings = workspace.config.model
        self.keeper = LeaseKeeper(
            workspace.store,
            owner=owner,
            held=held,
            now=workspace.clock.now,
            ttl=settings.lease_ttl,
            every=settings.lease_renew_every,
        )
        self.signals = 0
        self.step_cancelled = threading.Event()
        self._last_cancel_poll = 0.0

    # -- journal ---------------------------------------------------------------------------

    def record(self, kind: EntryKind, *, audit: bool = False, **fields: Any) -> JournalEntry:
        """Commit one journal entry (and its audit entry) under the run's fencing token."""
        if self.keeper.lost.is_set():
            raise LeaseLostError(f"run {self.run_id}: lease lost; stopping before the next change")
        now = self.ws.clock.now()
        entry = JournalEntry(run_id=self.run_id, at=now, kind=kind, actor=self.ws.actor, **fields)
        with self.ws.store.write() as connection:
            lease_repo.check_fence(connection, lease=self.run_lease, owner=self.owner, now=now)
            entry.seq = run_repo.append(connection, entry)
            if audit:
                subject = f"{self.run_id}/{entry.step_id}" if entry.step_id else self.run_id
                audit_append(
                    connection,
                    key=self.ws.audit_key,
                    at=now,
                    actor=self.ws.actor,
                    kind=kind.value,
                    subject=subject,
                    data={"status": entry.status, "phase": entry.phase, "message": entry.message},
                )
        stored = entry.model_copy(update={"data": REDACTOR.redact_data(entry.data)})
        self.entries.append(stored)
        self._remember(stored)
        crash_point(f"{kind.value}:{entry.step_id or ''}")
        self.bus.publish(
            Event(
                kind.value,
                self.run_id,
                now,
                entry.step_id,
                entry.phase,
                entry.status,
                stored.message,
                stored.data,
            )
        )
        return stored

    def _remember(self, entry: JournalEntry) -> None:
        if entry.kind == EntryKind.CANCEL_REQUESTED:
            self._journaled_cancel = max(self._journaled_cancel, int(entry.data.get("level", 1)))
        elif entry.kind == EntryKind.RUN_RESUMED:
            self._journaled_cancel = 0
        if (
            entry.kind == EntryKind.STEP_ENDED
            and entry.step_id
            and entry.phase in (Phase.MAIN, Phase.ALWAYS, None)
        ):
            self.statuses[entry.step_id] = entry.status or "failed"
            if entry.status == StepStatus.SUCCEEDED:
                self.outputs[entry.step_id] = dict(entry.data.get("outputs", {}))
        elif entry.kind == EntryKind.STEP_SKIPPED and entry.step_id and entry.phase != Phase.UNDO:
            self.statuses[entry.step_id] = StepStatus.SKIPPED.value

    def set_state(
        self, state: RunState, *, summary: str | None = None, approval_deadline: Any = None
    ) -> None:
        with self.ws.store.write() as connection:
            run_repo.set_state(
                connection,
                run_id=self.run_id,
                state=state,
                now=self.ws.clock.now(),
                summary=summary,
                approval_deadline=approval_deadline,
            )

    # -- context ---------------------------------------------------------------------------

    def template_context(self, *, include_self: str | None = None) -> dict[str, Any]:
        steps = {
            step_id: {"outputs": outputs, "status": self.statuses.get(step_id)}
            for step_id, outputs in self.outputs.items()
        }
        for step_id, status in self.statuses.items():
            steps.setdefault(step_id, {"outputs": {}, "status": status})
        context = TemplateContext(
            inputs=self.inputs,
            config=self.ws.config,
            run={
                "id": self.run_id,
                "actor": self.ws.actor,
                "runbook": self.runbook.name,
                "incident": self.incident_id,
            },
            steps=steps,
        )
        return context.as_dict()

    def action_context(self, step: Step, action: Action[Any, Any], timeout: float) -> ActionContext:
        return ActionContext(
            config=self.ws.config,
            run_id=self.run_id,
            step_id=step.id,
            actor=self.ws.actor,
            timeout=timeout,
            clock=self.ws.clock,
            cancelled=self.step_cancelled,
            progress=lambda message: self._progress(step.id, message),
            on_process=lambda pgid: self._note_process(step.id, pgid),
            note=lambda message, data: self._note(step.id, message, data),
            record_backup=self._record_backup,
            work_dir=self.ws.state_dir,
            store=self.ws.store,
        )

    def _record_backup(self, backup: BackupMade) -> None:
        with self.ws.store.write() as connection:
            backup_repo.add_backup(
                connection,
                database=backup.database,
                kind=backup.kind,
                path=backup.path,
                details=backup.details,
                run_id=self.run_id,
                actor=self.ws.actor,
                now=self.ws.clock.now(),
                sha256=backup.sha256,
                size=backup.size,
                server_version=backup.server_version,
            )

    def _note_process(self, step_id: str, pgid: int) -> None:
        self.record(
            EntryKind.NOTE,
            step_id=step_id,
            message=f"step {step_id} started process group {pgid} on {socket.gethostname()}",
            data={"process_group": pgid, "host": socket.gethostname()},
        )

    def _note(self, step_id: str, message: str, data: dict[str, Any]) -> None:
        self.record(
            EntryKind.NOTE, step_id=step_id, message=REDACTOR.redact(message), data=data, audit=True
        )
        self._progress(step_id, message)

    def _progress(self, step_id: str, message: str) -> None:
        self.bus.publish(
            Event(
                "progress",
                self.run_id,
                self.ws.clock.now(),
                step_id,
                message=REDACTOR.redact(message),
            )
        )

    # -- signals and cancellation ------------------------------------------------------------

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.signals += 1
        if self.signals >= 2:
            self.step_cancelled.set()
        if self.signals >= 3:
            # A third interrupt means the operator wants out now; the journal shows the
            # step in doubt and resume sorts it out.
            signal.signal(signal.SIGINT, signal.default_int_handler)
            raise KeyboardInterrupt

    def _install_signals(self) -> list[tuple[int, Any]]:
        if threading.current_thread() is not threading.main_thread():
            return []
        previous: list[tuple[int, Any]] = []
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous.append((signum, signal.signal(signum, self._on_signal)))
        return previous

    def _cancel_level(self) -> int:
        """Return the stronger of the operator's interrupts here and `breakglass cancel` elsewhere."""
        level = min(self.signals, 2)
        now = time.monotonic()
        if now - self._last_cancel_poll >= CANCEL_POLL_SECONDS:
            self._last_cancel_poll = now
            with self.ws.store.read() as connection:
                self._stored_cancel = run_repo.cancel_level(connection, run_id=self.run_id)
        level = max(level, self._stored_cancel)
        if level >= 2:
            self.step_cancelled.set()
        return level

    def _sync_cancel(self) -> None:
        # The stored level is read at every decision, so a `breakglass cancel` between steps
        # is honoured before the next step starts. The pooled connection keeps this cheap.
        self._last_cancel_poll = 0.0
        level = self._cancel_level()
        if level > self._journaled_cancel:
            what = "halt after the current step" if level == 1 else "abort by the failure policy"
            self.record(
                EntryKind.CANCEL_REQUESTED,
                data={"level": level},
                message=f"operator asked to {what}",
                audit=True,
            )

    # -- the loop ----------------------------------------------------------------------------

    def drive(self) -> RunOutcome:
        previous = self._install_signals()
        self.keeper.start()
        try:
            while True:
                self._sync_cancel()
                decision = decide(self.shape, self.entries)
                log.debug("run %s: %s (%s)", self.run_id, decision.kind.value, decision.reason)
                outcome = self._perform(decision)
                if outcome is not None:
                    return outcome
        finally:
            self.keeper.stop()
            for signum, handler in previous:
                signal.signal(signum, handler)

    def _perform(self, decision: Decision) -> RunOutcome | None:
        kind = decision.kind
        if kind == DecisionKind.FINISH:
            return self._finish(decision)
        if kind == DecisionKind.NEED_DECISION:
            return self._need_decision(decision)
        assert decision.step_id is not None
        step = self.runbook.step(decision.step_id)
        if kind == DecisionKind.REQUEST_APPROVAL:
            return self._approval(step, decision)
        if decision.delay > 0:
            self._progress(step.id, f"{decision.reason}")
            self._sleep(decision.delay)
            if self._cancel_level() > 0:
                return None
        self._run_step(step, decision)
        return None

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and self._cancel_level() == 0:
            self.ws.clock.sleep(min(0.2, deadline - time.monotonic()))

    # -- steps -----------------------------------------------------------------------------------

    def _when_false(self, step: Step, phase: Phase) -> bool:
        if phase != Phase.MAIN or step.when is None:
            return False
        try:
            holds = evaluate_condition(step.when, self.template_context())
        except TemplateError as e:
            self.record(
                EntryKind.STEP_ENDED,
                step_id=step.id,
                phase=phase.value,
                attempt=1,
                status=StepStatus.FAILED.value,
                message=str(e),
                audit=True,
            )
            return True
        if not holds:
            self.record(
                EntryKind.STEP_SKIPPED,
                step_id=step.id,
                phase=phase.value,
                message=f"skipped: when {step.when!r} is false",
                audit=True,
            )
            return True
        return False

    def _approval(self, step: Step, decision: Decision) -> RunOutcome | None:
        if self._when_false(step, Phase.MAIN):
            return None
        plan = self._plan(step)
        instructions = (
            str(step.with_.get("instructions"))
            if registry.get_action(step.action).interactive
            else None
        )
        digest = plan.digest()
        # A manual step is work a person does, so --yes cannot confirm that it was done.
        if instructions is None and self._preapproved(plan):
            self.record(
                EntryKind.APPROVAL_GRANTED,
                step_id=step.id,
                audit=True,
                message=f"pre-approved with --yes{'-destructive' if plan.destructive else ''}",
                data={"plan_digest": digest, "note": None},
            )
            return None
        interrupted = False
        if self.interaction.can_prompt():
            try:
                answer = self.interaction.ask_approval(
                    ApprovalRequest(self.run_id, plan, instructions)
                )
            except PromptAbortedError:
                interrupted = True
            else:
                kind = (
                    EntryKind.APPROVAL_GRANTED if answer.approved else EntryKind.APPROVAL_REJECTED
                )
                verb = "approved" if answer.approved else "rejected"
                self.record(
                    kind,
                    step_id=step.id,
                    audit=True,
                    message=f"{verb} at the terminal",
                    data={"plan_digest": digest, "note": answer.note},
                )
                return None
        return self._pause_for_approval(step, plan, digest, interrupted=interrupted)

    def _pause_for_approval(
        self, step: Step, plan: StepPlan, digest: str, *, interrupted: bool
    ) -> RunOutcome:
        """Leave the run awaiting approval, keeping its locks until the approval deadline."""
        deadline = self.ws.clock.now() + timedelta(seconds=self.ws.config.model.approval_timeout)
        self.record(
            EntryKind.APPROVAL_REQUESTED,
            step_id=step.id,
            audit=True,
            message=f"waiting for approval: {plan.confirm_message or plan.summary}",
            data={
                "plan_digest": digest,
                "plan": plan.model_dump(mode="json"),
                "deadline": deadline.isoformat(),
            },
        )
        self._tell_incident(
            lambda sender: sender.notify_commander(
                self.incident_id or "",
                dedup_key=f"{self.incident_id}:{self.run_id}:{step.id}:approval",
                reason="approval_needed",
                summary=f"run {self.run_id} ({self.runbook.name}) waits for approval of step {step.id}: "
                f"{plan.confirm_message or plan.summary}",
            )
        )
        self.keeper.stop()
        with self.ws.store.write() as connection:
            lease_repo.extend_locks_until(
                connection, run_id=self.run_id, until=deadline, now=self.ws.clock.now()
            )
            lease_repo.release(
                connection, held=[self.run_lease], owner=self.owner, now=self.ws.clock.now()
            )
            run_repo.set_state(
                connection,
                run_id=self.run_id,
                state=RunState.AWAITING_APPROVAL,
                now=self.ws.clock.now(),
                approval_deadline=deadline,
            )
        reason = (
            f"step {step.id} needs approval; approve with `breakglass approve {self.run_id} {step.id}`, "
            f"then `breakglass resume {self.run_id}` (locks are kept until {deadline.isoformat(timespec='seconds')})"
        )
        if plan.destructive:
            expected = plan.gate_target or plan.target
            reason += (
                f"; it is destructive, so approve it with --target {expected!r} (or type that at "
                f"a terminal, or resume with --yes-destructive {expected!r})"
            )
        code = ExitCode.INTERRUPTED if interrupted else ExitCode.AWAITING_APPROVAL
        return RunOutcome(self.run_id, RunState.AWAITING_APPROVAL, reason, code, self.step_table())

    def _preapproved(self, plan: StepPlan) -> bool:
        if plan.destructive:
            return (plan.gate_target or plan.target) in self.options.yes_destructive
        return self.options.yes

    def _plan(self, step: Step) -> StepPlan:
        action = registry.get_action(step.action)
        ctx = self.action_context(step, action, timeout_for(step, action))
        return plan_step(step, self.template_context(), ctx)

    def _run_step(self, step: Step, decision: Decision) -> None:
        phase = decision.phase
        if decision.kind == DecisionKind.RUN_STEP and self._when_false(step, phase):
            return
        if phase == Phase.UNDO:
            assert step.undo is not None
            action_name, raw, timeout = (
                step.undo.action,
                step.undo.with_,
                step.undo.timeout or step.timeout,
            )
        else:
            action_name, raw, timeout = step.action, step.with_, step.timeout
        action = registry.get_action(action_name)
        seconds = timeout if timeout is not None else action.default_timeout
        if decision.approved_digest is not None and phase == Phase.MAIN:
            current = self._plan(step).digest()
            if current != decision.approved_digest:
                self.record(
                    EntryKind.APPROVAL_VOIDED,
                    step_id=step.id,
                    audit=True,
                    message="the plan changed since it was approved; approval is needed again",
                    data={"approved_digest": decision.approved_digest, "plan_digest": current},
                )
                return
        context = self.template_context(include_self=step.id if phase == Phase.UNDO else None)
        if phase == Phase.UNDO:
            context["steps"].setdefault(
                step.id, {"outputs": self.outputs.get(step.id, {}), "status": "succeeded"}
            )
        common: dict[str, Any] = {
            "step_id": step.id,
            "phase": phase.value,
            "attempt": decision.attempt,
        }
        try:
            params = action.parse(render_value(raw, context))
        except (TemplateError, ValidationError) as e:
            self.record(
                EntryKind.STEP_ENDED,
                status=StepStatus.FAILED.value,
                message=f"invalid parameters: {describe_error(e)}",
                audit=True,
                **common,
            )
            return
        self.record(
            EntryKind.STEP_STARTED,
            message=decision.reason,
            data={
                "action": action_name,
                "params": params.model_dump(mode="json"),
                "timeout": seconds,
            },
            **common,
        )
        ctx = self.action_context(step, action, seconds)
        if action.interactive:
            ctx.approval = self._approval_of(step.id)
        status, outputs, error, extra, duration = self._execute(action, params, ctx)
        self.record(
            EntryKind.STEP_ENDED,
            status=status.value,
            message=error,
            duration=duration,
            audit=True,
            data={"outputs": outputs, **extra},
            **common,
        )

    def _approval_of(self, step_id: str) -> Approval | None:
        for entry in reversed(self.entries):
            if entry.step_id == step_id and entry.kind == EntryKind.APPROVAL_GRANTED:
                return Approval(entry.actor, entry.data.get("note"))
        return None

    def _execute(
        self, action: Action[Any, Any], params: Any, ctx: ActionContext
    ) -> tuple[StepStatus, dict[str, Any], str | None, dict[str, Any], float]:
        result: dict[str, Any] = {}

        def work() -> None:
            try:
                result["outputs"] = action.run(params, ctx).model_dump(mode="json")
            except BaseException as e:
                result["error"] = e

        started = time.monotonic()
        self.step_cancelled.clear()
        worker = threading.Thread(target=work, name=f"step-{ctx.step_id}", daemon=True)
        worker.start()
        deadline = started + ctx.timeout + OVERRUN_GRACE_SECONDS
        abort_deadline: float | None = None
        signals_seen = self.signals
        while worker.is_alive():
            worker.join(timeout=0.05)
            if self.signals != signals_seen:
                # Say at once that the interrupt was heard, or the operator presses again
                # and turns a halt into an abort.
                signals_seen = self.signals
                self._sync_cancel()
            now = time.monotonic()
            if self._cancel_level() >= 2 and abort_deadline is None:
                abort_deadline = now + ABORT_GRACE_SECONDS
            if now > deadline or (abort_deadline is not None and now > abort_deadline):
                break
        duration = round(time.monotonic() - started, 3)
        if worker.is_alive():
            why = "was aborted" if abort_deadline is not None else "overran its timeout"
            return (
                StepStatus.TIMED_OUT,
                {},
                f"{action.name} {why} and may still be running; it is in doubt",
                {},
                duration,
            )
        error = result.get("error")
        if error is None:
            return (
                StepStatus.SUCCEEDED,
                REDACTOR.redact_data(result.get("outputs", {})),
                None,
                {},
                duration,
            )
        return self._classify(error, duration)

    def _classify(
        self, error: BaseException, duration: float
    ) -> tuple[StepStatus, dict[str, Any], str | None, dict[str, Any], float]:
        if isinstance(error, ActionCancelledError):
            return StepStatus.CANCELLED, error.outputs, error.message, {}, duration
        if isinstance(error, ActionTimeoutError):
            return StepStatus.FAILED, error.outputs, error.message, {"timed_out": True}, duration
        if isinstance(error, BreakglassError):
            # A user error met while running (a secret not set, a missing file) carries a
            # message that names the fix, which a traceback would only hide.
            return (
                StepStatus.FAILED,
                {},
                error.message + (f" ({error.hint})" if error.hint else ""),
                {},
                duration,
            )
        if isinstance(error, ActionError):
            extra = {
                "temporary": error.temporary,
                "retry_after": error.retry_after,
                "unreachable": error.unreachable,
            }
            return (
                StepStatus.FAILED,
                REDACTOR.redact_data(error.outputs),
                error.message,
                extra,
                duration,
            )
        # An action with a bug must fail its step loudly, not crash the run half-way.
        log.error("action raised %s", type(error).__name__, exc_info=error)
        return (
            StepStatus.FAILED,
            {},
            f"internal error in the action: {type(error).__name__}: {error}",
            {},
            duration,
        )

    # -- endings ---------------------------------------------------------------------------------

    def _need_decision(self, decision: Decision) -> RunOutcome:
        self.record(
            EntryKind.DECISION_NEEDED,
            step_id=decision.step_id,
            phase=decision.phase.value,
            message=decision.reason,
            audit=True,
        )
        self.keeper.stop()
        with self.ws.store.write() as connection:
            now = self.ws.clock.now()
            run_repo.set_state(
                connection,
                run_id=self.run_id,
                state=RunState.NEEDS_DECISION,
                now=now,
                summary=decision.reason,
            )
            lease_repo.release_run_locks(connection, run_id=self.run_id, now=now)
        return RunOutcome(
            self.run_id,
            RunState.NEEDS_DECISION,
            decision.reason,
            ExitCode.IN_DOUBT,
            self.step_table(),
        )

    def _tell_incident(self, action: Callable[[Sender], object]) -> None:
        """Notify through the run's incident, recording a failure in the journal instead of failing the run."""
        if self.incident_id is None:
            return
        try:
            action(self.ws.sender())
        # The run's outcome must stand whatever the notification path does; the failure
        # is recorded in the journal and the log instead.
        except Exception as e:
            log.error("run %s: notifying incident %s failed: %s", self.run_id, self.incident_id, e)
            self.record(
                EntryKind.NOTE, message=f"notifying incident {self.incident_id} failed: {e}"
            )

    def _finish(self, decision: Decision) -> RunOutcome:
        state = decision.final_state or RunState.FAILED
        if state != RunState.SUCCEEDED and not decision.interrupted:
            self._tell_incident(
                lambda sender: sender.escalate(
                    self.incident_id or "",
                    reason=f"run {self.run_id} of {self.runbook.name} ended {state.value}: {decision.reason}",
                )
            )
        self.record(EntryKind.RUN_ENDED, status=state.value, message=decision.reason, audit=True)
        # Stopped before the leases go, so the keeper never reports a released lease as lost.
        self.keeper.stop()
        with self.ws.store.write() as connection:
            now = self.ws.clock.now()
            run_repo.set_state(
                connection, run_id=self.run_id, state=state, now=now, summary=decision.reason
            )
            lease_repo.release_run_locks(connection, run_id=self.run_id, now=now)
        if state == RunState.SUCCEEDED:
            code = ExitCode.OK
        elif decision.interrupted:
            code = ExitCode.INTERRUPTED
        elif self._failed_on_unreachable_target():
            code = ExitCode.UNREACHABLE
        else:
            code = ExitCode.FAILED
        return RunOutcome(self.run_id, state, decision.reason, code, self.step_table())

    def _failed_on_unreachable_target(self) -> bool:
        """Tell whether the step whose failure ended the run could not reach its target."""
        for entry in reversed(self.entries):
            if (
                entry.kind == EntryKind.STEP_ENDED
                and entry.status == StepStatus.FAILED
                and entry.phase == Phase.MAIN
            ):
                return bool(entry.data.get("unreachable"))
        return False

    def step_table(self) -> list[dict[str, Any]]:
        return describe_steps(self.runbook, self.entries)


def describe_steps(
    runbook: Runbook, entries: list[JournalEntry], *, live: bool = False
) -> list[dict[str, Any]]:
    """Say, per step, what was done and what was not: the run's summary table.

    A step that started and has not ended is `running` while the run's process is alive
    (`live`), and `in doubt` once it is not.
    """
    unfinished = "running" if live else "in doubt"
    main: dict[str, str] = {}
    undo: dict[str, str] = {}
    notes: dict[str, str] = {}
    for entry in entries:
        if not entry.step_id:
            continue
        if entry.kind == EntryKind.STEP_STARTED:
            target = undo if entry.phase == Phase.UNDO else main
            target[entry.step_id] = unfinished
        elif entry.kind in (EntryKind.STEP_ENDED, EntryKind.STEP_SKIPPED):
            target = undo if entry.phase == Phase.UNDO else main
            status = entry.status if entry.kind == EntryKind.STEP_ENDED else "skipped"
            target[entry.step_id] = "in doubt" if status == StepStatus.TIMED_OUT else str(status)
            if entry.message and status != StepStatus.SUCCEEDED:
                notes[entry.step_id] = entry.message
            else:
                # A step that succeeded on a later attempt no longer shows the old error.
                notes.pop(entry.step_id, None)
        elif entry.kind == EntryKind.APPROVAL_REQUESTED and entry.step_id not in main:
            main[entry.step_id] = "awaiting approval"
        elif entry.kind == EntryKind.RUN_ENDED:
            # A run that ended while a gate waited never ran the gated step.
            main = {
                key: "not run" if value == "awaiting approval" else value
                for key, value in main.items()
            }
    table = []
    for step in runbook.steps:
        row = {"id": step.id, "action": step.action, "status": main.get(step.id, "not run")}
        if step.id in undo:
            row["undo"] = undo[step.id]
        if step.id in notes:
            row["note"] = notes[step.id]
        table.append(row)
    return table
