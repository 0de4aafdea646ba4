"""The engine's entry points for the interfaces: plan, start, resume, approve, reject and cancel runs."""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from breakglass.actions.base import ActionContext
from breakglass.engine.events import EventBus
from breakglass.engine.executor import Executor, RunOptions, RunOutcome, crash_point, describe_steps
from breakglass.engine.interaction import Interaction
from breakglass.engine.leasing import new_owner_token
from breakglass.engine.planning import StepPlan, TemplateContext, plan_runbook, refusals
from breakglass.engine.workspace import Workspace
from breakglass.errors import (
    BreakglassError,
    ExitCode,
    LockHeldError,
    NotFoundError,
    TargetUnreachableError,
    UserInputError,
)
from breakglass.runbooks.inputs import resolve_inputs
from breakglass.runbooks.lint import lint_loaded
from breakglass.runbooks.loading import LoadedRunbook, RunbookInvalidError, load_runbook, locate
from breakglass.runbooks.templating import TemplateError, render_value
from breakglass.store import leases as lease_repo
from breakglass.store import runs as run_repo
from breakglass.store.audit import append as audit_append
from breakglass.store.leases import Lease
from breakglass.store.records import EntryKind, JournalEntry, RunRecord, RunState

log = logging.getLogger(__name__)

LOCK_WAIT_POLL_SECONDS = 1.0
RESUMABLE = {
    RunState.INTERRUPTED,
    RunState.HALTED,
    RunState.AWAITING_APPROVAL,
    RunState.APPROVAL_EXPIRED,
    RunState.NEEDS_DECISION,
}


@dataclass
class PlanReport:
    runbook: str
    source: str
    inputs: dict[str, Any]
    locks: list[str]
    steps: list[StepPlan]


def load_and_lint(workspace: Workspace, reference: str) -> LoadedRunbook:
    """Load a runbook by name or path and refuse it when lint finds anything."""
    source = locate(reference, workspace.config)
    loaded = load_runbook(source.path)
    findings = lint_loaded(loaded, workspace.config)
    if findings:
        raise RunbookInvalidError(findings, str(source.path))
    return loaded


def _render_locks(loaded: LoadedRunbook, context: dict[str, Any]) -> list[str]:
    locks = []
    for template in loaded.runbook.locks:
        try:
            locks.append(str(render_value(template, context)))
        except TemplateError as e:
            raise UserInputError(f"cannot render lock {template!r}: {e}") from e
    return sorted(set(locks))


def _base_context(
    workspace: Workspace, loaded: LoadedRunbook, inputs: dict[str, Any], run_id: str | None
) -> TemplateContext:
    return TemplateContext(
        inputs=inputs,
        config=workspace.config,
        run={
            "id": run_id or "(planned)",
            "actor": workspace.actor,
            "runbook": loaded.runbook.name,
            "incident": None,
        },
        steps={},
    )


def plan_run(workspace: Workspace, reference: str, given: dict[str, Any]) -> PlanReport:
    """Plan a runbook without side effects on any target; the plan itself is audited."""
    loaded = load_and_lint(workspace, reference)
    inputs = resolve_inputs(loaded.runbook, given)
    context = _base_context(workspace, loaded, inputs, None)
    locks = _render_locks(loaded, context.as_dict())
    ctx = ActionContext(
        config=workspace.config, actor=workspace.actor, clock=workspace.clock, store=workspace.store
    )
    steps = plan_runbook(loaded.runbook, context, ctx)
    workspace.audit("plan", loaded.runbook.name, {"inputs": inputs, "digest": loaded.digest})
    return PlanReport(loaded.runbook.name, str(loaded.path), inputs, locks, steps)


def _check_destructive_targets(plans: list[StepPlan], options: RunOptions) -> None:
    """Warn about a --yes-destructive value that no destructive step of the run acts on."""
    targets = {plan.gate_target or plan.target for plan in plans if plan.destructive}
    for given in options.yes_destructive:
        if given not in targets:
            known = ", ".join(repr(target) for target in sorted(targets)) or "none"
            log.warning(
                "--yes-destructive %r matches no destructive step of this run; they act on: %s",
                given,
                known,
            )


