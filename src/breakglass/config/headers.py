"""HTTP header maps shared by the HTTP actions, health checks and webhook channels."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

from breakglass.config.secrets import SecretRef

# A header name is an RFC 9110 token.
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


def _check_headers(headers: dict[str, str]) -> dict[str, str]:
    for name, value in headers.items():
        if not _HEADER_NAME.match(name):
            raise ValueError(f"invalid header name {name!r}: use letters, digits and '-'")
        if "\r" in value or "\n" in value:
            raise ValueError(f"header {name} contains a line break; remove it")
    return headers


HeaderMap = Annotated[dict[str, str], AfterValidator(_check_headers)]
SecretHeaderMap = Annotated[dict[str, SecretRef], AfterValidator(_check_headers)]


def check_headers_once(headers: dict[str, str], secret_headers: dict[str, str]) -> None:
    """Raise ValueError when a header is in both maps, so a secret is never also sent in plain."""
    plain = {name.lower() for name in headers}
    for name in secret_headers:
        if name.lower() in plain:
            raise ValueError(
                f"header {name} is set in both headers and secret_headers; keep it in secret_headers only"
            )
