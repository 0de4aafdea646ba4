"""An incident's timeline: its own events joined with the journals of the runs attached to it.

Runs are not copied onto the incident: the journal stays the one record of what a run did,
and the timeline reads it, so the timeline and `runs show` can never disagree.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from breakglass.store import Store
from breakglass.store import incidents as incident_repo
from breakglass.store import runs as run_repo
from breakglass.store.records import EntryKind, JournalEntry

# Journal entries worth a line on an incident's timeline; the rest (step_started,
# run_started) add nothing a reader of the timeline needs.
SHOWN = {
    EntryKind.RUN_CREATED,
    EntryKind.STEP_ENDED,
    EntryKind.STEP_SKIPPED,
    EntryKind.APPROVAL_REQUESTED,
    EntryKind.APPROVAL_GRANTED,
    EntryKind.APPROVAL_REJECTED,
    EntryKind.APPROVAL_VOIDED,
    EntryKind.DECISION_NEEDED,
    EntryKind.OPERATOR_DECISION,
    EntryKind.CANCEL_REQUESTED,
    EntryKind.RUN_RESUMED,
    EntryKind.RUN_ENDED,
}
EXPORT_FIELDS = ("at", "source", "kind", "actor", "message")


class TimelineItem(BaseModel):
    at: datetime
    source: str = Field(description="The incident id, or the id of the run that wrote the entry.")
    kind: str
    actor: str
    message: str
    data: dict[str, Any] = Field(default_factory=dict)


def describe_entry(entry: JournalEntry, runbook: str) -> str:
    """Say in one line what a journal entry means on an incident's timeline."""
    step = entry.step_id or ""
    phase = f" ({entry.phase})" if entry.phase and entry.phase != "main" else ""
    if entry.kind == EntryKind.RUN_CREATED:
        return f"run {entry.run_id} of {runbook} started"
    if entry.kind == EntryKind.STEP_ENDED:
        took = f" in {entry.duration:.1f} s" if entry.duration is not None else ""
        why = f": {entry.message}" if entry.message else ""
        return f"step {step}{phase} {entry.status}{took}{why}"
    if entry.kind == EntryKind.RUN_ENDED:
        return (
            f"run {entry.run_id} of {runbook} ended {entry.status}: {entry.message or ''}".rstrip(
                ": "
            )
        )
    label = entry.kind.value.replace("_", " ")
    subject = f" {step}{phase}" if step else ""
    return f"{label}{subject}" + (f": {entry.message}" if entry.message else "")


def build_timeline(store: Store, incident_id: str) -> list[TimelineItem]:
    with store.read() as connection:
        events = incident_repo.events(connection, incident_id=incident_id)
        items = [
            TimelineItem(
                at=event.at,
                source=incident_id,
                kind=event.kind,
                actor=event.actor,
                message=event.message or "",
                data=event.data,
            )
            for event in events
        ]
        for run_id in incident_repo.run_ids_of(connection, incident_id=incident_id):
            runbook = run_repo.runbook_name(connection, run_id=run_id)
            for entry in run_repo.entries(connection, run_id=run_id):
                if entry.kind not in SHOWN:
                    continue
                data = {
                    "step": entry.step_id,
                    "phase": entry.phase,
                    "status": entry.status,
                    "duration": entry.duration,
                }
                items.append(
                    TimelineItem(
                        at=entry.at,
                        source=run_id,
                        kind=entry.kind.value,
                        actor=entry.actor,
                        message=describe_entry(entry, runbook),
                        data={k: v for k, v in data.items() if v is not None},
                    )
                )
    items.sort(key=lambda item: item.at)
    return items


def export_jsonl(items: Iterable[TimelineItem]) -> str:
    return "".join(item.model_dump_json() + "\n" for item in items)


def export_csv(items: Iterable[TimelineItem]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([*EXPORT_FIELDS, "data"])
    for item in items:
        row = item.model_dump(mode="json")
        writer.writerow(
            [*(row[name] for name in EXPORT_FIELDS), json.dumps(row["data"], sort_keys=True)]
        )
    return buffer.getvalue()
