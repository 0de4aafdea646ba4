"""Secret references (`env:NAME`, `file:PATH`), resolved at the moment of use.

The config and runbooks hold only references; the value exists in memory while it is
used and is registered with the redactor the moment it is read.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, WithJsonSchema

from breakglass.config.redaction import MIN_SECRET_LENGTH, REDACTOR
from breakglass.errors import SecretError

_REFERENCE = re.compile(r"^(env|file):(.+)$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check_reference(value: str) -> str:
    match = _REFERENCE.match(value)
    if match is None:
        # The value is not echoed: what fails here is most likely a pasted secret.
        raise ValueError(
            "invalid secret reference: write env:VARIABLE or file:/path/to/file "
            "(secret values are never written into config or runbooks)"
        )
    if match.group(1) == "env" and not _ENV_NAME.match(match.group(2)):
        raise ValueError(
            "invalid environment variable name in secret reference: use letters, digits and _"
        )
    return value


SecretRef = Annotated[
    str,
    AfterValidator(check_reference),
    WithJsonSchema(
        {"type": "string", "pattern": r"^(env|file):.+$", "examples": ["env:API_TOKEN"]}
    ),
]
"""A reference to a secret: `env:NAME` or `file:PATH`."""


def resolve_secret(reference: str, *, base_dir: Path | None = None) -> str:
    """Read the secret a reference points to and register it with the redactor."""
    check_reference(reference)
    kind, _, target = reference.partition(":")
    if kind == "env":
        value = os.environ.get(target)
        if value is None:
            raise SecretError(
                f"secret reference {reference}: environment variable {target} is not set",
                hint=f"export {target} before running breakglass",
            )
    else:
        path = Path(target).expanduser()
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        try:
            value = path.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as e:
            raise SecretError(
                f"secret reference {reference}: cannot read {path}: {e.strerror}",
                hint="check the path and its permissions",
            ) from e
    if len(value) < MIN_SECRET_LENGTH:
        raise SecretError(
            f"secret reference {reference}: value is shorter than {MIN_SECRET_LENGTH} characters",
            hint="a secret that short cannot be told apart from ordinary output; use a longer one",
        )
    REDACTOR.register(value)
    return value
