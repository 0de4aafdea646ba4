from __future__ import annotations

import pytest

from breakglass.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("30s", 30), ("5m", 300), ("1h30m", 5400), ("2d", 172800), ("1.5s", 1.5)],
)
def test_parse_units(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "30", "soon", "5 minutes", "m5", "1h-3m"])
def test_parse_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


def test_format_round_trips() -> None:
    for seconds in (0.25, 30, 300, 5400):
        assert parse_duration(format_duration(seconds)) == seconds
