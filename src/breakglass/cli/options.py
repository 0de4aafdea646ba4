"""Option types reused across commands."""

from __future__ import annotations

from typing import Annotated

import typer

from breakglass.cli.output import OutputFormat

OutputOption = Annotated[
    OutputFormat,
    typer.Option("--output", "-o", help="Output format: text for people, json for machines."),
]
