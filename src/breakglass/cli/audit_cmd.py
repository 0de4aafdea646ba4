"""`breakglass audit verify|head|export`."""

from __future__ import annotations

import csv
import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, TextIO

import typer

from breakglass.cli import state as cli_state
from breakglass.cli.options import OutputOption
from breakglass.cli.output import OutputFormat, print_json
from breakglass.errors import ExitCode, UserInputError
from breakglass.store import audit as audit_repo
from breakglass.store.audit import Head
from breakglass.store.records import AuditEntry

app = typer.Typer(help="Verify and export the hash-chained audit log.", no_args_is_help=True)


class ExportFormat(StrEnum):
    JSONL = "jsonl"
    CSV = "csv"


@app.command()
def verify(
    head: Annotated[
        str | None,
        typer.Option(
            "--head", help="An earlier `audit head` (SEQ:HASH); detects a truncated tail."
        ),
    ] = None,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Check the chain; exit 1 naming every edited, deleted or reordered entry."""
    try:
        expected = Head.parse(head) if head else None
    except ValueError as e:
        raise UserInputError(str(e)) from e
    workspace = cli_state.STATE.workspace()
    with workspace.store.read() as connection:
        report = audit_repo.verify(connection, key=workspace.audit_key, expected=expected)
    if output == OutputFormat.JSON:
        print_json(
            {
                "ok": report.ok,
                "checked": report.checked,
                "head": str(report.head),
                "problems": report.problems,
            }
        )
    else:
        for problem in report.problems:
            typer.echo(f"FAIL {problem}")
        verdict = "intact" if report.ok else "BROKEN"
        typer.echo(f"audit log {verdict}: {report.checked} entries checked; head {report.head}")
    if not report.ok:
        raise typer.Exit(int(ExitCode.FAILED))


@app.command("head")
def show_head(output: OutputOption = OutputFormat.TEXT) -> None:
    """Print the head (SEQ:HASH); keep it somewhere else to detect a truncated tail later."""
    workspace = cli_state.STATE.workspace()
    with workspace.store.read() as connection:
        report = audit_repo.verify(connection, key=workspace.audit_key)
    if output == OutputFormat.JSON:
        print_json({"head": str(report.head), "seq": report.head.seq, "hash": report.head.hash})
    else:
        typer.echo(str(report.head))


@app.command()
def export(
    export_format: Annotated[
        ExportFormat, typer.Option("--format", help="jsonl or csv.")
    ] = ExportFormat.JSONL,
    path: Annotated[
        Path | None, typer.Option("--file", help="Write here instead of stdout.")
    ] = None,
) -> None:
    """Write every audit entry as JSON lines or CSV."""
    workspace = cli_state.STATE.workspace()
    with workspace.store.read() as connection:
        entries = list(audit_repo.iter_entries(connection))
    if path is None:
        _write(entries, export_format, sys.stdout)
    else:
        with path.open("w", encoding="utf-8", newline="") as handle:
            _write(entries, export_format, handle)
        typer.echo(f"wrote {len(entries)} entries to {path}", err=True)


def _write(entries: list[AuditEntry], export_format: ExportFormat, handle: TextIO) -> None:
    fields = ["seq", "at", "actor", "kind", "subject", "data", "prev_hash", "hash"]
    if export_format == ExportFormat.JSONL:
        for entry in entries:
            handle.write(json.dumps(entry.model_dump(mode="json")) + "\n")
        return
    writer = csv.writer(handle)
    writer.writerow(fields)
    for entry in entries:
        row = entry.model_dump(mode="json")
        row["data"] = json.dumps(row["data"], sort_keys=True)
        writer.writerow([row[name] for name in fields])
