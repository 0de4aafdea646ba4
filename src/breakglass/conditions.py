"""Conditions on JSON response fields, shared by `http.check` steps and health checks.

A field is addressed by a dotted path with list indexes (`data.items[0].state`) and compared
by value with a typed operator; nothing is ever matched as a substring of the body.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

_SEGMENT = re.compile(r"([^.\[\]]+)|\[(\d+)\]")
_MISSING = object()
OPERATORS = ("equals", "not_equals", "one_of", "lt", "le", "gt", "ge", "exists")


class JsonCondition(BaseModel):
    """One condition on one field of a JSON document; exactly one operator is set."""

    model_config = ConfigDict(extra="forbid")

    path: str
    equals: Any = None
    not_equals: Any = None
    one_of: list[Any] | None = None
    lt: float | None = None
    le: float | None = None
    gt: float | None = None
    ge: float | None = None
    exists: bool | None = None

    @model_validator(mode="after")
    def _one_operator(self) -> JsonCondition:
        given = [name for name in OPERATORS if name in self.model_fields_set]
        if len(given) != 1:
            raise ValueError(
                f"condition on {self.path!r} needs exactly one of {', '.join(OPERATORS)}; "
                f"got {', '.join(given) or 'none'}"
            )
        if not _SEGMENT.match(self.path):
            raise ValueError(f"invalid field path {self.path!r}: use a.b[0].c")
        return self

    @property
    def operator(self) -> str:
        return next(name for name in OPERATORS if name in self.model_fields_set)

    def describe(self) -> str:
        return f"{self.path} {self.operator} {getattr(self, self.operator)!r}"


def lookup(document: Any, path: str) -> Any:
    """Return the value at `path`, or the module's missing marker."""
    value = document
    for match in _SEGMENT.finditer(path):
        key, index = match.group(1), match.group(2)
        if key is not None:
            if not isinstance(value, dict) or key not in value:
                return _MISSING
            value = value[key]
        else:
            position = int(index)
            if not isinstance(value, list) or position >= len(value):
                return _MISSING
            value = value[position]
    return value


def evaluate(condition: JsonCondition, document: Any) -> str | None:
    """Return None when the condition holds, otherwise a sentence saying why it does not."""
    value = lookup(document, condition.path)
    operator = condition.operator
    expected = getattr(condition, operator)
    if operator == "exists":
        present = value is not _MISSING
        if present == expected:
            return None
        return (
            f"{condition.path} is {'present' if present else 'missing'}, expected exists={expected}"
        )
    if value is _MISSING:
        return f"{condition.path} is missing from the response"
    if operator == "equals":
        ok = _same(value, expected)
    elif operator == "not_equals":
        ok = not _same(value, expected)
    elif operator == "one_of":
        ok = any(_same(value, item) for item in expected)
    else:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return (
                f"{condition.path} is {value!r}, not a number, so {operator} {expected} cannot hold"
            )
        ok = {
            "lt": value < expected,
            "le": value <= expected,
            "gt": value > expected,
            "ge": value >= expected,
        }[operator]
    if ok:
        return None
    return f"{condition.path} is {value!r}, expected {operator} {expected!r}"


def _same(value: Any, expected: Any) -> bool:
    # JSON true must not equal 1, although True == 1 in Python.
    if isinstance(value, bool) or isinstance(expected, bool):
        return type(value) is type(expected) and value == expected
    return bool(value == expected)
