from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from breakglass.errors import LeaseLostError, LockHeldError
from breakglass.store import Store, leases

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def test_second_holder_rejected_naming_first(store: Store) -> None:
    with store.write() as connection:
        leases.acquire(connection, names=["lock:db"], holder="RUN-1", owner="a", now=NOW, ttl=30)
    with pytest.raises(LockHeldError, match="held by run RUN-1"), store.write() as connection:
        leases.acquire(connection, names=["lock:db"], holder="RUN-2", owner="b", now=NOW, ttl=30)


def test_expired_lease_taken_over_with_new_token(store: Store) -> None:
    with store.write() as connection:
        [first] = leases.acquire(
            connection, names=["lock:db"], holder="RUN-1", owner="a", now=NOW, ttl=30
        )
    later = NOW + timedelta(seconds=31)
    with store.write() as connection:
        [second] = leases.acquire(
            connection, names=["lock:db"], holder="RUN-2", owner="b", now=later, ttl=30
        )
    assert second.token == first.token + 1
    with pytest.raises(LeaseLostError), store.write() as connection:
        leases.check_fence(connection, lease=first, owner="a", now=later)
    with pytest.raises(LeaseLostError), store.write() as connection:
        leases.renew(connection, held=[first], owner="a", now=later, ttl=30)


def test_all_or_nothing(store: Store) -> None:
    with store.write() as connection:
        leases.acquire(connection, names=["lock:b"], holder="RUN-1", owner="a", now=NOW, ttl=30)
    with pytest.raises(LockHeldError), store.write() as connection:
        leases.acquire(
            connection, names=["lock:a", "lock:b"], holder="RUN-2", owner="b", now=NOW, ttl=30
        )
    with store.read() as connection:
        held = leases.holders(connection, prefix="lock:", now=NOW)
    assert [(h.name, h.holder) for h in held] == [("lock:b", "RUN-1")]


def test_release_frees_lock(store: Store) -> None:
    with store.write() as connection:
        held = leases.acquire(
            connection, names=["lock:a"], holder="RUN-1", owner="a", now=NOW, ttl=30
        )
        leases.release(connection, held=held, owner="a", now=NOW)
        leases.acquire(connection, names=["lock:a"], holder="RUN-2", owner="b", now=NOW, ttl=30)
