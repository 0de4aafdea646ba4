"""Repository functions for runs and their journal.

Every string that reaches these tables passes through the redactor first, so a secret
that slipped into an output or an error message is masked before it is written.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from breakglass.config.redaction import REDACTOR
from breakglass.errors import NotFoundError
from breakglass.store import leases as lease_repo
from breakglass.store.counters import next_id
from breakglass.store.records import EntryKind, JournalEntry, RunRecord, RunState
from breakglass.store.schema import journal, runs


def _dump(data: Any) -> str:
    return REDACTOR.redact(json.dumps(data, sort_keys=True, default=str))


def create_run(
    connection: Connection,
    *,
    runbook: str,
    runbook_path: str,
    runbook_digest: str,
    config_path: str | None,
    config_digest: str,
    inputs: dict[str, Any],
    policy: str,
    actor: str,
    incident_id: str | None,
    now: datetime,
) -> str:
    run_id = next_id(connection, "RUN", now)
    connection.execute(
        insert(runs).values(
            id=run_id,
            runbook=runbook,
            runbook_path=runbook_path,
            runbook_digest=runbook_digest,
            config_path=config_path,
            config_digest=config_digest,
            inputs=_dump(inputs),
            state=RunState.RUNNING.value,
            policy=policy,
            actor=actor,
            incident_id=incident_id,
            cancel_level=0,
            created_at=now,
            updated_at=now,
        )
    )
    return run_id


def set_state(
    connection: Connection,
    *,
    run_id: str,
    state: RunState,
    now: datetime,
    summary: str | None = None,
    approval_deadline: datetime | None = None,
) -> None:
    values: dict[str, Any] = {"state": state.value, "updated_at": now}
    if summary is not None:
        values["summary"] = REDACTOR.redact(summary)
    if state.is_final:
        values["ended_at"] = now
    values["approval_deadline"] = approval_deadline
    connection.execute(update(runs).where(runs.c.id == run_id).values(**values))


def request_cancel(connection: Connection, *, run_id: str, level: int, now: datetime) -> int:
    """Raise the run's cancel level (1 halts after the current step, 2 aborts) and return it."""
    current = get_run(connection, run_id=run_id, now=now).cancel_level
    new_level = max(current, level)
    connection.execute(
        update(runs).where(runs.c.id == run_id).values(cancel_level=new_level, updated_at=now)
    )
    return new_level


def reset_cancel(connection: Connection, *, run_id: str, now: datetime) -> None:
    connection.execute(
        update(runs).where(runs.c.id == run_id).values(cancel_level=0, updated_at=now)
    )


def cancel_level(connection: Connection, *, run_id: str) -> int:
    value = connection.execute(select(runs.c.cancel_level).where(runs.c.id == run_id)).scalar()
    return int(value or 0)


def append(connection: Connection, entry: JournalEntry) -> int:
    """Write one journal entry and return its sequence number."""
    result = connection.execute(
        insert(journal).values(
            run_id=entry.run_id,
            at=entry.at,
            kind=entry.kind.value,
            step_id=entry.step_id,
            phase=entry.phase,
            attempt=entry.attempt,
            status=entry.status,
            duration=entry.duration,
            actor=REDACTOR.redact(entry.actor),
            message=REDACTOR.redact(entry.message) if entry.message is not None else None,
            data=_dump(entry.data),
        )
    )
    key = result.inserted_primary_key
    return int(key[0]) if key else 0


def entries(connection: Connection, *, run_id: str, after: int = 0) -> list[JournalEntry]:
    rows = connection.execute(
        select(journal)
        .where(journal.c.run_id == run_id, journal.c.seq > after)
        .order_by(journal.c.seq)
    ).all()
    return [
        JournalEntry(
            seq=row.seq,
            run_id=row.run_id,
            at=row.at,
            kind=EntryKind(row.kind),
            step_id=row.step_id,
            phase=row.phase,
            attempt=row.attempt,
            status=row.status,
            duration=row.duration,
            actor=row.actor,
            message=row.message,
            data=json.loads(row.data),
        )
        for row in rows
    ]


def _record(row: Any, live: set[str], now: datetime) -> RunRecord:
    state = RunState(row.state)
    alive = row.id in live
    if state in {RunState.RUNNING} and not alive:
        # The process died without ending the run: its heartbeat stopped renewing the lease.
        state = RunState.INTERRUPTED
    elif (
        state == RunState.AWAITING_APPROVAL
        and row.approval_deadline is not None
        and row.approval_deadline <= now
    ):
        state = RunState.APPROVAL_EXPIRED
    return RunRecord(
        id=row.id,
        runbook=row.runbook,
        runbook_path=row.runbook_path,
        runbook_digest=row.runbook_digest,
        config_path=row.config_path,
        config_digest=row.config_digest,
        inputs=json.loads(row.inputs),
        state=state,
        policy=row.policy,
        actor=row.actor,
        incident_id=row.incident_id,
        cancel_level=row.cancel_level,
        summary=row.summary,
        created_at=row.created_at,
        updated_at=row.updated_at,
        ended_at=row.ended_at,
        approval_deadline=row.approval_deadline,
        lease_holder_alive=alive,
    )


def get_run(connection: Connection, *, run_id: str, now: datetime) -> RunRecord:
    row = connection.execute(select(runs).where(runs.c.id == run_id)).first()
    if row is None:
        raise NotFoundError(
            f"run {run_id} not found", hint="`breakglass runs` lists the runs in this state store"
        )
    live = lease_repo.live_run_ids(connection, now=now)
    return _record(row, live, now)


def list_runs(
    connection: Connection, *, now: datetime, limit: int = 50, states: set[RunState] | None = None
) -> list[RunRecord]:
    rows = connection.execute(
        select(runs).order_by(runs.c.created_at.desc(), runs.c.id.desc()).limit(limit)
    ).all()
    live = lease_repo.live_run_ids(connection, now=now)
    records = [_record(row, live, now) for row in rows]
    if states is not None:
        records = [record for record in records if record.state in states]
    return records


def count_entries(connection: Connection, *, run_id: str) -> int:
    value = connection.execute(
        select(func.count()).select_from(journal).where(journal.c.run_id == run_id)
    ).scalar()
    return int(value or 0)


def runbook_name(connection: Connection, *, run_id: str) -> str:
    value = connection.execute(select(runs.c.runbook).where(runs.c.id == run_id)).scalar()
    if value is None:
        raise NotFoundError(f"run {run_id} not found")
    return str(value)


def attach_incident(
    connection: Connection, *, run_id: str, incident_id: str, now: datetime
) -> None:
    connection.execute(
        update(runs).where(runs.c.id == run_id).values(incident_id=incident_id, updated_at=now)
    )