def _preflight(
    workspace: Workspace, loaded: LoadedRunbook, inputs: dict[str, Any]
) -> list[StepPlan]:
    """Plan every step before the run exists, and refuse when a step's action refuses.

    A guardrail that fails in planning (a target time without a zone, a missing WAL
    segment, an unknown database) must stop the run before its first step changes
    anything, not when the run reaches that step.
    """
    context = _base_context(workspace, loaded, inputs, None)
    ctx = ActionContext(
        config=workspace.config, actor=workspace.actor, clock=workspace.clock, store=workspace.store
    )
    plans = plan_runbook(loaded.runbook, context, ctx)
    refused = refusals(plans)
    if not refused:
        return plans
    reasons = "; ".join(f"step {plan.id}: {plan.error}" for plan in refused)
    message = f"runbook {loaded.runbook.name} cannot run, so no run was started: {reasons}"
    if all(plan.unreachable for plan in refused):
        raise TargetUnreachableError(message, hint="check the target is up, then run it again")
    raise UserInputError(
        message, hint=f"see `breakglass plan {loaded.runbook.name}` and fix the cause"
    )


def _acquire(
    workspace: Workspace,
    names: list[str],
    holder: str,
    owner: str,
    options: RunOptions,
    create: Any = None,
) -> tuple[list[Lease], Any]:
    """Take leases (creating the run in the same transaction when asked), waiting if allowed."""
    started = time.monotonic()
    announced = False
    while True:
        try:
            with workspace.store.write() as connection:
                created = create(connection) if create is not None else holder
                lease_names = [lease_repo.run_lease_name(created), *names]
                held = lease_repo.acquire(
                    connection,
                    names=lease_names,
                    holder=created,
                    owner=owner,
                    now=workspace.clock.now(),
                    ttl=workspace.config.model.lease_ttl,
                )
                return held, created
        except LockHeldError as e:
            if not options.wait_for_locks:
                raise
            if time.monotonic() - started > options.lock_wait_timeout:
                raise LockHeldError(
                    f"{e.message}; still held after waiting {options.lock_wait_timeout:g}s",
                    hint="raise --wait-timeout, or check the holder with `breakglass runs show`",
                ) from e
            if not announced:
                log.warning("%s; waiting (--wait) up to %gs", e.message, options.lock_wait_timeout)
                announced = True
            time.sleep(LOCK_WAIT_POLL_SECONDS)


def start_run(
    workspace: Workspace,
    reference: str,
    given: dict[str, Any],
    *,
    options: RunOptions,
    interaction: Interaction,
    bus: EventBus,
    incident_id: str | None = None,
    open_declared_incident: bool = True,
) -> RunOutcome:
    """Plan, check and run a runbook; return how the run ended or paused.

    `open_declared_incident=False` keeps a runbook's `incident:` from opening one, as
    for a drill, which must not page anybody.
    """
    loaded = load_and_lint(workspace, reference)
    inputs = resolve_inputs(loaded.runbook, given)
    context = _base_context(workspace, loaded, inputs, None).as_dict()
    locks = _render_locks(loaded, context)
    if incident_id is not None:
        workspace.incidents.ensure_open(incident_id)
    plans = _preflight(workspace, loaded, inputs)
    _check_destructive_targets(plans, options)
    owner = new_owner_token()
    config = workspace.config
    _audit_config_change(workspace)

    def create(connection: Any) -> str:
        now = workspace.clock.now()
        run_id = run_repo.create_run(
            connection,
            runbook=loaded.runbook.name,
            runbook_path=str(loaded.path.resolve()),
            runbook_digest=loaded.digest,
            config_path=str(config.path.resolve()) if config.path else None,
            config_digest=config.digest,
            inputs=inputs,
            policy=loaded.runbook.on_failure.value,
            actor=workspace.actor,
            incident_id=incident_id,
            now=now,
        )
        run_repo.append(
            connection,
            JournalEntry(
                run_id=run_id,
                at=now,
                kind=EntryKind.RUN_CREATED,
                actor=workspace.actor,
                message=f"run of {loaded.runbook.name} created",
                data={
                    "inputs": inputs,
                    "locks": locks,
                    "runbook_digest": loaded.digest,
                    "config_digest": config.digest,
                },
            ),
        )
        audit_append(
            connection,
            key=workspace.audit_key,
            at=now,
            actor=workspace.actor,
            kind="run_created",
            subject=run_id,
            data={"runbook": loaded.runbook.name, "inputs": inputs, "locks": locks},
        )
        return run_id

    held, run_id = _acquire(
        workspace, [lease_repo.lock_lease_name(lock) for lock in locks], "", owner, options, create
    )
    crash_point("run_created:")
    if incident_id is None and loaded.runbook.incident is not None and open_declared_incident:
        incident_id = _open_declared_incident(workspace, loaded, context, run_id)
        with workspace.store.write() as connection:
            run_repo.attach_incident(
                connection, run_id=run_id, incident_id=incident_id, now=workspace.clock.now()
            )
    with workspace.store.read() as connection:
        entries = run_repo.entries(connection, run_id=run_id)
    executor = Executor(
        workspace,
        loaded,
        run_id=run_id,
        inputs=inputs,
        owner=owner,
        held=held,
        options=options,
        interaction=interaction,
        bus=bus,
        entries=entries,
        incident_id=incident_id,
    )
    for_incident = f" for incident {incident_id}" if incident_id else ""
    executor.record(EntryKind.RUN_STARTED, message=f"started by {workspace.actor}{for_incident}")
    return executor.drive()


