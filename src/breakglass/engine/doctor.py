"""`breakglass doctor`: what will let the team down at 3 a.m. unless someone fixes it first.

Each finding has a level: `error` (broken: a lint failure, a target that cannot be
reached), `overdue` (a drill or review is late) or `info` (where state lives). Any error or
overdue finding makes the command exit 1.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

from breakglass.config.paths import state_dir, state_url
from breakglass.config.redaction import REDACTOR
from breakglass.engine.drills import shared_targets, staging_config
from breakglass.engine.workspace import Workspace
from breakglass.runbooks.lint import lint_loaded
from breakglass.runbooks.loading import RunbookInvalidError, discover, load_runbook
from breakglass.store import drills as drill_repo
from breakglass.store import runs as run_repo
from breakglass.store.drills import DrillRecord

CONTACT_REVIEW_DAYS = 31
RUNBOOK_REVIEW_DAYS = 91
COMPLETE_REVIEW_DAYS = 365
REACH_TIMEOUT_SECONDS = 3.0


@dataclass(frozen=True)
class Finding:
    """One thing doctor reports, with what to do about it."""

    level: str
    area: str
    subject: str
    message: str


def examine(workspace: Workspace, *, check_targets: bool = True) -> list[Finding]:
    """Collect every finding; nothing is changed."""
    now = workspace.clock.now()
    findings = [
        Finding("info", "paths", "config", str(workspace.config.source)),
        Finding(
            "info",
            "paths",
            "state directory",
            str(state_dir(workspace.config.model, workspace.config.base_dir)),
        ),
        Finding(
            "info",
            "paths",
            "state store",
            REDACTOR.redact(state_url(workspace.config.model, workspace.config.base_dir)),
        ),
    ]
    findings += _drills(workspace, now)
    findings += _contacts(workspace, now.date())
    findings += _runbooks(workspace, now)
    if check_targets:
        findings += _targets(workspace)
    return findings


def failing(findings: list[Finding]) -> bool:
    return any(finding.level in ("error", "overdue") for finding in findings)


_ENDED = {"succeeded", "failed", "rolled_back", "halted", "interrupted"}


@dataclass(frozen=True)
class DrillStatus:
    """One scheduled drill with its last successful run and the time it is next due."""

    name: str
    runbook: str | None
    every: float
    last_run: datetime | None
    last_run_id: str | None
    next_due: datetime | None
    # The newest attempt when it did not succeed, so a failing drill is visible.
    failed_attempt: DrillRecord | None = None

    def overdue(self, now: datetime) -> bool:
        return self.next_due is None or self.next_due <= now


def drill_status(workspace: Workspace) -> list[DrillStatus]:
    """Return every scheduled drill with its last successful run, in schedule order."""
    with workspace.store.read() as connection:
        records = drill_repo.list_drills(connection)
    found = []
    for item in workspace.config.model.drills.schedule:
        attempts = [record for record in records if record.name == item.name]
        done = [record for record in attempts if record.result == "succeeded"]
        last = done[0] if done else None
        # A paused attempt is not a failure: it only does not count yet.
        ended = [record for record in attempts if record.result in _ENDED]
        newest = ended[0] if ended else None
        every = float(item.every)
        found.append(
            DrillStatus(
                name=item.name,
                runbook=item.runbook,
                every=every,
                last_run=last.finished_at if last else None,
                last_run_id=last.run_id if last else None,
                next_due=last.finished_at + timedelta(seconds=every) if last else None,
                failed_attempt=newest if newest is not None and newest is not last else None,
            )
        )
    return found


def _drills(workspace: Workspace, now: datetime) -> list[Finding]:
    found = []
    staging, problem = staging_config(workspace)
    if problem is not None:
        found.append(Finding("error", "drills", "staging_config", problem))
    elif staging is not None:
        found += _staging_targets(workspace, staging)
    for drill in drill_status(workspace):
        attempt = drill.failed_attempt
        if attempt is not None:
            found.append(
                Finding(
                    "error",
                    "drills",
                    drill.name,
                    f"the last attempt, {attempt.finished_at.date().isoformat()} "
                    f"({attempt.run_id}), ended {attempt.result}",
                )
            )
        if drill.last_run is None:
            found.append(
                Finding(
                    "overdue",
                    "drills",
                    drill.name,
                    f"never run; it is due every {drill.every / 86400:g} days",
                )
            )
        elif drill.overdue(now):
            assert drill.next_due is not None
            found.append(
                Finding(
                    "overdue",
                    "drills",
                    drill.name,
                    f"last run {drill.last_run.date().isoformat()} ({drill.last_run_id}); "
                    f"overdue since {drill.next_due.date().isoformat()}",
                )
            )
    return found


def _staging_targets(workspace: Workspace, path: Path) -> list[Finding]:
    """Name every target the staging config shares with the live one, as `drill run` would."""
    from breakglass.errors import BreakglassError

    try:
        staging = Workspace.load(config_path=str(path), actor=workspace.actor)
    except BreakglassError as e:
        return [Finding("error", "drills", "staging_config", f"{path} is invalid: {e.message}")]
    return [
        Finding("error", "drills", "staging_config", f"shares the live {target}")
        for target in shared_targets(workspace, staging)
    ]


def _contacts(workspace: Workspace, today: date) -> list[Finding]:
    found = []
    for contact in workspace.config.model.contacts:
        if contact.reviewed is None:
            found.append(
                Finding(
                    "overdue",
                    "contacts",
                    contact.id,
                    "never reviewed; add reviewed: YYYY-MM-DD after checking it",
                )
            )
        elif today - contact.reviewed > timedelta(days=CONTACT_REVIEW_DAYS):
            found.append(
                Finding(
                    "overdue",
                    "contacts",
                    contact.id,
                    f"last reviewed {contact.reviewed.isoformat()}, over a month ago",
                )
            )
    return found


def _runbooks(workspace: Workspace, now: datetime) -> list[Finding]:
    found = []
    today = now.date()
    with workspace.store.read() as connection:
        runs = run_repo.list_runs(connection, now=now, limit=10000)
    last_incident: dict[str, date] = {}
    for run in runs:
        if run.incident_id and run.runbook not in last_incident:
            last_incident[run.runbook] = run.created_at.date()
    reviewed_dates = []
    for name, source in sorted(discover(workspace.config).items()):
        try:
            loaded = load_runbook(source.path)
        except RunbookInvalidError as e:
            found.append(Finding("error", "runbooks", name, f"does not load: {e}"))
            continue
        for item in lint_loaded(loaded, workspace.config):
            found.append(Finding("error", "runbooks", name, f"lint: {item}"))
        reviewed = loaded.runbook.metadata.reviewed
        reviewed_dates.append(reviewed)
        if reviewed is None:
            found.append(Finding("overdue", "runbooks", name, "has no metadata.reviewed date"))
            continue
        if today - reviewed > timedelta(days=RUNBOOK_REVIEW_DAYS):
            found.append(
                Finding(
                    "overdue",
                    "runbooks",
                    name,
                    f"last reviewed {reviewed.isoformat()}, over a quarter ago",
                )
            )
        used = last_incident.get(name)
        if used is not None and used > reviewed:
            found.append(
                Finding(
                    "overdue",
                    "runbooks",
                    name,
                    f"used in an incident on {used.isoformat()}, after its last review ({reviewed.isoformat()})",
                )
            )
    if reviewed_dates and (
        None in reviewed_dates
        or today - min(d for d in reviewed_dates if d is not None)
        > timedelta(days=COMPLETE_REVIEW_DAYS)
    ):
        found.append(
            Finding(
                "overdue",
                "runbooks",
                "all runbooks",
                "no complete review of every runbook within a year",
            )
        )
    return found


def _targets(workspace: Workspace) -> list[Finding]:
    model = workspace.config.model
    targets: list[tuple[str, str, int]] = []
    for name, db in model.databases.items():
        if not db.host.startswith("/"):
            targets.append((f"database {name}", db.host, db.port))
    if model.kubernetes is not None and model.kubernetes.server:
        parts = urlsplit(model.kubernetes.server)
        if parts.hostname:
            targets.append(
                (
                    "Kubernetes API server",
                    parts.hostname,
                    parts.port or (443 if parts.scheme == "https" else 80),
                )
            )
    urls = [(f"health check {check.name}", str(check.url)) for check in model.health.checks]
    if model.aws is not None and model.aws.endpoint_url:
        urls.append(("AWS endpoint", model.aws.endpoint_url))
    for label, url in urls:
        parts = urlsplit(url)
        if parts.hostname:
            targets.append(
                (
                    label,
                    parts.hostname,
                    parts.port or (443 if parts.scheme == "https" else 80),
                )
            )
    found = []
    for label, host, port in targets:
        try:
            with socket.create_connection((host, port), timeout=REACH_TIMEOUT_SECONDS):
                pass
        except OSError as e:
            found.append(
                Finding(
                    "error",
                    "targets",
                    label,
                    f"{host}:{port} cannot be reached within {REACH_TIMEOUT_SECONDS:g} s ({e.strerror or e})",
                )
            )
    return found
