from __future__ import annotations

import pytest

from breakglass.errors import UserInputError
from breakglass.runbooks.inputs import parse_assignments, resolve_inputs
from breakglass.runbooks.model import Runbook


def runbook(inputs: dict[str, object]) -> Runbook:
    return Runbook.model_validate(
        {
            "apiVersion": "breakglass/v1",
            "kind": "Runbook",
            "metadata": {"name": "x"},
            "inputs": inputs,
            "steps": [{"id": "a", "action": "log.message", "with": {"message": "m"}}],
        }
    )


def test_types_coerced_from_strings() -> None:
    book = runbook(
        {
            "n": {"type": "integer"},
            "f": {"type": "boolean"},
            "at": {"type": "datetime"},
            "wait": {"type": "duration"},
        }
    )
    values = resolve_inputs(
        book, {"n": "3", "f": "yes", "at": "2026-12-04T10:00:00+02:00", "wait": "5m"}
    )
    assert values == {"n": 3, "f": True, "at": "2026-12-04T08:00:00+00:00", "wait": 300.0}


def test_defaults_filled_and_unknown_rejected() -> None:
    book = runbook({"env": {"default": "prod", "enum": ["prod", "staging"]}})
    assert resolve_inputs(book, {}) == {"env": "prod"}
    with pytest.raises(UserInputError, match="unknown input 'evn' \\(declared inputs: env\\)"):
        resolve_inputs(book, {"evn": "prod"})


def test_every_problem_reported_at_once() -> None:
    book = runbook({"a": {"required": True}, "b": {"type": "integer"}, "c": {"enum": ["x"]}})
    with pytest.raises(UserInputError) as caught:
        resolve_inputs(book, {"b": "two", "c": "y"})
    message = caught.value.message
    assert "input a is required (string): pass -i a=VALUE" in message
    assert "input b: expected an integer, got 'two'" in message
    assert "input c: 'y' is not one of the allowed values: x" in message


def test_naive_datetime_input_rejected() -> None:
    book = runbook({"at": {"type": "datetime"}})
    with pytest.raises(UserInputError, match="has no time zone"):
        resolve_inputs(book, {"at": "2026-12-04 10:00"})


def test_assignment_parsing() -> None:
    assert parse_assignments(["a=1", "b=x=y"]) == {"a": "1", "b": "x=y"}
    with pytest.raises(UserInputError, match="write -i key=value"):
        parse_assignments(["novalue"])
    with pytest.raises(UserInputError, match="given twice"):
        parse_assignments(["a=1", "a=2"])
