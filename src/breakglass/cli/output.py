"""Presenting results: Rich on a terminal, plain text elsewhere, JSON when asked."""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from breakglass.config.redaction import REDACTOR

if TYPE_CHECKING:
    from rich.console import Console


class OutputFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


def _color_allowed() -> bool:
    return "NO_COLOR" not in os.environ


def make_console(*, stderr: bool = False) -> Console:
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    interactive = stream.isatty()
    return Console(
        file=stream,
        no_color=not _color_allowed(),
        highlight=False,
        force_terminal=interactive if interactive else None,
        # Not a terminal: no colour codes, no live display, no wrapping at 80 columns.
        width=None if interactive else 200,
        soft_wrap=not interactive,
    )


def to_jsonable(value: Any) -> Any:
    from pydantic import BaseModel

    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [to_jsonable(item) for item in value]
    if isinstance(value, dict):
        return {key: to_jsonable(item) for key, item in value.items()}
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def print_json(value: Any) -> None:
    text = json.dumps(to_jsonable(value), indent=2, sort_keys=False, default=str)
    sys.stdout.write(REDACTOR.redact(text) + "\n")


def print_error(message: str, hint: str | None = None) -> None:
    from rich.markup import escape

    console = make_console(stderr=True)
    console.print(
        f"[bold red]error:[/] {escape(REDACTOR.redact(message))}", markup=True, highlight=False
    )
    if hint:
        console.print(
            f"[yellow]hint:[/] {escape(REDACTOR.redact(hint))}", markup=True, highlight=False
        )
