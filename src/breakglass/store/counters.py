"""Human-readable ids (`RUN-20261204-001`) allocated inside the caller's transaction."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Connection, insert, select, update

from breakglass.store.schema import counters


def next_id(connection: Connection, prefix: str, at: datetime) -> str:
    """Allocate the next id of the day; numbers widen past 999 instead of wrapping."""
    day = at.astimezone(UTC).strftime("%Y%m%d")
    name = f"{prefix}-{day}"
    current = connection.execute(
        select(counters.c.value).where(counters.c.name == name).with_for_update()
    ).scalar()
    if current is None:
        value = 1
        connection.execute(insert(counters).values(name=name, value=value))
    else:
        value = int(current) + 1
        connection.execute(update(counters).where(counters.c.name == name).values(value=value))
    return f"{name}-{value:03d}"
