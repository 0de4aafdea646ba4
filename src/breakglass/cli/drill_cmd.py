"""`breakglass drill ...`: exercises that prove a recovery works before it is needed."""

from __future__ import annotations

from typing import Annotated

import typer

from breakglass.cli.options import OutputOption
from breakglass.cli.output import OutputFormat

app = typer.Typer(help="Run recovery drills.", no_args_is_help=True)


@app.command("db-restore")
def db_restore(
    database: Annotated[str, typer.Argument(help="A database under `databases:` in the config.")],
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Restore the latest base backup and WAL into a scratch cluster; record RTO and RPO.

    The live cluster and its WAL archive are never written: the copy runs on its own
    port with archiving off and a restore_command that only reads. The result is the
    journal of a db-restore-drill run, shown by `breakglass runs show RUN`.
    """
    from breakglass.cli import run_cmd

    run_cmd.run("db-restore-drill", [f"database={database}"], None, output=output)
