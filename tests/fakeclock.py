"""A clock for tests that moves only when told, so hours of incident time pass in milliseconds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class ManualClock:
    def __init__(self, start: datetime | None = None) -> None:
        self.current = start or datetime(2026, 12, 4, 3, 0, tzinfo=UTC)
        self.elapsed = 0.0

    def now(self) -> datetime:
        return self.current

    def monotonic(self) -> float:
        return self.elapsed

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)

    def advance(self, seconds: float = 0, *, minutes: float = 0, hours: float = 0) -> None:
        step = seconds + minutes * 60 + hours * 3600
        self.current += timedelta(seconds=step)
        self.elapsed += step
