"""The incident desk: opening, acknowledging and working incidents, each change on the timeline.

Every change is written with its timeline event and its audit entry in one transaction,
so the record, the timeline and the audit log cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from breakglass.clock import Clock
from breakglass.config.incidents import Severity
from breakglass.config.model import PlatformConfig
from breakglass.errors import UserInputError
from breakglass.incidents.deadlines import Deadline, deadlines, severity_of
from breakglass.store import Store
from breakglass.store import audit as audit_repo
from breakglass.store import incidents as incident_repo
from breakglass.store.records import ActionItem, IncidentEvent, IncidentRecord

STATUSES = ("investigating", "identified", "monitoring", "resolved")
UPDATE_KINDS = ("opened", "status_changed", "notice_sent")


def record_change(
    connection: Connection,
    *,
    incident_id: str,
    kind: str,
    message: str,
    data: dict[str, Any] | None,
    actor: str,
    now: datetime,
    audit_key: bytes,
) -> IncidentEvent:
    """Write one timeline event and its audit entry in the caller's transaction."""
    event = incident_repo.add_event(
        connection,
        incident_id=incident_id,
        kind=kind,
        actor=actor,
        now=now,
        message=message,
        data=data,
    )
    audit_repo.append(
        connection,
        key=audit_key,
        at=now,
        actor=actor,
        kind=f"incident_{kind}",
        subject=incident_id,
        data={"message": message, **(data or {})},
    )
    return event


@dataclass
class IncidentView:
    """An incident with its deadlines as of `now`."""

    incident: IncidentRecord
    deadlines: list[Deadline]
    now: datetime

    def deadline_lines(self) -> list[str]:
        return [deadline.describe(self.now) for deadline in self.deadlines]


