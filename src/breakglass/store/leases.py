"""Leases: time-limited, fenced ownership of a run or of a lock it declares.

A lease row records who holds a name until when. Taking it is a write transaction that
sees every other holder, so two racers cannot both win. Each acquisition increments the
row's fencing token; writers present the token they got, and a process whose lease was
taken over finds its token stale and stops before its next change.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, select, update

from breakglass.errors import LeaseLostError, LockHeldError
from breakglass.store.schema import insert_if_absent, leases

RUN_LEASE_PREFIX = "run:"
LOCK_LEASE_PREFIX = "lock:"


@dataclass(frozen=True)
class Lease:
    name: str
    token: int


@dataclass(frozen=True)
class LeaseHolder:
    name: str
    holder: str | None
    expires_at: datetime | None


def run_lease_name(run_id: str) -> str:
    return RUN_LEASE_PREFIX + run_id


def lock_lease_name(lock: str) -> str:
    return LOCK_LEASE_PREFIX + lock


def acquire(
    connection: Connection,
    *,
    names: list[str],
    holder: str,
    owner: str,
    now: datetime,
    ttl: float,
) -> list[Lease]:
    """Take every lease in `names` or none, raising LockHeldError naming a live holder."""
    expires = now + timedelta(seconds=ttl)
    taken: list[Lease] = []
    for name in sorted(names):
        row = connection.execute(
            select(leases).where(leases.c.name == name).with_for_update()
        ).first()
        if row is None:
            first = {
                "holder": holder,
                "owner": owner,
                "token": 1,
                "acquired_at": now,
                "expires_at": expires,
            }
            if insert_if_absent(connection, leases, {"name": name, **first}):
                taken.append(Lease(name, 1))
                continue
            # Another transaction created the row first; read it as it committed.
            row = connection.execute(
                select(leases).where(leases.c.name == name).with_for_update()
            ).one()
        live = row.expires_at is not None and row.expires_at > now and row.owner
        if live and row.holder != holder:
            raise LockHeldError(
                f"lock {name.removeprefix(LOCK_LEASE_PREFIX)} is held by run {row.holder} "
                f"until at least {row.expires_at.isoformat(timespec='seconds')}",
                hint="wait for that run (or pass --wait), or inspect it with "
                f"`breakglass runs show {row.holder}`",
            )
        token = int(row.token) + 1
        connection.execute(
            update(leases)
            .where(leases.c.name == name)
            .values(holder=holder, owner=owner, token=token, acquired_at=now, expires_at=expires)
        )
        taken.append(Lease(name, token))
    return taken


def renew(
    connection: Connection, *, held: list[Lease], owner: str, now: datetime, ttl: float
) -> None:
    """Extend leases still held by `owner` with the same tokens; raise if one was lost."""
    expires = now + timedelta(seconds=ttl)
    for lease in held:
        result = connection.execute(
            update(leases)
            .where(
                leases.c.name == lease.name, leases.c.owner == owner, leases.c.token == lease.token
            )
            .values(expires_at=expires)
        )
        if result.rowcount != 1:
            raise LeaseLostError(f"lease {lease.name} was taken over by another process")


def release(connection: Connection, *, held: list[Lease], owner: str, now: datetime) -> None:
    for lease in held:
        connection.execute(
            update(leases)
            .where(
                leases.c.name == lease.name, leases.c.owner == owner, leases.c.token == lease.token
            )
            .values(owner=None, expires_at=now)
        )


def check_fence(connection: Connection, *, lease: Lease, owner: str, now: datetime) -> None:
    """Raise LeaseLostError unless `owner` still holds `lease` with its token."""
    row = connection.execute(select(leases).where(leases.c.name == lease.name)).first()
    if row is None or row.owner != owner or row.token != lease.token:
        raise LeaseLostError(
            f"lease {lease.name} was taken over by another process; this process stops writing"
        )
    if row.expires_at is None or row.expires_at <= now:
        raise LeaseLostError(f"lease {lease.name} expired before it was renewed")


def holders(connection: Connection, *, prefix: str, now: datetime) -> list[LeaseHolder]:
    rows = connection.execute(
        select(leases.c.name, leases.c.holder, leases.c.expires_at).where(
            leases.c.name.like(prefix + "%"), leases.c.owner.is_not(None), leases.c.expires_at > now
        )
    ).all()
    return [LeaseHolder(row.name, row.holder, row.expires_at) for row in rows]


def live_run_ids(connection: Connection, *, now: datetime) -> set[str]:
    rows = holders(connection, prefix=RUN_LEASE_PREFIX, now=now)
    return {row.name.removeprefix(RUN_LEASE_PREFIX) for row in rows}


def locks_held_by(connection: Connection, *, run_id: str, now: datetime) -> list[LeaseHolder]:
    rows = holders(connection, prefix=LOCK_LEASE_PREFIX, now=now)
    return [row for row in rows if row.holder == run_id]


def extend_locks_until(
    connection: Connection, *, run_id: str, until: datetime, now: datetime
) -> None:
    """Keep a paused run's locks (for example while it awaits approval) until `until`."""
    connection.execute(
        update(leases)
        .where(
            leases.c.name.like(LOCK_LEASE_PREFIX + "%"),
            leases.c.holder == run_id,
            leases.c.expires_at > now,
        )
        .values(expires_at=until)
    )


def release_run_locks(connection: Connection, *, run_id: str, now: datetime) -> None:
    connection.execute(
        update(leases).where(leases.c.holder == run_id).values(owner=None, expires_at=now)
    )
