"""`breakglass runbooks` (list) and `breakglass runbooks show NAME`; `breakglass lint`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from breakglass.cli import state as cli_state
from breakglass.cli.options import OutputOption
from breakglass.cli.output import OutputFormat, make_console, print_json
from breakglass.errors import ExitCode, RunbookError
from breakglass.runbooks.lint import lint_path
from breakglass.runbooks.loading import discover, load_runbook, locate

app = typer.Typer(help="List the runbooks on the search path.", invoke_without_command=True)


@app.callback()
def list_runbooks(ctx: typer.Context, output: OutputOption = OutputFormat.TEXT) -> None:
    """List runbooks: the built-in catalog, then the config's runbook_dirs."""
    if ctx.invoked_subcommand is not None:
        return
    workspace = cli_state.STATE.workspace()
    rows = []
    for name, source in sorted(discover(workspace.config).items()):
        try:
            runbook = load_runbook(source.path).runbook
            title, reviewed = runbook.metadata.title, runbook.metadata.reviewed
        except RunbookError:
            title, reviewed = "(invalid: run `breakglass lint`)", None
        rows.append(
            {
                "name": name,
                "title": title,
                "path": str(source.path),
                "builtin": source.builtin,
                "overrides": str(source.overrides) if source.overrides else None,
                "reviewed": reviewed.isoformat() if reviewed else None,
            }
        )
    if output == OutputFormat.JSON:
        print_json(rows)
        return
    table = Table("name", "title", "source", "reviewed", box=None, pad_edge=False)
    for row in rows:
        origin = "built-in" if row["builtin"] else str(row["path"])
        if row["overrides"]:
            origin += " (overrides the built-in)"
        table.add_row(
            str(row["name"]), escape(str(row["title"])), escape(origin), str(row["reviewed"] or "-")
        )
    make_console().print(table)


@app.command()
def show(
    name: Annotated[str, typer.Argument(help="Runbook name or path.")],
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Show a runbook's inputs, locks and steps."""
    workspace = cli_state.STATE.workspace()
    loaded = load_runbook(locate(name, workspace.config).path)
    runbook = loaded.runbook
    if output == OutputFormat.JSON:
        print_json(
            {"path": str(loaded.path), "runbook": runbook.model_dump(mode="json", by_alias=True)}
        )
        return
    console = make_console()
    console.print(
        f"[bold]{runbook.name}[/]: {escape(runbook.metadata.title)} ({loaded.path})",
        highlight=False,
    )
    if runbook.metadata.description:
        console.print(escape(runbook.metadata.description.strip()), highlight=False)
    console.print(
        f"failure policy: {runbook.on_failure.value}; locks: {', '.join(runbook.locks) or 'none'}"
    )
    for input_name, spec in runbook.inputs.items():
        if spec.is_required:
            need = "required"
        elif spec.default is None:
            need = "optional"
        else:
            need = f"default {spec.default!r}"
        allowed = f", one of {spec.enum}" if spec.enum else ""
        console.print(
            f"  input {input_name} ({spec.type.value}, {need}{allowed}): {escape(spec.description)}",
            highlight=False,
        )
    for step in runbook.steps:
        console.print(
            f"  step {step.id} {escape('[' + step.action + ']')} {escape(step.title)}",
            highlight=False,
        )


def lint(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Runbook files or directories (default: every runbook on the search path)."
        ),
    ] = None,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Check runbooks without running them; exit 2 when anything is found."""
    workspace = cli_state.STATE.workspace()
    files: list[Path] = []
    if paths:
        for path in paths:
            files.extend(sorted(path.glob("*.y*ml")) if path.is_dir() else [path])
    else:
        files = [source.path for source in discover(workspace.config).values()]
    findings = [finding for file in files for finding in lint_path(file, workspace.config)]
    if output == OutputFormat.JSON:
        print_json(
            {
                "files": [str(file) for file in files],
                "findings": [finding.__dict__ for finding in findings],
            }
        )
    else:
        for finding in findings:
            typer.echo(str(finding))
        typer.echo(f"{len(files)} runbook(s) checked, {len(findings)} finding(s)")
    if findings:
        raise typer.Exit(int(ExitCode.BAD_INPUT))
