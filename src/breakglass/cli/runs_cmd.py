"""`breakglass runs` (list) and `breakglass runs show RUN [--follow]`."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from breakglass.cli import state as cli_state
from breakglass.cli.display import outcome_lines
from breakglass.cli.options import OutputOption
from breakglass.cli.output import OutputFormat, make_console, print_json
from breakglass.clock import format_time
from breakglass.engine import service
from breakglass.engine.workspace import Workspace
from breakglass.store.records import EntryKind, JournalEntry

# Longer output values are cut in the text view; --output json shows them whole.
OUTPUT_CHARS = 200

app = typer.Typer(help="List runs and show their journals.", invoke_without_command=True)

FOLLOW_POLL_SECONDS = 0.5


@app.callback()
def list_runs(
    ctx: typer.Context,
    limit: Annotated[
        int, typer.Option("--limit", help="How many of the newest runs to list.")
    ] = 20,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """List the newest runs with their state."""
    if ctx.invoked_subcommand is not None:
        return
    records = service.list_runs(cli_state.STATE.workspace(), limit=limit)
    if output == OutputFormat.JSON:
        print_json(records)
        return
    console = make_console()
    if not records:
        console.print("no runs yet")
        return
    table = Table(
        "run", "runbook", "state", "actor", "started", "summary", box=None, pad_edge=False
    )
    for record in records:
        table.add_row(
            record.id,
            record.runbook,
            record.state.value,
            record.actor,
            format_time(record.created_at),
            escape((record.summary or "").splitlines()[0] if record.summary else ""),
        )
    console.print(table)


def _entry_line(entry: JournalEntry) -> str:
    parts = [format_time(entry.at), entry.kind.value]
    if entry.step_id:
        parts.append(
            entry.step_id + (f" ({entry.phase})" if entry.phase and entry.phase != "main" else "")
        )
    if entry.attempt and entry.attempt > 1:
        parts.append(f"attempt {entry.attempt}")
    if entry.status:
        parts.append(entry.status)
    if entry.duration is not None:
        parts.append(f"{entry.duration:.2f}s")
    line = "  ".join(parts)
    if entry.message:
        line += f": {entry.message}"
    return f"{line}  [{entry.actor}]"


@app.command()
def show(
    run_id: Annotated[str, typer.Argument(help="The run, for example RUN-20261204-001.")],
    follow: Annotated[
        bool,
        typer.Option(
            "--follow", "-f", help="Keep printing new journal entries until the run stops."
        ),
    ] = False,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Show a run's state, step table and journal."""
    workspace = cli_state.STATE.workspace()
    record = service.get_run(workspace, run_id)
    entries = service.journal_of(workspace, run_id)
    if output == OutputFormat.JSON and not follow:
        print_json(
            {
                "run": record,
                "steps": service.step_table(workspace, record, entries),
                "outputs": _outputs(entries),
                "journal": entries,
            }
        )
        return
    console = make_console()
    if output == OutputFormat.TEXT:
        console.print(
            f"[bold]{record.id}[/] {escape(record.runbook)}: {record.state.value}", highlight=False
        )
        console.print(
            f"started {format_time(record.created_at)} by {escape(record.actor)}", highlight=False
        )
        if record.summary:
            console.print(escape(record.summary), highlight=False)
        for line in outcome_lines(service.step_table(workspace, record, entries)):
            console.print(line, highlight=False)
        outputs = _outputs(entries)
        if outputs:
            console.print("outputs:")
            for step_id, values in outputs.items():
                for key, value in values.items():
                    shown = value if isinstance(value, str) else json.dumps(value, default=str)
                    if len(shown) > OUTPUT_CHARS:
                        shown = shown[: OUTPUT_CHARS - 1] + "…"
                    console.print(
                        f"  {escape(step_id)}.{escape(key)}: {escape(shown)}", highlight=False
                    )
        console.print("journal:")
    for entry in entries:
        _print_entry(console, entry, output)
    if follow:
        _follow(console, workspace, run_id, entries[-1].seq if entries else 0, output)


def _outputs(entries: list[JournalEntry]) -> dict[str, dict[str, Any]]:
    """Return each step's outputs from its latest successful end, in step order."""
    found: dict[str, dict[str, Any]] = {}
    for entry in entries:
        data = entry.data or {}
        if (
            entry.kind == EntryKind.STEP_ENDED
            and entry.step_id
            and entry.status == "succeeded"
            and entry.phase in (None, "main")
            and isinstance(data.get("outputs"), dict)
        ):
            found[entry.step_id] = data["outputs"]
    return found


def _print_entry(console: object, entry: JournalEntry, output: OutputFormat) -> None:
    if output == OutputFormat.JSON:
        typer.echo(entry.model_dump_json())
    else:
        typer.echo("  " + _entry_line(entry))


def _follow(
    console: object, workspace: Workspace, run_id: str, after: int, output: OutputFormat
) -> None:
    """Poll the journal: the run may be executing in another process on another host."""
    while True:
        record = service.get_run(workspace, run_id)
        # Entries are read after the run record, so that the last entries written before
        # the lease was released are still printed.
        for entry in service.journal_of(workspace, run_id, after=after):
            _print_entry(console, entry, output)
            after = entry.seq
        if not record.lease_holder_alive:
            if output == OutputFormat.TEXT:
                typer.echo(f"run {run_id} is {record.state.value}")
            return
        time.sleep(FOLLOW_POLL_SECONDS)
