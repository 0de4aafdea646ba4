"""Status conditions with the transition rules every Kubernetes controller follows."""

from __future__ import annotations

from typing import Any


def set_condition(
    status: dict[str, Any],
    *,
    type_: str,
    value: str,
    reason: str,
    message: str,
    now: str,
    update_time: bool = True,
) -> None:
    """Set one condition in `status["conditions"]`, keeping its position in the list.

    `lastTransitionTime` changes only when the status value changes. Deployment conditions
    also carry `lastUpdateTime` (`update_time`), which changes with the reason or message.
    """
    conditions: list[dict[str, Any]] = status.setdefault("conditions", [])
    existing = next((c for c in conditions if c.get("type") == type_), None)
    condition: dict[str, Any] = {"type": type_, "status": value}
    if update_time:
        condition["lastUpdateTime"] = now
    condition["lastTransitionTime"] = now
    condition["reason"] = reason
    condition["message"] = message
    if existing is None:
        conditions.append(condition)
        return
    if existing.get("status") == value:
        condition["lastTransitionTime"] = existing.get("lastTransitionTime", now)
        same = (existing.get("reason"), existing.get("message")) == (reason, message)
        if update_time and same:
            condition["lastUpdateTime"] = existing.get("lastUpdateTime", now)
    conditions[conditions.index(existing)] = condition


def find_condition(status: dict[str, Any] | None, type_: str) -> dict[str, Any] | None:
    for condition in (status or {}).get("conditions") or []:
        if condition.get("type") == type_:
            return dict(condition)
    return None


def is_ready(pod: dict[str, Any]) -> bool:
    """Return whether the pod's Ready condition is True."""
    return (find_condition(pod.get("status"), "Ready") or {}).get("status") == "True"
