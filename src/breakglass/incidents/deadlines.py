"""Deadlines of an incident, computed from its severity's targets and shown on every view.

The clock starts when the incident opens and starts again when its severity changes, so
a P2 raised to P0 gets the P0 targets counted from the moment it was raised.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from breakglass.config.incidents import Severity, SeverityTargets
from breakglass.errors import UserInputError
from breakglass.store.records import IncidentRecord


def humanize(seconds: float) -> str:
    """Format a span for people: `45 s`, `4 min`, `2 h 5 min`, `3 d 2 h`."""
    seconds = abs(seconds)
    if seconds < 60:
        return f"{int(seconds)} s"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


@dataclass(frozen=True)
class Deadline:
    """One target of an incident: when it is due and when, if ever, it was met."""

    name: str
    due: datetime
    met_at: datetime | None
    verb: str

    def breached(self, now: datetime) -> bool:
        moment = self.met_at or now
        return moment > self.due

    def describe(self, now: datetime) -> str:
        if self.met_at is not None:
            taken = ""
            if self.met_at > self.due:
                taken = f", {humanize((self.met_at - self.due).total_seconds())} after the {self.name} target"
            return f"{self.verb} at {self.met_at.isoformat(timespec='minutes')}{taken}"
        left = (self.due - now).total_seconds()
        if left >= 0:
            return f"{self.name} due in {humanize(left)}"
        return f"{self.name} target breached {humanize(left)} ago"


def deadlines(
    incident: IncidentRecord, targets: SeverityTargets, *, last_update: datetime | None = None
) -> list[Deadline]:
    """Return the response and resolution deadlines, and the next status update while open."""
    start = incident.clock_started_at
    # Resolving an incident ends its response clock too, acknowledged or not.
    responded, verb = incident.acknowledged_at, "acknowledged"
    if responded is None and incident.resolved_at is not None:
        responded, verb = incident.resolved_at, "resolved without an acknowledgement"
    found = [
        Deadline("response", start + timedelta(seconds=targets.response), responded, verb),
        Deadline(
            "resolution",
            start + timedelta(seconds=targets.resolution),
            incident.resolved_at,
            "resolved",
        ),
    ]
    if incident.resolved_at is None:
        since = max(last_update or incident.opened_at, incident.opened_at)
        found.append(
            Deadline(
                "next update", since + timedelta(seconds=targets.update_every), None, "updated"
            )
        )
    return found


def severity_of(text: str) -> Severity:
    try:
        return Severity(text.upper())
    except ValueError:
        raise UserInputError(f"invalid severity {text!r}: use P0, P1, P2 or P3") from None
