from __future__ import annotations

import importlib

import pytest
import typer

from breakglass.cli.lazy import LAZY_COMMANDS, load_command


@pytest.mark.parametrize("name", sorted(set(LAZY_COMMANDS) - {"demo"}))
def test_listed_help_matches_docstring(name: str) -> None:
    module_name, attribute, listed = LAZY_COMMANDS[name]
    target = getattr(importlib.import_module(module_name), attribute)
    if isinstance(target, typer.Typer):
        assert target.info.help == listed
    else:
        assert (target.__doc__ or "").strip().splitlines()[0] == listed
    assert load_command(name).name == name