def _open_declared_incident(
    workspace: Workspace, loaded: LoadedRunbook, context: dict[str, Any], run_id: str
) -> str:
    """Open the incident a runbook declares, for a run started without --incident."""
    spec = loaded.runbook.incident
    assert spec is not None
    try:
        title = str(render_value(spec.title, context))
    except TemplateError as e:
        raise UserInputError(
            f"cannot render the incident title of {loaded.runbook.name}: {e}"
        ) from e
    incident = workspace.incidents.open(
        title=title,
        severity=spec.severity,
        services=spec.services,
        source=f"run {run_id} of {loaded.runbook.name}",
    )
    return incident.id


def _audit_config_change(workspace: Workspace) -> None:
    """Record a config change once: when this config's digest differs from the last one used."""
    with workspace.store.read() as connection:
        runs = run_repo.list_runs(connection, now=workspace.clock.now(), limit=1)
    if runs and runs[0].config_digest != workspace.config.digest:
        workspace.audit(
            "config_changed",
            workspace.config.source,
            {"previous_digest": runs[0].config_digest, "digest": workspace.config.digest},
        )


def get_run(workspace: Workspace, run_id: str) -> RunRecord:
    with workspace.store.read() as connection:
        return run_repo.get_run(connection, run_id=run_id, now=workspace.clock.now())


def resume_run(
    workspace: Workspace,
    run_id: str,
    *,
    options: RunOptions,
    interaction: Interaction,
    bus: EventBus,
    abort: bool = False,
    abort_message: str | None = None,
) -> RunOutcome:
    record = get_run(workspace, run_id)
    if record.state == RunState.RUNNING:
        raise UserInputError(
            f"run {run_id} is still running in another process (its lease is held)",
            hint=f"follow it with `breakglass runs show {run_id} --follow`, or stop it with `breakglass cancel {run_id}`",
        )
    if record.state.is_final:
        raise UserInputError(
            f"run {run_id} already ended as {record.state.value}; there is nothing to resume"
        )
    loaded = _reload_for_resume(workspace, record, options)
    with workspace.store.read() as connection:
        entries = run_repo.entries(connection, run_id=run_id)
    # Checked before anything is written, so a rejected choice leaves the run as it was.
    choices = _operator_choices(loaded, entries, run_id, options)
    _reject_if_child_alive(entries)
    locks = _locks_of(entries)
    owner = new_owner_token()
    held, _ = _acquire(
        workspace, [lease_repo.lock_lease_name(lock) for lock in locks], run_id, owner, options
    )
    executor = Executor(
        workspace,
        loaded,
        run_id=run_id,
        inputs=record.inputs,
        owner=owner,
        held=held,
        options=options,
        interaction=interaction,
        bus=bus,
        entries=entries,
        incident_id=record.incident_id,
    )
    with workspace.store.write() as connection:
        run_repo.reset_cancel(connection, run_id=run_id, now=workspace.clock.now())
        run_repo.set_state(
            connection, run_id=run_id, state=RunState.RUNNING, now=workspace.clock.now()
        )
    executor.record(
        EntryKind.RUN_RESUMED,
        message=f"resumed by {workspace.actor} from {record.state.value}",
        audit=True,
    )
    _record_operator_choices(executor, choices)
    if abort:
        executor.record(
            EntryKind.CANCEL_REQUESTED,
            data={"level": 2},
            message=abort_message or "aborted by the operator",
            audit=True,
        )
    return executor.drive()


