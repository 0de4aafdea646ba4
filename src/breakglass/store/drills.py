"""Repository functions for drill records, which `drill list` and `doctor` read."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Connection, insert, select

from breakglass.store.schema import drills


class DrillRecord(BaseModel):
    id: int
    name: str
    runbook: str | None
    run_id: str | None
    result: str
    details: dict[str, Any]
    started_at: datetime
    finished_at: datetime
    actor: str


def add_drill(
    connection: Connection,
    *,
    name: str,
    runbook: str | None,
    run_id: str | None,
    result: str,
    details: dict[str, Any],
    started_at: datetime,
    finished_at: datetime,
    actor: str,
) -> int:
    inserted = connection.execute(
        insert(drills).values(
            name=name,
            runbook=runbook,
            run_id=run_id,
            result=result,
            details=json.dumps(details, sort_keys=True, default=str),
            started_at=started_at,
            finished_at=finished_at,
            actor=actor,
        )
    )
    key = inserted.inserted_primary_key
    return int(key[0]) if key else 0


def list_drills(connection: Connection, *, name: str | None = None) -> list[DrillRecord]:
    query = select(drills).order_by(drills.c.finished_at.desc(), drills.c.id.desc())
    if name is not None:
        query = query.where(drills.c.name == name)
    return [
        DrillRecord(**{**dict(row._mapping), "details": json.loads(row.details)})
        for row in connection.execute(query)
    ]
