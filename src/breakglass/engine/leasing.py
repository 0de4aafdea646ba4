"""Keeping a run's leases alive from a background thread, also during long steps.

Leases live 30 s and are renewed every 10 s, so a process that dies frees its run and
its locks within 30 s, and two missed renewals are tolerated before that happens.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from datetime import datetime

from breakglass.errors import LeaseLostError, StoreError
from breakglass.store import Store
from breakglass.store import leases as lease_repo
from breakglass.store.leases import Lease

log = logging.getLogger(__name__)

LEASE_TTL_SECONDS = 30.0
RENEW_EVERY_SECONDS = 10.0


def new_owner_token() -> str:
    return uuid.uuid4().hex


class LeaseKeeper:
    """Renews a set of leases until stopped; records the loss if renewal fails."""

    def __init__(
        self,
        store: Store,
        *,
        owner: str,
        held: list[Lease],
        now: Callable[[], datetime],
        ttl: float = LEASE_TTL_SECONDS,
        every: float = RENEW_EVERY_SECONDS,
    ) -> None:
        self.store = store
        self.owner = owner
        self.held = held
        self.now = now
        self.ttl = ttl
        self.every = every
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="lease-keeper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            try:
                with self.store.write() as connection:
                    lease_repo.renew(
                        connection, held=self.held, owner=self.owner, now=self.now(), ttl=self.ttl
                    )
            except LeaseLostError as e:
                log.error("%s; this process will stop before its next change", e)
                self.lost.set()
                return
            except StoreError as e:
                # A busy or briefly unreachable store: the lease survives until its TTL,
                # so the next renewal can still save it.
                log.warning("lease renewal failed (%s); will retry in %gs", e, self.every)