def _reload_for_resume(
    workspace: Workspace, record: RunRecord, options: RunOptions
) -> LoadedRunbook:
    path = Path(record.runbook_path)
    if not path.is_file():
        raise NotFoundError(f"runbook file {path} of run {record.id} no longer exists")
    loaded = load_and_lint(workspace, str(path))
    changed = []
    if loaded.digest != record.runbook_digest:
        changed.append(f"runbook {path}")
    if workspace.config.digest != record.config_digest:
        changed.append(f"config {workspace.config.source}")
    if changed and not options.accept_changes:
        raise UserInputError(
            f"run {record.id}: {' and '.join(changed)} changed since the run started",
            hint="check the difference, then resume with --accept-changes to continue with the new version",
        )
    if changed:
        workspace.audit("changes_accepted", record.id, {"changed": changed})
    return loaded


class ChildStillRunningError(BreakglassError):
    exit_code = ExitCode.IN_DOUBT


def _reject_if_child_alive(entries: list[JournalEntry]) -> None:
    """Reject a resume while a crashed run's step process is still running on this host.

    The run's locks expired with the crashed process, so nothing else keeps a second actor
    off the same target. Resuming beside the still-running step would be that actor.
    """
    ended: set[str] = set()
    groups: dict[str, tuple[int, str]] = {}
    for entry in entries:
        if not entry.step_id:
            continue
        if entry.kind == EntryKind.STEP_STARTED:
            ended.discard(entry.step_id)
            groups.pop(entry.step_id, None)
        elif entry.kind in (EntryKind.STEP_ENDED, EntryKind.STEP_SKIPPED):
            ended.add(entry.step_id)
        elif entry.kind == EntryKind.NOTE and "process_group" in entry.data:
            groups[entry.step_id] = (int(entry.data["process_group"]), str(entry.data.get("host")))
    for step_id, (pgid, host) in groups.items():
        if step_id in ended or host != socket.gethostname():
            continue
        if not _group_alive(pgid):
            continue
        raise ChildStillRunningError(
            f"step {step_id} started process group {pgid}, which is still running on this host",
            hint=f"wait for it to finish, or stop it with `kill -TERM -{pgid}`, then resume",
        )


def _group_alive(pgid: int) -> bool:
    """Tell whether a process group has a member that is not a zombie.

    A step's child outlives a killed breakglass and is then reaped by the init process.
    Where init does not reap (in some containers), the exited child stays a zombie.
    """
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    proc = Path("/proc")
    if not proc.is_dir():
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name (field 2) is in parentheses and may contain spaces.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def _locks_of(entries: list[JournalEntry]) -> list[str]:
    for entry in entries:
        if entry.kind == EntryKind.RUN_CREATED:
            return list(entry.data.get("locks", []))
    return []


def _operator_choices(
    loaded: LoadedRunbook, entries: list[JournalEntry], run_id: str, options: RunOptions
) -> list[tuple[str, str, str]]:
    """Check --retry-step and --skip-step; return (step, choice, phase) for each given."""
    step_ids = {step.id for step in loaded.runbook.steps}
    choices = []
    for step_id, choice in ((options.retry_step, "retry"), (options.skip_step, "skip")):
        if step_id is None:
            continue
        if step_id not in step_ids:
            raise UserInputError(f"--{choice}-step {step_id}: run {run_id} has no step {step_id}")
        phase = _in_doubt_phase(entries, step_id)
        if phase is None:
            raise UserInputError(
                f"--{choice}-step {step_id}: step {step_id} is not in doubt",
                hint="only a step that started and never ended needs a decision",
            )
        choices.append((step_id, choice, phase))
    return choices


def _record_operator_choices(executor: Executor, choices: list[tuple[str, str, str]]) -> None:
    for step_id, choice, phase in choices:
        if choice == "retry":
            executor.record(
                EntryKind.OPERATOR_DECISION,
                step_id=step_id,
                phase=phase,
                audit=True,
                message=f"{executor.ws.actor} chose to retry the in-doubt step",
                data={"decision": "retry"},
            )
        else:
            executor.record(
                EntryKind.STEP_SKIPPED,
                step_id=step_id,
                phase=phase,
                audit=True,
                message=f"{executor.ws.actor} chose to skip the in-doubt step",
            )


def _in_doubt_phase(entries: list[JournalEntry], step_id: str) -> str | None:
    last: JournalEntry | None = None
    for entry in entries:
        if entry.step_id == step_id and entry.kind in (
            EntryKind.STEP_STARTED,
            EntryKind.STEP_ENDED,
            EntryKind.STEP_SKIPPED,
        ):
            last = entry
    if last is None:
        return None
    if last.kind == EntryKind.STEP_STARTED or (
        last.kind == EntryKind.STEP_ENDED and last.status == "timed_out"
    ):
        return last.phase or "main"
    return None


