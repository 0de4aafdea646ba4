"""Errors of the sandbox API server, rendered as Kubernetes `Status` objects."""

from __future__ import annotations

from typing import Any, Protocol


class ApiError(Exception):
    """A request the sandbox rejects, with the HTTP status and `Status.reason` the API uses."""

    def __init__(
        self, status: int, reason: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message
        self.details = details or {}

    def to_status(self) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Status",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "details": self.details,
            "code": self.status,
        }


class _Named(Protocol):
    @property
    def qualified(self) -> str: ...

    @property
    def plural(self) -> str: ...


def not_found(kind: _Named, name: str) -> ApiError:
    message = f'{kind.qualified} "{name}" not found'
    return ApiError(404, "NotFound", message, {"name": name, "kind": kind.plural})


def already_exists(kind: _Named, name: str) -> ApiError:
    message = f'{kind.qualified} "{name}" already exists'
    return ApiError(409, "AlreadyExists", message, {"name": name, "kind": kind.plural})


def conflict(kind: _Named, name: str, cause: str) -> ApiError:
    message = f'Operation cannot be fulfilled on {kind.qualified} "{name}": {cause}'
    return ApiError(409, "Conflict", message, {"name": name, "kind": kind.plural})


def invalid(kind: str, name: str, causes: list[str]) -> ApiError:
    """Build the 422 for an object that fails validation.

    `kind` is written as the API writes it in messages, e.g. `Deployment.apps`.
    """
    message = f'{kind} "{name}" is invalid: ' + "; ".join(causes)
    details = {"name": name, "kind": kind, "causes": [{"message": cause} for cause in causes]}
    return ApiError(422, "Invalid", message, details)


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


class SandboxError(RuntimeError):
    """A misuse of the sandbox from test code: not started, stopped, or a timed-out settle."""


class ObjectNotFoundError(LookupError):
    """Raised by the direct helpers when the object does not exist."""