@dataclass
class IncidentDesk:
    store: Store
    clock: Clock
    actor: str
    config: PlatformConfig
    audit_key: bytes

    # -- writing ------------------------------------------------------------------------------

    def _change(
        self,
        connection: Connection,
        incident_id: str,
        kind: str,
        message: str,
        data: dict[str, Any] | None = None,
    ) -> IncidentEvent:
        return record_change(
            connection,
            incident_id=incident_id,
            kind=kind,
            message=message,
            data=data,
            actor=self.actor,
            now=self.clock.now(),
            audit_key=self.audit_key,
        )

    def _commander(self, name: str | None) -> str | None:
        if name is None or not self.config.contacts:
            return name
        if self.config.contact(name) is None:
            known = ", ".join(contact.id for contact in self.config.contacts)
            raise UserInputError(f"commander {name!r} is not a contact", hint=f"contacts: {known}")
        return name

    def open(
        self,
        *,
        title: str,
        severity: str,
        services: list[str],
        commander: str | None = None,
        source: str | None = None,
    ) -> IncidentRecord:
        level = severity_of(severity)
        if not title.strip():
            raise UserInputError(
                "an incident needs a title: say what is broken, for example 'checkout returns 500'"
            )
        commander = self._commander(commander)
        with self.store.write() as connection:
            incident_id = incident_repo.create_incident(
                connection,
                title=title.strip(),
                severity=level.value,
                services=services,
                commander=commander,
                actor=self.actor,
                now=self.clock.now(),
            )
            opened_by = f" by {source}" if source else ""
            self._change(
                connection,
                incident_id,
                "opened",
                f"{level.value} incident opened{opened_by}: {title.strip()}",
                {"severity": level.value, "services": services, "commander": commander},
            )
            return incident_repo.get_incident(connection, incident_id=incident_id)

    def acknowledge(
        self, incident_id: str, *, note: str | None = None
    ) -> tuple[IncidentRecord, bool]:
        """Acknowledge an incident; return it and whether this call was the acknowledgement."""
        with self.store.write() as connection:
            incident = incident_repo.get_incident(
                connection, incident_id=incident_id, for_update=True
            )
            if incident.acknowledged_at is not None:
                return incident, False
            now = self.clock.now()
            incident_repo.update_incident(
                connection,
                incident_id=incident_id,
                now=now,
                acknowledged_at=now,
                acknowledged_by=self.actor,
            )
            self._change(
                connection,
                incident_id,
                "acknowledged",
                f"acknowledged by {self.actor}" + (f": {note}" if note else ""),
            )
            return incident_repo.get_incident(connection, incident_id=incident_id), True

    def set_status(
        self, incident_id: str, status: str, *, note: str | None = None
    ) -> IncidentRecord:
        status = status.strip().lower()
        if status not in STATUSES:
            raise UserInputError(f"invalid status {status!r}: use {', '.join(STATUSES)}")
        if status == "resolved":
            return self.resolve(incident_id, summary=note)
        with self.store.write() as connection:
            incident = incident_repo.get_incident(
                connection, incident_id=incident_id, for_update=True
            )
            if incident.status == status:
                raise UserInputError(f"incident {incident_id} is already {status}")
            now = self.clock.now()
            values: dict[str, Any] = {"status": status}
            if status == "monitoring" and incident.mitigated_at is None:
                values["mitigated_at"] = now
            if incident.status == "resolved":
                values["resolved_at"] = None
            incident_repo.update_incident(connection, incident_id=incident_id, now=now, **values)
            verb = "reopened as" if incident.status == "resolved" else "status changed to"
            self._change(
                connection,
                incident_id,
                "status_changed",
                f"{verb} {status}" + (f": {note}" if note else ""),
                {"from": incident.status, "to": status},
            )
            return incident_repo.get_incident(connection, incident_id=incident_id)

    def resolve(self, incident_id: str, *, summary: str | None) -> IncidentRecord:
        with self.store.write() as connection:
            incident = incident_repo.get_incident(
                connection, incident_id=incident_id, for_update=True
            )
            if incident.status == "resolved":
                raise UserInputError(f"incident {incident_id} is already resolved")
            now = self.clock.now()
            values: dict[str, Any] = {
                "status": "resolved",
                "resolved_at": now,
                "summary": summary or incident.summary,
            }
            if incident.mitigated_at is None:
                values["mitigated_at"] = now
            incident_repo.update_incident(connection, incident_id=incident_id, now=now, **values)
            self._change(
                connection,
                incident_id,
                "status_changed",
                "resolved" + (f": {summary}" if summary else ""),
                {"from": incident.status, "to": "resolved"},
            )
            return incident_repo.get_incident(connection, incident_id=incident_id)

    def set_severity(
        self, incident_id: str, severity: str, *, reason: str | None = None
    ) -> IncidentRecord:
        level = severity_of(severity)
        with self.store.write() as connection:
            incident = incident_repo.get_incident(
                connection, incident_id=incident_id, for_update=True
            )
            if incident.severity == level.value:
                raise UserInputError(f"incident {incident_id} is already {level.value}")
            now = self.clock.now()
            # A new severity re-arms the clock: its targets count from now.
            incident_repo.update_incident(
                connection,
                incident_id=incident_id,
                now=now,
                severity=level.value,
                clock_started_at=now,
            )
            self._change(
                connection,
                incident_id,
                "severity_changed",
                f"severity changed from {incident.severity} to {level.value}"
                + (f": {reason}" if reason else ""),
                {"from": incident.severity, "to": level.value},
            )
            return incident_repo.get_incident(connection, incident_id=incident_id)

    def set_commander(self, incident_id: str, commander: str) -> IncidentRecord:
        name = self._commander(commander)
        with self.store.write() as connection:
            incident = incident_repo.get_incident(
                connection, incident_id=incident_id, for_update=True
            )
            if incident.commander == name:
                raise UserInputError(f"{name} is already the commander of {incident_id}")
            incident_repo.update_incident(
                connection, incident_id=incident_id, now=self.clock.now(), commander=name
            )
            previous = incident.commander or "nobody"
            self._change(
                connection,
                incident_id,
                "commander_changed",
                f"command handed from {previous} to {name}",
                {"from": incident.commander, "to": name},
            )
            return incident_repo.get_incident(connection, incident_id=incident_id)

    def note(self, incident_id: str, text: str) -> IncidentEvent:
        if not text.strip():
            raise UserInputError("a note needs text")
        with self.store.write() as connection:
            incident_repo.get_incident(connection, incident_id=incident_id)
            return self._change(connection, incident_id, "note", text.strip())

    def add_action(self, incident_id: str, text: str, *, owner: str | None, due: str | None) -> int:
        if not text.strip():
            raise UserInputError("an action item needs text")
        with self.store.write() as connection:
            incident_repo.get_incident(connection, incident_id=incident_id)
            item_id = incident_repo.add_action_item(
                connection,
                incident_id=incident_id,
                text=text.strip(),
                owner=owner,
                due=due,
                actor=self.actor,
                now=self.clock.now(),
            )
            self._change(
                connection,
                incident_id,
                "action_added",
                f"action item {item_id}: {text.strip()}",
                {"item": item_id, "owner": owner, "due": due},
            )
            return item_id

    def finish_action(self, incident_id: str, item_id: int) -> ActionItem:
        with self.store.write() as connection:
            item = incident_repo.finish_action_item(
                connection,
                incident_id=incident_id,
                item_id=item_id,
                actor=self.actor,
                now=self.clock.now(),
            )
            self._change(
                connection,
                incident_id,
                "action_done",
                f"action item {item_id} done: {item.text}",
                {"item": item_id},
            )
            return item

    def record_notice(self, incident_id: str, message: str) -> IncidentEvent:
        """Record that users were updated, which restarts the update cadence."""
        with self.store.write() as connection:
            incident_repo.get_incident(connection, incident_id=incident_id)
            return self._change(connection, incident_id, "notice_sent", message)

    # -- reading ------------------------------------------------------------------------------

    def get(self, incident_id: str) -> IncidentRecord:
        with self.store.read() as connection:
            return incident_repo.get_incident(connection, incident_id=incident_id)

    def view(self, incident: IncidentRecord) -> IncidentView:
        with self.store.read() as connection:
            history = incident_repo.events(connection, incident_id=incident.id)
        updates = [event.at for event in history if event.kind in UPDATE_KINDS]
        targets = self.config.incidents.targets(Severity(incident.severity))
        now = self.clock.now()
        return IncidentView(
            incident, deadlines(incident, targets, last_update=max(updates, default=None)), now
        )

    def list_views(self, *, include_resolved: bool = False) -> list[IncidentView]:
        with self.store.read() as connection:
            found = incident_repo.list_incidents(connection, include_resolved=include_resolved)
        # Open incidents first, most severe first, then the newest.
        found.sort(
            key=lambda item: (item.status == "resolved", item.severity, -item.opened_at.timestamp())
        )
        return [self.view(incident) for incident in found]

    def action_items(self, incident_id: str) -> list[ActionItem]:
        with self.store.read() as connection:
            return incident_repo.list_action_items(connection, incident_id=incident_id)

    def ensure_open(self, incident_id: str) -> IncidentRecord:
        incident = self.get(incident_id)
        if incident.status == "resolved":
            raise UserInputError(
                f"incident {incident_id} is resolved; runs attach only to open incidents",
                hint=f"reopen it with `breakglass incident status {incident_id} investigating`",
            )
        return incident
