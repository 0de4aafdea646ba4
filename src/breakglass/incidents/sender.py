"""The sender: delivers the notifications incidents are due, one sender at a time.

`tick` is one pass (for cron), `watch` repeats it. Only the holder of the store lease
`sender:escalation` sends, so two watchers never page twice. Each delivery is recorded
as pending before it is sent and as sent after, so a sender killed in between sends it
once more on its next pass, under the same deduplication key, and the timeline records that.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Connection

from breakglass.clock import Clock
from breakglass.config.channels import PagerDutyChannel
from breakglass.config.model import PlatformConfig
from breakglass.errors import LeaseLostError, LockHeldError, UserInputError
from breakglass.incidents.channels import ChannelError, Notification, close_pagerduty, dispatch
from breakglass.incidents.desk import UPDATE_KINDS, record_change
from breakglass.incidents.escalation import MAX_LEVEL, NOTIFY, PAGE, Due, due_notifications
from breakglass.store import Store
from breakglass.store import incidents as incident_repo
from breakglass.store import leases as lease_repo
from breakglass.store import notifications as delivery_repo
from breakglass.store.leases import Lease
from breakglass.store.records import IncidentRecord

log = logging.getLogger(__name__)

SENDER_LEASE = "sender:escalation"
# A delivery that failed on every channel this many times is given up on, loudly.
MAX_ATTEMPTS = 5


@dataclass
class TickReport:
    sent: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    idle_reason: str | None = None


@dataclass
class Sender:
    store: Store
    clock: Clock
    config: PlatformConfig
    actor: str
    audit_key: bytes
    base_dir: Path
    owner: str
    lease: Lease | None = None
    crash_hook: Callable[[str], None] = lambda point: None

    # -- the sender lease ---------------------------------------------------------------------

    def _hold_lease(self) -> str | None:
        """Take or renew the sender lease; return why not when another sender holds it."""
        now = self.clock.now()
        ttl = self.config.lease_ttl
        try:
            with self.store.write() as connection:
                if self.lease is not None:
                    lease_repo.renew(
                        connection, held=[self.lease], owner=self.owner, now=now, ttl=ttl
                    )
                    return None
        except LeaseLostError:
            self.lease = None
        try:
            with self.store.write() as connection:
                [self.lease] = lease_repo.acquire(
                    connection,
                    names=[SENDER_LEASE],
                    holder=f"sender-{self.owner[:8]}",
                    owner=self.owner,
                    now=now,
                    ttl=ttl,
                )
        except LockHeldError:
            return "another sender holds the sender lease"
        return None

    def release(self) -> None:
        if self.lease is not None:
            with self.store.write() as connection:
                lease_repo.release(
                    connection, held=[self.lease], owner=self.owner, now=self.clock.now()
                )
            self.lease = None

    # -- one pass -------------------------------------------------------------------------------

    def tick(self) -> TickReport:
        report = TickReport()
        busy = self._hold_lease()
        if busy is not None:
            report.idle_reason = busy
            return report
        with self.store.read() as connection:
            open_incidents = incident_repo.list_incidents(connection, include_resolved=False)
        # The most severe first, so a slow channel delays a P3 rather than a P0.
        open_incidents.sort(key=lambda incident: (incident.severity, incident.opened_at))
        for incident in open_incidents:
            for due in self._due(incident):
                self._send_due(incident, due, report)
        return report

    def _due(self, incident: IncidentRecord) -> list[Due]:
        with self.store.read() as connection:
            history = incident_repo.events(connection, incident_id=incident.id)
        updates = [event.at for event in history if event.kind in UPDATE_KINDS]
        return due_notifications(
            incident,
            self.config.incidents,
            self.clock.now(),
            last_update=max(updates, default=None),
        )

    def recipients(self, due: Due) -> list[str]:
        if due.commander is not None:
            return [due.commander]
        return list(self.config.incidents.escalation.get(due.level or 0, []))

    def _send_due(self, incident: IncidentRecord, due: Due, report: TickReport) -> None:
        recipients = self.recipients(due)
        if not recipients:
            self._record_once_missing(incident, due)
            return
        for contact_id in recipients:
            self.deliver(incident.id, due, contact_id, report)
        if due.kind == PAGE and due.level is not None and due.level > incident.escalation_level:
            self._raise_level(incident.id, due.level)

    def _raise_level(self, incident_id: str, level: int) -> None:
        with self.store.write() as connection:
            current = incident_repo.get_incident(
                connection, incident_id=incident_id, for_update=True
            )
            if level <= current.escalation_level:
                return
            now = self.clock.now()
            incident_repo.update_incident(
                connection, incident_id=incident_id, now=now, escalation_level=level
            )
            self._event(
                connection,
                incident_id,
                "escalated",
                f"escalated to level {level}",
                {"level": level},
            )

    def _record_once_missing(self, incident: IncidentRecord, due: Due) -> None:
        """Record once on the timeline that no contact could be notified: the chain has a gap."""
        key = f"{due.dedup_key}:nobody"
        with self.store.write() as connection:
            existing = delivery_repo.find(connection, dedup_key=key, contact_id="-")
            if existing is not None:
                return
            delivery = delivery_repo.begin(
                connection,
                incident_id=incident.id,
                dedup_key=key,
                contact_id="-",
                kind=due.kind,
                reason=due.reason,
                now=self.clock.now(),
            )
            target = "the commander" if due.commander else f"escalation level {due.level}"
            message = f"no contact to notify: {target} has no contacts configured ({due.summary})"
            delivery_repo.finish(
                connection,
                delivery_id=delivery.id,
                status=delivery_repo.FAILED,
                now=self.clock.now(),
                error=message,
            )
            self._event(
                connection,
                incident.id,
                "notification_failed",
                message,
                {"dedup_key": due.dedup_key},
            )
        log.error("incident %s: %s", incident.id, message)

    def escalate(self, incident_id: str, *, reason: str) -> tuple[int, TickReport]:
        """Raise an incident one level now and page that level, acknowledged or not.

        A failed run and `incident escalate` both come here. The page goes out at once
        rather than waiting for the watcher, whose pass skips acknowledged incidents.
        """
        with self.store.write() as connection:
            incident = incident_repo.get_incident(
                connection, incident_id=incident_id, for_update=True
            )
            if incident.status == "resolved":
                raise UserInputError(
                    f"incident {incident_id} is resolved; reopen it before escalating"
                )
            if incident.escalation_level >= MAX_LEVEL:
                raise UserInputError(
                    f"incident {incident_id} is already at level {MAX_LEVEL}, the highest",
                    hint="reach the contacts directly: `breakglass contacts` lists their phones",
                )
            level = incident.escalation_level + 1
            incident_repo.update_incident(
                connection, incident_id=incident_id, now=self.clock.now(), escalation_level=level
            )
            self._event(
                connection,
                incident_id,
                "escalated",
                f"escalated to level {level}: {reason}",
                {"level": level},
            )
        due = Due(
            # The same key as the watcher's page of this level, so it is not paged twice.
            f"{incident_id}:{level}:page",
            PAGE,
            "manual",
            f"{incident.severity} {incident_id} escalated to level {level}: {reason} ({incident.title})",
            level=level,
        )
        report = TickReport()
        recipients = self.recipients(due)
        if not recipients:
            self._record_once_missing(incident, due)
        for contact_id in recipients:
            self.deliver(incident_id, due, contact_id, report, force=True)
        return level, report

    def close_pages(self, incident_id: str, action: Literal["acknowledge", "resolve"]) -> list[str]:
        """Acknowledge or resolve on PagerDuty the pages this incident triggered there.

        Without this, PagerDuty's own escalation keeps ringing after the incident was
        acknowledged here. Returns one line per failure; each is also on the timeline.
        """
        with self.store.read() as connection:
            sent = delivery_repo.sent_pages(connection, incident_id=incident_id)
        failures: list[str] = []
        closed = 0
        for dedup_key, channel_name in sorted(set(sent)):
            channel = self.config.channels.get(channel_name)
            if not isinstance(channel, PagerDutyChannel):
                continue
            try:
                close_pagerduty(channel_name, channel, dedup_key, action, base_dir=self.base_dir)
            except ChannelError as e:
                failures.append(e.message)
                continue
            closed += 1
        if closed or failures:
            with self.store.write() as connection:
                message = f"PagerDuty: {action} sent for {closed} page(s)"
                if failures:
                    message += f"; failed: {'; '.join(failures)}"
                self._event(
                    connection, incident_id, f"pagerduty_{action}", message, {"closed": closed}
                )
        return failures

    def notify_commander(
        self, incident_id: str, *, dedup_key: str, reason: str, summary: str
    ) -> TickReport:
        """Tell the commander (or level 1 when there is none) something they must act on."""
        with self.store.read() as connection:
            incident = incident_repo.get_incident(connection, incident_id=incident_id)
        due = Due(
            dedup_key,
            NOTIFY,
            reason,
            f"{incident.id}: {summary}",
            level=None if incident.commander else 1,
            commander=incident.commander,
        )
        report = TickReport()
        recipients = self.recipients(due)
        if not recipients:
            self._record_once_missing(incident, due)
        for contact_id in recipients:
            self.deliver(incident_id, due, contact_id, report)
        return report

    # -- one delivery ---------------------------------------------------------------------------

    def deliver(
        self,
        incident_id: str,
        due: Due,
        contact_id: str,
        report: TickReport,
        *,
        force: bool = False,
        body: str | None = None,
    ) -> None:
        label = f"{due.dedup_key} to {contact_id}"
        with self.store.write() as connection:
            existing = delivery_repo.find(
                connection, dedup_key=due.dedup_key, contact_id=contact_id
            )
            if existing is not None and existing.status in (
                delivery_repo.SENT,
                delivery_repo.SKIPPED,
            ):
                return
            if (
                existing is not None
                and existing.status == delivery_repo.FAILED
                and existing.attempts >= MAX_ATTEMPTS
            ):
                return
            resent = existing is not None and existing.status == delivery_repo.PENDING
            delivery = delivery_repo.begin(
                connection,
                incident_id=incident_id,
                dedup_key=due.dedup_key,
                contact_id=contact_id,
                kind=due.kind,
                reason=due.reason,
                now=self.clock.now(),
            )
        self.crash_hook("notification_pending")
        with self.store.read() as connection:
            incident = incident_repo.get_incident(connection, incident_id=incident_id)
        # Checked right before sending: an acknowledgement that lands after the pass
        # began must still stop the page.
        if due.kind == PAGE and incident.acknowledged_at is not None and not force:
            with self.store.write() as connection:
                delivery_repo.finish(
                    connection,
                    delivery_id=delivery.id,
                    status=delivery_repo.SKIPPED,
                    now=self.clock.now(),
                    error="acknowledged before sending",
                )
            report.skipped.append(label)
            return
        contact = self.config.contact(contact_id)
        if contact is None:
            self._fail(
                incident_id,
                delivery.id,
                due,
                contact_id,
                f"contact {contact_id} is not in the config",
                report,
            )
            return
        notification = Notification(
            dedup_key=due.dedup_key,
            kind="page" if due.kind == PAGE else "notify",
            incident_id=incident.id,
            title=incident.title,
            severity=incident.severity,
            status=incident.status,
            level=due.level,
            summary=due.summary,
            details={**self._details(incident), **({"message": body} if body else {})},
            resent=resent,
        )
        failures: list[str] = []

        def on_attempt(channel: str, detail: str | None, error: str | None) -> None:
            if error is not None:
                failures.append(f"{channel}: {error}")

        try:
            channel, detail = dispatch(
                self.config.channels,
                contact,
                notification,
                base_dir=self.base_dir,
                on_attempt=on_attempt,
            )
        except ChannelError as e:
            self._fail(incident_id, delivery.id, due, contact_id, e.message, report)
            return
        self.crash_hook("notification_sent")
        with self.store.write() as connection:
            delivery_repo.finish(
                connection,
                delivery_id=delivery.id,
                status=delivery_repo.SENT,
                now=self.clock.now(),
                channel=channel,
                detail=detail,
            )
            again = " again after an interrupted send (same deduplication key)" if resent else ""
            earlier = f" after failures on {'; '.join(failures)}" if failures else ""
            self._event(
                connection,
                incident_id,
                "notification",
                f"{due.kind} sent{again} to {contact_id} via {channel}{earlier}: {due.summary}",
                {
                    "dedup_key": due.dedup_key,
                    "contact": contact_id,
                    "channel": channel,
                    "detail": detail,
                    "reason": due.reason,
                    "resent": resent,
                    "failed_channels": failures,
                },
            )
        report.sent.append(label)

    def _fail(
        self,
        incident_id: str,
        delivery_id: int,
        due: Due,
        contact_id: str,
        error: str,
        report: TickReport,
    ) -> None:
        with self.store.write() as connection:
            delivery_repo.finish(
                connection,
                delivery_id=delivery_id,
                status=delivery_repo.FAILED,
                now=self.clock.now(),
                error=error,
            )
            self._event(
                connection,
                incident_id,
                "notification_failed",
                f"{due.kind} to {contact_id} failed on every channel, will retry on the next pass: {error}",
                {"dedup_key": due.dedup_key, "contact": contact_id, "reason": due.reason},
            )
        log.error("incident %s: %s to %s failed: %s", incident_id, due.kind, contact_id, error)
        report.failed.append(f"{due.dedup_key} to {contact_id}")

    def _details(self, incident: IncidentRecord) -> dict[str, str]:
        from breakglass.config.incidents import Severity
        from breakglass.incidents.deadlines import deadlines

        targets = self.config.incidents.targets(Severity(incident.severity))
        now = self.clock.now()
        lines = {deadline.name: deadline.describe(now) for deadline in deadlines(incident, targets)}
        lines["services"] = ", ".join(incident.services) or "none named"
        if incident.commander:
            lines["commander"] = incident.commander
        return lines

    def _event(
        self,
        connection: Connection,
        incident_id: str,
        kind: str,
        message: str,
        data: dict[str, Any],
    ) -> None:
        record_change(
            connection,
            incident_id=incident_id,
            kind=kind,
            message=message,
            data=data,
            actor=self.actor,
            now=self.clock.now(),
            audit_key=self.audit_key,
        )
