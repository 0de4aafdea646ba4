"""`breakglass drill ...`: exercises that prove a recovery works before it is needed."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import typer

from breakglass.cli import state as cli_state
from breakglass.cli.options import OutputOption
from breakglass.cli.output import OutputFormat, print_json

app = typer.Typer(help="Run recovery drills.", no_args_is_help=True)

DB_RESTORE_RUNBOOK = "db-restore-drill"


@app.command("db-restore")
def db_restore(
    database: Annotated[str, typer.Argument(help="A database under `databases:` in the config.")],
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Restore the latest base backup and WAL into a scratch cluster; record RTO and RPO.

    The live cluster and its WAL archive are never written: the copy runs on its own
    port with archiving off and a restore_command that only reads. The run is recorded
    as a drill, which `breakglass drill list` shows.
    """
    from breakglass.cli import run_cmd
    from breakglass.engine import service
    from breakglass.store import drills as drill_repo
    from breakglass.store.records import RunState

    workspace = cli_state.STATE.workspace()
    bus, display, console = run_cmd._bus(output)
    started = workspace.clock.now()
    outcome = service.start_run(
        workspace,
        DB_RESTORE_RUNBOOK,
        {"database": database},
        options=run_cmd._options(False, None, False, 600.0),
        interaction=run_cmd._interaction(console, display),
        bus=bus,
    )
    entries = service.journal_of(workspace, outcome.run_id)
    details: dict[str, Any] = {"database": database}
    for entry in entries:
        outputs = (entry.data or {}).get("outputs")
        if entry.step_id == "drill" and isinstance(outputs, dict):
            details.update(
                {
                    key: outputs.get(key)
                    for key in ("rto_seconds", "rpo_seconds", "backup", "checks_passed")
                }
            )
    name = next(
        (
            item.name
            for item in workspace.config.model.drills.schedule
            if item.runbook == DB_RESTORE_RUNBOOK
        ),
        "database-restore",
    )
    with workspace.store.write() as connection:
        drill_repo.add_drill(
            connection,
            name=name,
            runbook=DB_RESTORE_RUNBOOK,
            run_id=outcome.run_id,
            result="succeeded" if outcome.state == RunState.SUCCEEDED else "failed",
            details=details,
            started_at=started,
            finished_at=workspace.clock.now(),
            actor=workspace.actor,
        )
    run_cmd._report(outcome, output)


def due_rows(now: datetime) -> list[dict[str, Any]]:
    """Return each scheduled drill with its last run and when it is due next."""
    from breakglass.engine.doctor import drill_status

    return [
        {
            "name": drill.name,
            "runbook": drill.runbook,
            "every_days": round(drill.every / 86400, 1),
            "last_run": drill.last_run,
            "last_run_id": drill.last_run_id,
            "next_due": drill.next_due,
            "overdue": drill.overdue(now),
        }
        for drill in drill_status(cli_state.STATE.workspace())
    ]


@app.command("list")
def list_(output: OutputOption = OutputFormat.TEXT) -> None:
    """List the scheduled drills with their last successful run and when each is next due."""
    workspace = cli_state.STATE.workspace()
    rows = due_rows(workspace.clock.now())
    if output == OutputFormat.JSON:
        print_json(rows)
        return
    for row in rows:
        last = row["last_run"].isoformat(timespec="seconds") if row["last_run"] else "never"
        if row["next_due"] is None:
            due = "due now (never run)"
        else:
            due = ("OVERDUE since " if row["overdue"] else "next due ") + row["next_due"].isoformat(
                timespec="seconds"
            )
        runbook = row["runbook"] or "by hand"
        typer.echo(
            f"{row['name']:<22} every {row['every_days']:g} d  ({runbook})  last {last}  {due}"
        )