def _pending_request(
    workspace: Workspace, run_id: str, step_id: str
) -> tuple[RunRecord, JournalEntry]:
    record = get_run(workspace, run_id)
    if record.state not in (RunState.AWAITING_APPROVAL, RunState.APPROVAL_EXPIRED):
        raise UserInputError(f"run {run_id} is {record.state.value}, not awaiting approval")
    with workspace.store.read() as connection:
        entries = run_repo.entries(connection, run_id=run_id)
    pending = None
    for entry in entries:
        if entry.step_id == step_id and entry.kind == EntryKind.APPROVAL_REQUESTED:
            pending = entry
        elif entry.step_id == step_id and entry.kind in (
            EntryKind.APPROVAL_GRANTED,
            EntryKind.APPROVAL_REJECTED,
        ):
            pending = None
    if pending is None:
        waiting = sorted(
            {e.step_id for e in entries if e.kind == EntryKind.APPROVAL_REQUESTED and e.step_id}
        )
        raise UserInputError(
            f"run {run_id} has no pending approval for step {step_id}",
            hint=f"steps with approval requests: {', '.join(waiting) or 'none'}",
        )
    return record, pending


def decide_approval(
    workspace: Workspace,
    run_id: str,
    step_id: str,
    *,
    approved: bool,
    note: str | None,
    target: str | None = None,
) -> JournalEntry:
    """Record an approval or rejection for a paused run; `resume` then acts on it.

    Approving a destructive step needs `target` to name what it acts on, as typing it at
    the terminal prompt does.
    """
    _, request = _pending_request(workspace, run_id, step_id)
    plan = request.data.get("plan") or {}
    if approved and plan.get("destructive"):
        expected = plan.get("gate_target") or plan.get("target")
        if target != expected:
            raise UserInputError(
                f"step {step_id} of {run_id} is destructive: approve it by naming its target, "
                f"--target {expected!r}" + (f" (got {target!r})" if target is not None else "")
            )
    kind = EntryKind.APPROVAL_GRANTED if approved else EntryKind.APPROVAL_REJECTED
    now = workspace.clock.now()
    entry = JournalEntry(
        run_id=run_id,
        at=now,
        kind=kind,
        step_id=step_id,
        actor=workspace.actor,
        message=f"{'approved' if approved else 'rejected'} by {workspace.actor}"
        + (f": {note}" if note else ""),
        data={"plan_digest": request.data.get("plan_digest"), "note": note},
    )
    with workspace.store.write() as connection:
        entry.seq = run_repo.append(connection, entry)
        audit_append(
            connection,
            key=workspace.audit_key,
            at=now,
            actor=workspace.actor,
            kind=kind.value,
            subject=f"{run_id}/{step_id}",
            data={"note": note, "plan_digest": request.data.get("plan_digest")},
        )
    return entry


def request_cancel(workspace: Workspace, run_id: str, *, abort: bool) -> tuple[RunRecord, int]:
    """Ask a live run to halt (first call) or abort (second call, or --abort)."""
    record = get_run(workspace, run_id)
    if record.state.is_final:
        raise UserInputError(f"run {run_id} already ended as {record.state.value}")
    with workspace.store.write() as connection:
        level = 2 if abort else min(record.cancel_level + 1, 2)
        level = run_repo.request_cancel(
            connection, run_id=run_id, level=level, now=workspace.clock.now()
        )
        audit_append(
            connection,
            key=workspace.audit_key,
            at=workspace.clock.now(),
            actor=workspace.actor,
            kind="cancel_requested",
            subject=run_id,
            data={"level": level},
        )
    return record, level


def journal_of(workspace: Workspace, run_id: str, after: int = 0) -> list[JournalEntry]:
    with workspace.store.read() as connection:
        run_repo.get_run(connection, run_id=run_id, now=workspace.clock.now())
        return run_repo.entries(connection, run_id=run_id, after=after)


def list_runs(workspace: Workspace, *, limit: int = 50) -> list[RunRecord]:
    with workspace.store.read() as connection:
        return run_repo.list_runs(connection, now=workspace.clock.now(), limit=limit)


def step_table(
    workspace: Workspace, record: RunRecord, entries: list[JournalEntry]
) -> list[dict[str, Any]]:
    try:
        loaded = load_runbook(Path(record.runbook_path))
    except (NotFoundError, RunbookInvalidError, UserInputError):
        return []
    return describe_steps(loaded.runbook, entries, live=record.lease_holder_alive)
