"""Which notifications an incident is due, at a given moment; a pure function of time.

- An unacknowledged incident pages the levels its severity pages on open (P0: levels 1 and
  2, others: level 1), then one more level each time its response target lapses again,
  up to level 4. An acknowledgement stops all paging.
- A breached resolution target notifies (does not page) the next level, once.
- When a status update is due, the commander is reminded, once per update window.

Each notification has a deduplication key of incident, level (or recipient) and kind, so
a sender that restarts sends each one at most once more, under the same key.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from breakglass.config.incidents import IncidentSettings, Severity
from breakglass.incidents.deadlines import humanize
from breakglass.store.records import IncidentRecord

MAX_LEVEL = 4
PAGE = "page"
NOTIFY = "notify"


@dataclass(frozen=True)
class Due:
    """One notification an incident is due: to a level of the chain, or to its commander."""

    dedup_key: str
    kind: str
    reason: str
    summary: str
    level: int | None = None
    commander: str | None = None


def reached_level(incident: IncidentRecord, settings: IncidentSettings, now: datetime) -> int:
    """Return the highest escalation level an unacknowledged incident has reached by `now`."""
    severity = Severity(incident.severity)
    targets = settings.targets(severity)
    first = max(settings.page_on_open.get(severity, [1]))
    lapsed = (now - incident.clock_started_at).total_seconds() / targets.response
    return min(MAX_LEVEL, max(first + math.floor(lapsed), incident.escalation_level, first))


def due_notifications(
    incident: IncidentRecord,
    settings: IncidentSettings,
    now: datetime,
    *,
    last_update: datetime | None = None,
) -> list[Due]:
    if incident.status == "resolved" or incident.resolved_at is not None:
        return []
    severity = Severity(incident.severity)
    targets = settings.targets(severity)
    found: list[Due] = []
    if incident.acknowledged_at is None:
        opening = settings.page_on_open.get(severity, [1])
        reached = reached_level(incident, settings, now)
        levels = sorted({*opening, *range(max(opening) + 1, reached + 1)})
        for level in levels:
            why = (
                "incident opened"
                if level in opening
                else f"not acknowledged within {humanize(targets.response)}"
            )
            found.append(
                Due(
                    f"{incident.id}:{level}:page",
                    PAGE,
                    "escalation",
                    f"{incident.severity} {incident.id} needs a response: {incident.title} ({why})",
                    level=level,
                )
            )
    resolution_due = incident.clock_started_at + timedelta(seconds=targets.resolution)
    if now > resolution_due:
        level = min(MAX_LEVEL, max(incident.escalation_level, 1) + 1)
        found.append(
            Due(
                f"{incident.id}:{level}:resolution_breach",
                NOTIFY,
                "resolution_breach",
                f"{incident.severity} {incident.id} missed its resolution target of {humanize(targets.resolution)}: {incident.title}",
                level=level,
            )
        )
    since = max(last_update or incident.opened_at, incident.opened_at)
    update_due = since + timedelta(seconds=targets.update_every)
    if now >= update_due:
        # The commander is reminded; an incident without one reminds level 1.
        who = "commander" if incident.commander else "1"
        found.append(
            Due(
                f"{incident.id}:{who}:update_due:{update_due.isoformat(timespec='seconds')}",
                NOTIFY,
                "update_due",
                f"a status update on {incident.id} was due at {update_due.isoformat(timespec='minutes')}: {incident.title}",
                level=None if incident.commander else 1,
                commander=incident.commander,
            )
        )
    return found
