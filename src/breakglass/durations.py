"""Durations written with units (`500ms`, `30s`, `5m`, `1h`, `1h30m`), as runbooks and config use them."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
PATTERN = r"^(\d+(\.\d+)?(ms|s|m|h|d))+$"


def parse_duration(text: str) -> float:
    """Return the number of seconds in `text`, raising ValueError with the accepted forms."""
    cleaned = text.strip().replace(" ", "")
    position = 0
    total = 0.0
    for match in _PART.finditer(cleaned):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    if not cleaned or position != len(cleaned):
        raise ValueError(
            f"invalid duration {text!r}: write a number with a unit, "
            "for example 500ms, 30s, 5m, 1h or 1h30m"
        )
    return total


def format_duration(seconds: float) -> str:
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    if seconds < 60:
        return f"{seconds:g}s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes}m" if minutes else f"{hours}h"


def _coerce(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("a duration needs a unit, for example 30s")
    if isinstance(value, int | float):
        # A bare number is ambiguous (seconds? minutes?), so only strings with units are accepted.
        raise ValueError(f"duration {value!r} has no unit: write it as {value}s or {value}m")
    if isinstance(value, str):
        return parse_duration(value)
    raise ValueError(f"invalid duration {value!r}: expected a string such as 30s")


Duration = Annotated[
    float,
    BeforeValidator(_coerce),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "pattern": PATTERN, "examples": ["30s", "5m"]}),
]
"""Seconds, parsed from a string with units and written back the same way."""


def _coerce_positive(value: Any) -> float:
    seconds = _coerce(value)
    if seconds <= 0:
        raise ValueError(f"duration {value!r} must be more than zero")
    return seconds


PositiveDuration = Annotated[
    float,
    BeforeValidator(_coerce_positive),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "pattern": PATTERN, "examples": ["30s", "5m"]}),
]
"""Seconds, as Duration, but never zero: timeouts, intervals and lease times."""
