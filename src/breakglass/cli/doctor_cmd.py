"""`breakglass doctor`: overdue drills and reviews, lint failures and unreachable targets."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer

from breakglass.cli import state as cli_state
from breakglass.cli.options import OutputOption
from breakglass.cli.output import OutputFormat, print_json
from breakglass.errors import ExitCode

MARKS = {"error": "✘", "overdue": "!", "info": "·"}


def doctor(
    offline: Annotated[
        bool, typer.Option("--offline", help="Skip the reachability checks of configured targets.")
    ] = False,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Report overdue drills and reviews, lint failures, unreachable targets and state paths.

    Exit 1 when anything is overdue or broken.
    """
    from breakglass.engine.doctor import examine, failing

    workspace = cli_state.STATE.workspace()
    findings = examine(workspace, check_targets=not offline)
    if output == OutputFormat.JSON:
        print_json({"healthy": not failing(findings), "findings": [asdict(f) for f in findings]})
    else:
        for finding in findings:
            typer.echo(
                f"{MARKS[finding.level]} {finding.area:<9} {finding.subject}: {finding.message}"
            )
        problems = sum(1 for finding in findings if finding.level != "info")
        typer.echo(f"{problems} problem(s) found" if problems else "nothing overdue or broken")
    if failing(findings):
        raise typer.Exit(int(ExitCode.FAILED))
