"""Typing the values given for a runbook's inputs (`-i key=value`, `--inputs FILE`)."""

from __future__ import annotations

from typing import Any

from breakglass.durations import parse_duration
from breakglass.errors import UserInputError
from breakglass.runbooks.model import InputSpec, InputType, Runbook
from breakglass.timeinput import parse_instant

_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}


def coerce_value(name: str, spec: InputSpec, value: Any) -> Any:
    """Return `value` as the input's declared type, raising ValueError with the reason."""
    kind = spec.type
    if kind == InputType.STRING:
        result: Any = value if isinstance(value, str) else str(value)
    elif kind == InputType.BOOLEAN:
        result = _boolean(value)
    elif kind == InputType.INTEGER:
        result = _integer(value)
    elif kind == InputType.NUMBER:
        result = _number(value)
    elif kind == InputType.DATETIME:
        result = parse_instant(str(value)).isoformat()
    else:
        result = parse_duration(str(value))
    if spec.enum is not None and result not in spec.enum:
        allowed = ", ".join(str(item) for item in spec.enum)
        raise ValueError(f"{result!r} is not one of the allowed values: {allowed}")
    return result


def _integer(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
        return int(value)
    raise ValueError(f"expected an integer, got {value!r}")


def _number(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    try:
        return float(str(value))
    except ValueError:
        raise ValueError(f"expected a number, got {value!r}") from None


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def resolve_inputs(runbook: Runbook, given: dict[str, Any]) -> dict[str, Any]:
    """Check given inputs against the runbook's declarations and fill in defaults."""
    problems: list[str] = []
    unknown = sorted(set(given) - set(runbook.inputs))
    for name in unknown:
        declared = ", ".join(sorted(runbook.inputs)) or "none"
        problems.append(f"unknown input {name!r} (declared inputs: {declared})")
    resolved: dict[str, Any] = {}
    for name, spec in runbook.inputs.items():
        if name in given:
            try:
                resolved[name] = coerce_value(name, spec, given[name])
            except ValueError as e:
                problems.append(f"input {name}: {e}")
        elif spec.default is not None:
            resolved[name] = spec.default
        elif spec.is_required:
            problems.append(f"input {name} is required ({spec.type.value}): pass -i {name}=VALUE")
        # An optional input without a default stays absent, so a template that reads it
        # without `| default(...)` fails instead of rendering "None" into a command.
    if problems:
        raise UserInputError(
            f"runbook {runbook.name}: " + "; ".join(problems),
            hint=f"`breakglass runbooks show {runbook.name}` lists its inputs",
        )
    return resolved


def parse_assignments(pairs: list[str]) -> dict[str, str]:
    """Split `key=value` pairs from the command line."""
    values: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UserInputError(f"invalid input {pair!r}: write -i key=value")
        if key.strip() in values:
            raise UserInputError(f"input {key.strip()!r} given twice")
        values[key.strip()] = value
    return values
