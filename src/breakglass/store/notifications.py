"""Repository functions for notification deliveries.

A delivery row is written as `pending` before anything is sent and marked `sent` after.
A row still pending when a sender starts was interrupted between the two, so it is sent
again with the same deduplication key: delivery is at least once, never silently zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, select, update

from breakglass.config.redaction import REDACTOR
from breakglass.store.schema import insert_if_absent, notifications

PENDING = "pending"
SENT = "sent"
FAILED = "failed"
SKIPPED = "skipped"


@dataclass(frozen=True)
class Delivery:
    id: int
    status: str
    attempts: int


def find(connection: Connection, *, dedup_key: str, contact_id: str) -> Delivery | None:
    row = connection.execute(
        select(notifications.c.id, notifications.c.status, notifications.c.attempts)
        .where(notifications.c.dedup_key == dedup_key, notifications.c.contact_id == contact_id)
        .with_for_update()
    ).first()
    return Delivery(row.id, row.status, row.attempts) if row else None


def begin(
    connection: Connection,
    *,
    incident_id: str,
    dedup_key: str,
    contact_id: str,
    kind: str,
    reason: str,
    now: datetime,
) -> Delivery:
    """Record the intent to send (status pending, one more attempt) and return the row."""
    values = {
        "incident_id": incident_id,
        "dedup_key": dedup_key,
        "contact_id": contact_id,
        "kind": kind,
        "reason": reason,
        "status": PENDING,
        "attempts": 1,
        "created_at": now,
        "updated_at": now,
    }
    if insert_if_absent(connection, notifications, values):
        created = find(connection, dedup_key=dedup_key, contact_id=contact_id)
        assert created is not None
        return created
    existing = find(connection, dedup_key=dedup_key, contact_id=contact_id)
    assert existing is not None
    connection.execute(
        update(notifications)
        .where(notifications.c.id == existing.id)
        .values(status=PENDING, attempts=existing.attempts + 1, updated_at=now)
    )
    return Delivery(existing.id, PENDING, existing.attempts + 1)


def finish(
    connection: Connection,
    *,
    delivery_id: int,
    status: str,
    now: datetime,
    channel: str | None = None,
    detail: str | None = None,
    error: str | None = None,
) -> None:
    connection.execute(
        update(notifications)
        .where(notifications.c.id == delivery_id)
        .values(
            status=status,
            channel=channel,
            updated_at=now,
            detail=REDACTOR.redact(detail) if detail else None,
            error=REDACTOR.redact(error) if error else None,
        )
    )


def count(connection: Connection, *, incident_id: str, status: str | None = None) -> int:
    query = select(notifications.c.id).where(notifications.c.incident_id == incident_id)
    if status is not None:
        query = query.where(notifications.c.status == status)
    return len(connection.execute(query).all())


def sent_pages(connection: Connection, *, incident_id: str) -> list[tuple[str, str]]:
    """Return (dedup_key, channel) of every page delivered for an incident."""
    rows = connection.execute(
        select(notifications.c.dedup_key, notifications.c.channel)
        .where(
            notifications.c.incident_id == incident_id,
            notifications.c.status == SENT,
            notifications.c.kind == "page",
        )
        .distinct()
    )
    return [(row.dedup_key, row.channel) for row in rows if row.channel]
