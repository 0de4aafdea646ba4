"""Human-readable ids (`RUN-20261204-001`) allocated inside the caller's transaction."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Connection, select, update

from breakglass.store.schema import counters, insert_if_absent


def next_id(connection: Connection, prefix: str, at: datetime) -> str:
    """Allocate the next id of the day; numbers widen past 999 instead of wrapping."""
    day = at.astimezone(UTC).strftime("%Y%m%d")
    name = f"{prefix}-{day}"
    current = connection.execute(
        select(counters.c.value).where(counters.c.name == name).with_for_update()
    ).scalar()
    if current is None and insert_if_absent(connection, counters, {"name": name, "value": 1}):
        value = 1
    else:
        if current is None:
            current = connection.execute(
                select(counters.c.value).where(counters.c.name == name).with_for_update()
            ).scalar_one()
        value = int(current) + 1
        connection.execute(update(counters).where(counters.c.name == name).values(value=value))
    return f"{name}-{value:03d}"
