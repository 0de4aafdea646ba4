"""Repository functions for known-good snapshots, which rollbacks to a snapshot read."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Connection, delete, insert, select

from breakglass.store.schema import snapshots


class SnapshotRecord(BaseModel):
    name: str
    data: dict[str, Any]
    sha256: str
    note: str | None
    created_at: datetime
    created_by: str


def digest(data: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def save_snapshot(
    connection: Connection,
    *,
    name: str,
    data: dict[str, Any],
    note: str | None,
    actor: str,
    now: datetime,
    replace: bool = False,
) -> bool:
    """Store a snapshot; return False when the name is taken and `replace` is not set."""
    exists = connection.execute(select(snapshots.c.name).where(snapshots.c.name == name)).first()
    if exists is not None:
        if not replace:
            return False
        connection.execute(delete(snapshots).where(snapshots.c.name == name))
    connection.execute(
        insert(snapshots).values(
            name=name,
            data=json.dumps(data, sort_keys=True),
            sha256=digest(data),
            note=note,
            created_at=now,
            created_by=actor,
        )
    )
    return True


def get_snapshot(connection: Connection, name: str) -> SnapshotRecord | None:
    row = connection.execute(select(snapshots).where(snapshots.c.name == name)).first()
    if row is None:
        return None
    return SnapshotRecord(**{**dict(row._mapping), "data": json.loads(row.data)})


def list_snapshots(connection: Connection) -> list[SnapshotRecord]:
    rows = connection.execute(select(snapshots).order_by(snapshots.c.created_at.desc()))
    return [SnapshotRecord(**{**dict(row._mapping), "data": json.loads(row.data)}) for row in rows]
