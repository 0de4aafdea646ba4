"""`breakglass db ...`: the databases' backup catalogue."""

from __future__ import annotations

from typing import Annotated

import typer

from breakglass.cli import state as cli_state
from breakglass.cli.options import OutputOption
from breakglass.cli.output import OutputFormat, print_json
from breakglass.errors import NotFoundError

app = typer.Typer(help="Work with the configured PostgreSQL databases.", no_args_is_help=True)


@app.command()
def backups(
    database: Annotated[str | None, typer.Argument(help="Only this database's backups.")] = None,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """List the verified dumps and base backups breakglass made, newest first."""
    from breakglass.store import backups as backup_repo

    workspace = cli_state.STATE.workspace()
    with workspace.store.read() as connection:
        records = backup_repo.list_backups(connection, database=database)
    if output == OutputFormat.JSON:
        print_json(records)
        return
    if not records:
        if database is not None and database not in workspace.config.model.databases:
            known = ", ".join(sorted(workspace.config.model.databases)) or "none"
            raise NotFoundError(
                f"database {database!r} is not configured (databases: {known}); add it under `databases:`"
            )
        typer.echo("no backups recorded" + (f" for {database}" if database else ""))
        return
    for record in records:
        size = _size(record.size)
        digest = f" sha256 {record.sha256[:16]}…" if record.sha256 else ""
        typer.echo(
            f"{record.created_at.isoformat(timespec='seconds')} {record.database} {record.kind} {size}{digest} "
            f"({record.run_id or 'no run'}) {record.path}"
        )


def _size(size: int | None) -> str:
    if not size:
        return "size unknown"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KiB"
    return f"{size / 1_048_576:.1f} MiB"


@app.command()
def backup(
    database: Annotated[str, typer.Argument(help="A database under `databases:` in the config.")],
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Take a verified base backup of the database's cluster (the db-base-backup runbook)."""
    from breakglass.cli import run_cmd

    run_cmd.run("db-base-backup", [f"database={database}"], None, output=output)
