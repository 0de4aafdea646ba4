"""Repository functions for incidents, their own timeline events and their action items.

Run and step events are not copied here: an incident's full timeline joins these events
with the journal entries of the runs attached to it.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from breakglass.config.redaction import REDACTOR
from breakglass.errors import NotFoundError, UserInputError
from breakglass.store.counters import next_id
from breakglass.store.records import ActionItem, IncidentEvent, IncidentRecord
from breakglass.store.schema import action_items, incident_events, incidents, runs

OPEN_STATUSES = ("investigating", "identified", "monitoring")


def create_incident(
    connection: Connection,
    *,
    title: str,
    severity: str,
    services: list[str],
    commander: str | None,
    actor: str,
    now: datetime,
) -> str:
    incident_id = next_id(connection, "INC", now)
    connection.execute(
        insert(incidents).values(
            id=incident_id,
            title=REDACTOR.redact(title),
            severity=severity,
            status="investigating",
            services=json.dumps(services),
            commander=commander,
            opened_at=now,
            opened_by=actor,
            clock_started_at=now,
            escalation_level=0,
            updated_at=now,
        )
    )
    return incident_id


def update_incident(
    connection: Connection, *, incident_id: str, now: datetime, **values: Any
) -> None:
    if "services" in values:
        values["services"] = json.dumps(values["services"])
    connection.execute(
        update(incidents).where(incidents.c.id == incident_id).values(updated_at=now, **values)
    )


def _record(row: Any) -> IncidentRecord:
    data = dict(row._mapping)
    data["services"] = json.loads(data["services"])
    return IncidentRecord(**data)


def get_incident(
    connection: Connection, *, incident_id: str, for_update: bool = False
) -> IncidentRecord:
    query = select(incidents).where(incidents.c.id == incident_id)
    if for_update:
        query = query.with_for_update()
    row = connection.execute(query).first()
    if row is None:
        raise NotFoundError(
            f"incident {incident_id} not found",
            hint="`breakglass incident list --all` lists the incidents in this state store",
        )
    return _record(row)


def list_incidents(
    connection: Connection, *, include_resolved: bool, limit: int = 100
) -> list[IncidentRecord]:
    query = (
        select(incidents).order_by(incidents.c.opened_at.desc(), incidents.c.id.desc()).limit(limit)
    )
    if not include_resolved:
        query = query.where(incidents.c.status.in_(OPEN_STATUSES))
    return [_record(row) for row in connection.execute(query)]


def add_event(
    connection: Connection,
    *,
    incident_id: str,
    kind: str,
    actor: str,
    now: datetime,
    message: str | None = None,
    data: dict[str, Any] | None = None,
) -> IncidentEvent:
    event = IncidentEvent(
        incident_id=incident_id,
        at=now,
        kind=kind,
        actor=REDACTOR.redact(actor),
        message=REDACTOR.redact(message) if message is not None else None,
        data=REDACTOR.redact_data(data or {}),
    )
    result = connection.execute(
        insert(incident_events).values(
            incident_id=incident_id,
            at=now,
            kind=kind,
            actor=event.actor,
            message=event.message,
            data=json.dumps(event.data, sort_keys=True, default=str),
        )
    )
    key = result.inserted_primary_key
    event.seq = int(key[0]) if key else 0
    return event


def events(connection: Connection, *, incident_id: str) -> list[IncidentEvent]:
    rows = connection.execute(
        select(incident_events)
        .where(incident_events.c.incident_id == incident_id)
        .order_by(incident_events.c.seq)
    )
    return [
        IncidentEvent(
            seq=row.seq,
            incident_id=row.incident_id,
            at=row.at,
            kind=row.kind,
            actor=row.actor,
            message=row.message,
            data=json.loads(row.data),
        )
        for row in rows
    ]


def run_ids_of(connection: Connection, *, incident_id: str) -> list[str]:
    rows = connection.execute(
        select(runs.c.id).where(runs.c.incident_id == incident_id).order_by(runs.c.created_at)
    )
    return [row.id for row in rows]


def add_action_item(
    connection: Connection,
    *,
    incident_id: str,
    text: str,
    owner: str | None,
    due: str | None,
    actor: str,
    now: datetime,
) -> int:
    result = connection.execute(
        insert(action_items).values(
            incident_id=incident_id,
            text=REDACTOR.redact(text),
            owner=owner,
            due=due,
            created_at=now,
            created_by=actor,
        )
    )
    key = result.inserted_primary_key
    return int(key[0]) if key else 0


def finish_action_item(
    connection: Connection, *, incident_id: str, item_id: int, actor: str, now: datetime
) -> ActionItem:
    row = connection.execute(
        select(action_items).where(
            action_items.c.id == item_id, action_items.c.incident_id == incident_id
        )
    ).first()
    if row is None:
        raise NotFoundError(f"incident {incident_id} has no action item {item_id}")
    if row.done_at is not None:
        raise UserInputError(
            f"action item {item_id} of {incident_id} was already done by {row.done_by} "
            f"at {row.done_at.isoformat(timespec='minutes')}"
        )
    connection.execute(
        update(action_items).where(action_items.c.id == item_id).values(done_at=now, done_by=actor)
    )
    return ActionItem(**{**dict(row._mapping), "done_at": now, "done_by": actor})


def list_action_items(connection: Connection, *, incident_id: str) -> list[ActionItem]:
    rows = connection.execute(
        select(action_items)
        .where(action_items.c.incident_id == incident_id)
        .order_by(action_items.c.id)
    )
    return [ActionItem(**dict(row._mapping)) for row in rows]
