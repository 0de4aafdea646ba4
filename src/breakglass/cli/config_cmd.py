"""`breakglass config validate|schema`."""

from __future__ import annotations

import json

import typer

from breakglass.cli import state as cli_state
from breakglass.cli.options import OutputOption
from breakglass.cli.output import OutputFormat, print_json
from breakglass.config.loading import load_config
from breakglass.config.model import PlatformConfig

app = typer.Typer(help="Check the platform config and print its schema.", no_args_is_help=True)


@app.command()
def validate(output: OutputOption = OutputFormat.TEXT) -> None:
    """Validate the platform config; exit 2 naming each invalid field."""
    loaded = load_config(cli_state.STATE.config_path)
    if output == OutputFormat.JSON:
        print_json({"valid": True, "source": loaded.source, "digest": loaded.digest})
    else:
        typer.echo(f"config {loaded.source} is valid")


@app.command()
def schema() -> None:
    """Print the config's JSON Schema, for editors and CI checks."""
    typer.echo(json.dumps(PlatformConfig.model_json_schema(by_alias=True), indent=2))
