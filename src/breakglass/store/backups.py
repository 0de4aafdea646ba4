"""Repository functions for the backups breakglass made, so a later step or drill can find them."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Connection, insert, select

from breakglass.store.schema import backups


class BackupRecord(BaseModel):
    id: int
    database: str
    kind: str
    path: str
    sha256: str | None
    size: int | None
    server_version: str | None
    details: dict[str, Any]
    run_id: str | None
    created_at: datetime
    created_by: str


def add_backup(
    connection: Connection,
    *,
    database: str,
    kind: str,
    path: str,
    details: dict[str, Any],
    run_id: str | None,
    actor: str,
    now: datetime,
    sha256: str | None = None,
    size: int | None = None,
    server_version: str | None = None,
) -> int:
    result = connection.execute(
        insert(backups).values(
            database=database,
            kind=kind,
            path=path,
            sha256=sha256,
            size=size,
            server_version=server_version,
            details=json.dumps(details, sort_keys=True, default=str),
            run_id=run_id,
            created_at=now,
            created_by=actor,
        )
    )
    key = result.inserted_primary_key
    return int(key[0]) if key else 0


def list_backups(connection: Connection, *, database: str | None = None) -> list[BackupRecord]:
    query = select(backups).order_by(backups.c.created_at.desc(), backups.c.id.desc())
    if database is not None:
        query = query.where(backups.c.database == database)
    return [
        BackupRecord(**{**dict(row._mapping), "details": json.loads(row.details)})
        for row in connection.execute(query)
    ]
