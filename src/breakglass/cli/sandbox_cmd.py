"""`breakglass sandbox up|down|status`: a local platform to try runbooks and run drills on."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from breakglass.cli import state as cli_state
from breakglass.cli.options import OutputOption
from breakglass.cli.output import OutputFormat, print_json
from breakglass.errors import ExitCode

app = typer.Typer(
    help="Start, inspect and stop a local sandbox platform on 127.0.0.1.", no_args_is_help=True
)

DirOption = Annotated[
    Path | None,
    typer.Option("--dir", help="The sandbox directory (default: STATE_DIR/sandbox)."),
]


def sandbox_dir(directory: Path | None) -> Path:
    if directory is not None:
        return directory.expanduser().absolute()
    return cli_state.STATE.workspace().state_dir / "sandbox"


@app.command()
def up(directory: DirOption = None) -> None:
    """Start PostgreSQL, the Kubernetes emulator, moto and health endpoints; write the config.

    The sandbox runs until `breakglass sandbox down`. Its config has its own state store,
    so nothing done in it mixes with real incidents.
    """
    from breakglass.sandbox.platform import up as start

    target = sandbox_dir(directory)
    sandbox = start(target, lambda text: typer.echo(f"  {text}"))
    _print_status(sandbox.directory)
    typer.echo(
        f"\nTry: breakglass --config {sandbox.config_path} health\n"
        f"     breakglass --config {sandbox.config_path} plan backend-rollback "
        "-i database=app -i migration_version=0003_subscriptions -i distribution=frontend\n"
        "Stop it with `breakglass sandbox down"
        + (f" --dir {sandbox.directory}" if directory is not None else "")
        + "`."
    )


@app.command()
def down(directory: DirOption = None) -> None:
    """Stop everything the sandbox started and remove its files."""
    from breakglass.sandbox.platform import down as stop

    target = sandbox_dir(directory)
    if not stop(target, typer.echo):
        typer.echo(f"no sandbox in {target}; nothing to stop")
        return
    typer.echo("sandbox stopped and removed")


@app.command()
def status(directory: DirOption = None, output: OutputOption = OutputFormat.TEXT) -> None:
    """Show where the sandbox's pieces listen and whether each runs; exit 1 if one does not."""
    from breakglass.sandbox.platform import status as read

    target = sandbox_dir(directory)
    found = read(target)
    if output == OutputFormat.JSON:
        print_json(found or {"directory": str(target), "up": False})
    elif found is None:
        typer.echo(f"no sandbox in {target}; `breakglass sandbox up` starts one")
    else:
        _print_status(target, found)
    if found is None or not found["up"]:
        raise typer.Exit(int(ExitCode.FAILED))


def _print_status(directory: Path, found: dict[str, Any] | None = None) -> None:
    from breakglass.sandbox.platform import status as read

    found = found or read(directory)
    if found is None:
        return

    def state(running: bool) -> str:
        return "running" if running else "NOT RUNNING"

    postgres, services = found["postgres"], found["services"]
    typer.echo(f"sandbox {found['directory']}")
    typer.echo(f"  config       {found['config']}")
    typer.echo(
        f"  postgres     {postgres['where'] or 'not started'} ({state(postgres['running'])})"
    )
    # One background process serves the emulator, moto and the health endpoints.
    running = state(services["running"])
    if services["kubernetes"] is None:
        typer.echo(f"  services     not started ({running})")
        return
    typer.echo(f"  kubernetes   {services['kubernetes']} ({running})")
    typer.echo(f"  cloudfront   {services['moto']} ({running})")
    typer.echo(f"  health       {services['health']}/NAME/healthz ({running})")
