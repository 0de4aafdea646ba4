"""The process-wide redactor: every resolved secret value is registered here and scrubbed
from logs, journal rows, step outputs, rendered templates and error messages.

Redaction is by value, not by field name, so a secret that reaches a string by any path
(an error body echoing a header, a command printing its environment) is still caught.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any
from urllib.parse import quote

MASK = "***"

# Values shorter than this would mask ordinary text all over the output; a secret that
# short is rejected when it is resolved instead.
MIN_SECRET_LENGTH = 4


class Redactor:
    """A set of secret values and the forms they take once quoted or escaped."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: set[str] = set()
        self._ordered: list[str] = []

    def register(self, value: str) -> None:
        forms = {value, quote(value, safe=""), json.dumps(value)[1:-1]}
        with self._lock:
            new = forms - self._values
            if not new:
                return
            self._values |= new
            # Longest first, so that a value containing another is masked whole.
            self._ordered = sorted(self._values, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for value in self._ordered:
            if value in text:
                text = text.replace(value, MASK)
        return text

    def redact_data(self, data: Any) -> Any:
        """Return a copy of JSON-like data with every string redacted."""
        if isinstance(data, str):
            return self.redact(data)
        if isinstance(data, dict):
            return {self.redact(str(key)): self.redact_data(item) for key, item in data.items()}
        if isinstance(data, list | tuple):
            return [self.redact_data(item) for item in data]
        return data

    def contains_secret(self, text: str) -> bool:
        return any(value in text for value in self._ordered)

    def clear(self) -> None:
        with self._lock:
            self._values.clear()
            self._ordered = []


REDACTOR = Redactor()


def redact(text: str) -> str:
    return REDACTOR.redact(text)


class RedactingFilter(logging.Filter):
    """A logging filter that renders each record and masks secret values in the result."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = REDACTOR.redact(message)
        if cleaned != message or record.args:
            record.msg = cleaned
            record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = REDACTOR.redact(logging.Formatter().formatException(record.exc_info))
        return True
