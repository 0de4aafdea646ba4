"""The internal alert, the user notice and the post-mortem draft, rendered from an incident.

The templates ship in `incidents/templates/`. A file of the same name in the `templates/`
directory next to the platform config overrides the shipped one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from jinja2 import (
    ChoiceLoader,
    FileSystemLoader,
    StrictUndefined,
    TemplateError,
    TemplateSyntaxError,
)
from jinja2.sandbox import SandboxedEnvironment

from breakglass.config.incidents import Severity
from breakglass.errors import TargetUnreachableError, UserInputError
from breakglass.incidents.deadlines import deadlines, humanize
from breakglass.incidents.desk import UPDATE_KINDS, IncidentDesk
from breakglass.incidents.timeline import TimelineItem, build_timeline
from breakglass.store import runs as run_repo
from breakglass.store.records import EntryKind, IncidentRecord

SHIPPED = Path(__file__).parent / "templates"
TEMPLATES = {"alert": "alert.md.j2", "notice": "notice.md.j2", "postmortem": "postmortem.md.j2"}
# Timeline kinds that count as actions taken, for the alert.
ACTION_KINDS = {
    "status_changed",
    "severity_changed",
    "commander_changed",
    "escalated",
    "note",
    "step_ended",
    "run_ended",
}


class CommsTemplateError(UserInputError):
    """A communication template cannot be read or rendered."""


def _timestamp(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value is not None else ""


@dataclass
class Renderer:
    desk: IncidentDesk
    config_dir: Path

    def environment(self) -> SandboxedEnvironment:
        overrides = self.config_dir / "templates"
        loader = ChoiceLoader([FileSystemLoader(str(overrides)), FileSystemLoader(str(SHIPPED))])
        env = SandboxedEnvironment(
            loader=loader,
            undefined=StrictUndefined,
            autoescape=False,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        env.filters["timestamp"] = _timestamp
        return env

    def source_of(self, name: str) -> Path:
        override = self.config_dir / "templates" / TEMPLATES[name]
        return override if override.is_file() else SHIPPED / TEMPLATES[name]

    def render(self, name: str, incident_id: str) -> str:
        context = self.context(self.desk.get(incident_id))
        env = self.environment()
        source = self.source_of(name)
        try:
            return env.get_template(TEMPLATES[name]).render(**context).strip() + "\n"
        except TemplateSyntaxError as e:
            raise CommsTemplateError(
                f"template {source}:{e.lineno}: {e.message}",
                hint="fix the template, or delete it to use the shipped one",
            ) from e
        except TemplateError as e:
            line = _failing_line(e, source)
            where = f"{source}:{line}" if line else str(source)
            raise CommsTemplateError(
                f"template {where}: {e}",
                hint="the template reads a value the incident does not have",
            ) from e

    def context(self, incident: IncidentRecord) -> dict[str, Any]:
        now = self.desk.clock.now()
        timeline = build_timeline(self.desk.store, incident.id)
        targets = self.desk.config.incidents.targets(Severity(incident.severity))
        updates = [
            item.at for item in timeline if item.source == incident.id and item.kind in UPDATE_KINDS
        ]
        last_update = max(updates, default=incident.opened_at)
        return {
            "incident": incident,
            "now": now,
            "age": humanize((now - incident.opened_at).total_seconds()),
            "deadlines": [
                deadline.describe(now)
                for deadline in deadlines(incident, targets, last_update=last_update)
            ],
            "next_update": last_update + timedelta(seconds=targets.update_every),
            # A notice is itself an update, so the one after it is a full cadence away.
            "update_after_notice": now + timedelta(seconds=targets.update_every),
            "timeline": timeline,
            "actions_taken": [item for item in timeline if item.kind in ACTION_KINDS],
            "runs": self._runs(incident, timeline),
            "action_items": self.desk.action_items(incident.id),
            "durations": {
                "acknowledge": _span(incident.opened_at, incident.acknowledged_at),
                "mitigate": _span(incident.opened_at, incident.mitigated_at),
                "resolve": _span(incident.opened_at, incident.resolved_at),
            },
        }

    def _runs(self, incident: IncidentRecord, timeline: list[TimelineItem]) -> list[dict[str, Any]]:
        run_ids = sorted({item.source for item in timeline if item.source != incident.id})
        rows = []
        with self.desk.store.read() as connection:
            for run_id in run_ids:
                record = run_repo.get_run(connection, run_id=run_id, now=self.desk.clock.now())
                entries = run_repo.entries(connection, run_id=run_id)
                ended = [entry for entry in entries if entry.kind == EntryKind.STEP_ENDED]
                succeeded = sum(1 for entry in ended if entry.status == "succeeded")
                end = record.ended_at or (entries[-1].at if entries else record.created_at)
                rows.append(
                    {
                        "id": record.id,
                        "runbook": record.runbook,
                        "state": record.state.value,
                        "created_at": record.created_at,
                        "duration": humanize((end - record.created_at).total_seconds()),
                        "steps": f"{succeeded} of {len(ended)} step runs succeeded",
                    }
                )
        return rows


def _span(start: datetime, end: datetime | None) -> str | None:
    return humanize((end - start).total_seconds()) if end is not None else None


def _failing_line(error: BaseException, source: Path) -> int | None:
    """Find the template line a render error came from, in the traceback Jinja rewrites."""
    traceback = error.__traceback__
    line = None
    while traceback is not None:
        if traceback.tb_frame.f_code.co_filename == str(source):
            line = traceback.tb_lineno
        traceback = traceback.tb_next
    return line


STATUS_PAGE_TIMEOUT_SECONDS = 10.0


def post_status_page(url: str, incident: IncidentRecord, text: str) -> str:
    """POST the user notice as JSON to a status-page webhook; return the response status."""
    import httpx

    if not url.startswith(("http://", "https://")):
        raise UserInputError(
            f"invalid status-page URL {url!r}: it must start with http:// or https://"
        )
    payload = {
        "incident": incident.id,
        "status": incident.status,
        "title": incident.title,
        "body": text,
    }
    try:
        response = httpx.post(url, json=payload, timeout=STATUS_PAGE_TIMEOUT_SECONDS)
    except httpx.HTTPError as e:
        raise TargetUnreachableError(f"status page {url} did not accept the notice: {e}") from e
    if response.status_code >= 400:
        raise TargetUnreachableError(
            f"status page {url} rejected the notice with HTTP {response.status_code}: {response.text[:300]}"
        )
    return f"HTTP {response.status_code}"
