"""One stream of run events feeding the live display and, later, the web page and notifications.

Every journal entry a run writes is published here as it is committed; `progress`
events carry transient output (a step's message) that the journal does not keep.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Event:
    kind: str
    run_id: str
    at: datetime
    step_id: str | None = None
    phase: str | None = None
    status: str | None = None
    message: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


Subscriber = Callable[[Event], None]


class EventBus:
    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []
        self._lock = threading.Lock()

    def subscribe(self, subscriber: Subscriber) -> None:
        with self._lock:
            self._subscribers.append(subscriber)

    def publish(self, event: Event) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            # A broken display must not stop a rollback half-way.
            try:
                subscriber(event)
            except Exception:
                log.exception("event subscriber failed on %s; continuing the run", event.kind)
