"""The sandbox's notion of time: an injected monotonic clock, and wall time derived from it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta


class SandboxClock:
    """Monotonic seconds from the injected callable, with timestamps that follow it.

    Wall time starts at the host's time when the sandbox is created and then advances only as
    the injected clock does, so that `creationTimestamp` and condition times agree with the
    durations a test sets with a fake clock.
    """

    def __init__(self, monotonic: Callable[[], float]) -> None:
        self._monotonic = monotonic
        self._origin = monotonic()
        self._wall_origin = datetime.now(UTC).replace(microsecond=0)

    def monotonic(self) -> float:
        return self._monotonic()

    def now(self) -> datetime:
        return self._wall_origin + timedelta(seconds=self._monotonic() - self._origin)

    def timestamp(self) -> str:
        """Return the current time in the RFC 3339 form of `metav1.Time`, in whole seconds."""
        return self.now().strftime("%Y-%m-%dT%H:%M:%SZ")
