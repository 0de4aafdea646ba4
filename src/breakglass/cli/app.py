"""The `breakglass` command: global options, command registration and error handling."""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import click
import typer

from breakglass import __version__
from breakglass.cli import state as cli_state
from breakglass.cli.lazy import LazyGroup
from breakglass.cli.output import print_error
from breakglass.errors import BreakglassError, ExitCode

app = typer.Typer(
    name="breakglass",
    cls=LazyGroup,
    help="Plan, run, resume and audit rollback runbooks and emergency procedures.",
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def main_options(
    config: Annotated[
        str | None,
        typer.Option(
            "--config",
            "-c",
            help="Platform config file (default: $BREAKGLASS_CONFIG, then ./breakglass.yaml).",
        ),
    ] = None,
    actor: Annotated[
        str | None,
        typer.Option(
            "--actor",
            help="Who is acting, recorded in the journal and audit log (default: $BREAKGLASS_ACTOR, then the OS user).",
        ),
    ] = None,
    log_format: Annotated[
        str,
        typer.Option(
            "--log-format", help="Log format on stderr: text (default) or json.", show_default=False
        ),
    ] = "text",
    verbose: Annotated[
        int,
        typer.Option(
            "--verbose",
            "-v",
            count=True,
            help="More log output; repeat for debug.",
            show_default=False,
        ),
    ] = 0,
) -> None:
    cli_state.STATE = cli_state.CliState(config_path=config, actor=actor)
    from breakglass.cli.logs import configure_logging

    configure_logging(verbosity=verbose, log_format=log_format)


@app.command()
def version() -> None:
    """Print the breakglass version."""
    typer.echo(f"breakglass {__version__}")


def main() -> None:
    try:
        # Without standalone mode, click returns the code of typer.Exit instead of exiting.
        code = app(standalone_mode=False)
    except BreakglassError as e:
        print_error(e.message, e.hint)
        sys.exit(int(e.exit_code))
    except click.exceptions.Abort:
        print_error("interrupted")
        sys.exit(int(ExitCode.INTERRUPTED))
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.ClickException as e:
        e.show()
        sys.exit(int(ExitCode.BAD_INPUT) if e.exit_code == 2 else e.exit_code)
    except KeyboardInterrupt:
        print_error("interrupted")
        sys.exit(int(ExitCode.INTERRUPTED))
    logging.shutdown()
    sys.exit(code if isinstance(code, int) else 0)
