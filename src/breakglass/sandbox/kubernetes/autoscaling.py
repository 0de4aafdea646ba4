"""The HorizontalPodAutoscaler controller, without metrics.

The sandbox serves no metrics API, so an autoscaler only does what the real controller does
before it reads metrics. It scales a target Deployment above `maxReplicas` down to it and
one below `minReplicas` up to it. A target at zero replicas is left alone (scaling
disabled).
"""

from __future__ import annotations

import copy
from typing import Any

from breakglass.sandbox.kubernetes.clock import SandboxClock
from breakglass.sandbox.kubernetes.conditions import set_condition
from breakglass.sandbox.kubernetes.store import AUTOSCALERS, DEPLOYMENTS, Store, is_terminating


class AutoscalerController:
    def __init__(self, store: Store, clock: SandboxClock) -> None:
        self._store = store
        self._clock = clock

    async def sync(self) -> bool:
        changed = False
        for resource in AUTOSCALERS:
            kind = self._store.kind_of(resource)
            for autoscaler in self._store.items(kind):
                if not is_terminating(autoscaler):
                    changed |= await self._sync_one(kind, autoscaler)
        return changed

    async def _sync_one(self, kind: Any, autoscaler: dict[str, Any]) -> bool:
        spec = autoscaler.get("spec") or {}
        target = spec.get("scaleTargetRef") or {}
        if target.get("kind") != "Deployment":
            return False
        deployments = self._store.kind_of(DEPLOYMENTS)
        namespace = autoscaler["metadata"]["namespace"]
        deployment = self._store.read(deployments, namespace, str(target.get("name", "")))
        if deployment is None:
            return False
        current = int(deployment["spec"].get("replicas", 1))
        low, high = int(spec.get("minReplicas", 1)), int(spec.get("maxReplicas", current))
        desired = current if current == 0 else min(max(current, low), high)
        changed = False
        if desired != current:
            deployment["spec"]["replicas"] = desired
            _, changed = await self._store.update(deployments, deployment)
        status = copy.deepcopy(autoscaler.get("status") or {})
        status["currentReplicas"] = int((deployment.get("status") or {}).get("replicas", 0))
        status["desiredReplicas"] = desired
        self._set_conditions(status, current, low, high)
        if status != autoscaler.get("status"):
            autoscaler["status"] = status
            _, updated = await self._store.update(kind, autoscaler)
            changed |= updated
        return changed

    def _set_conditions(self, status: dict[str, Any], current: int, low: int, high: int) -> None:
        now = self._clock.timestamp()
        if current == 0:
            set_condition(
                status,
                type_="ScalingActive",
                value="False",
                reason="ScalingDisabled",
                message="scaling is disabled since the replica count of the target is zero",
                now=now,
                update_time=False,
            )
            return
        set_condition(
            status,
            type_="AbleToScale",
            value="True",
            reason="ReadyForNewScale",
            message="recommended size matches current size",
            now=now,
            update_time=False,
        )
        set_condition(
            status,
            type_="ScalingActive",
            value="False",
            reason="FailedGetResourceMetric",
            message="the sandbox serves no metrics; replicas are only kept within the limits",
            now=now,
            update_time=False,
        )
        # The real controller sets ScalingLimited only when it computes a new size. Without
        # metrics that happens only when it clamps, so otherwise the last value stays.
        if current > high:
            set_condition(
                status,
                type_="ScalingLimited",
                value="True",
                reason="TooManyReplicas",
                message="the desired replica count is more than the maximum replica count",
                now=now,
                update_time=False,
            )
        elif current < low:
            set_condition(
                status,
                type_="ScalingLimited",
                value="True",
                reason="TooFewReplicas",
                message="the desired replica count is less than the minimum replica count",
                now=now,
                update_time=False,
            )
