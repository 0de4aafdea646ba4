from __future__ import annotations

import threading
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


def race_for(store: Store, name: str) -> list[str]:
    """Start two writers at the same instant on one lock name; return their outcomes."""
    barrier = threading.Barrier(2)
    results: list[str] = []

    def contend(holder: str) -> None:
        barrier.wait()
        try:
            with store.write() as connection:
                leases.acquire(
                    connection, names=[name], holder=holder, owner=holder, now=NOW, ttl=30
                )
            results.append("won")
        except LockHeldError:
            results.append("held")

    threads = [threading.Thread(target=contend, args=(f"RUN-{index}",)) for index in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return sorted(results)


def test_concurrent_first_acquire_one_winner(store: Store) -> None:
    """Writers racing for a lock not taken before: exactly one gets it."""
    for round_number in range(10):
        assert race_for(store, f"lock:race-{round_number}") == ["held", "won"], (
            f"round {round_number}"
        )
