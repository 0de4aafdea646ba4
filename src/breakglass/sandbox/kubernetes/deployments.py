"""The Deployment controller, as kube-controller-manager runs it.

A Deployment owns one ReplicaSet per distinct pod template. On a template change the
controller re-uses the ReplicaSet whose template equals the new one (ignoring the
`pod-template-hash` label), giving it the next revision and recording its old revision in
`deployment.kubernetes.io/revision-history`, or creates `NAME-HASH` with the next revision.
The new ReplicaSet is scaled to `spec.replicas`. The old ones go to zero once the new pods
are all available, or at once for the Recreate strategy. Scaled-down ReplicaSets beyond
`revisionHistoryLimit` are deleted, oldest revision first.

The real controller surges and drains pods in steps bounded by maxSurge and maxUnavailable.
The sandbox runs the new ReplicaSet at full size next to the old ones until it is
available. The end state and the final conditions are the same, the pod counts on the way
are not.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from typing import Any

from breakglass.sandbox.kubernetes.api import Api, Target
from breakglass.sandbox.kubernetes.clock import SandboxClock
from breakglass.sandbox.kubernetes.conditions import set_condition
from breakglass.sandbox.kubernetes.store import (
    DEPLOYMENTS,
    REPLICASETS,
    SUFFIX_ALPHABET,
    Store,
    controlled_by,
    is_terminating,
    owner_reference,
)

REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
CHANGE_CAUSE = "kubernetes.io/change-cause"
POD_TEMPLATE_HASH = "pod-template-hash"


def revision(obj: dict[str, Any]) -> int:
    try:
        return int((obj["metadata"].get("annotations") or {}).get(REVISION, "0"))
    except ValueError:
        return 0


def without_hash(template: dict[str, Any] | None) -> dict[str, Any]:
    """Return the template without its pod-template-hash label and without empty fields."""
    copied = copy.deepcopy(template or {})
    labels = (copied.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(POD_TEMPLATE_HASH, None)
    pruned: dict[str, Any] = _pruned(copied)
    return pruned


def _pruned(value: Any) -> Any:
    """Drop nulls and empty maps and lists, which Kubernetes' semantic equality ignores."""
    if isinstance(value, dict):
        pruned = {key: _pruned(item) for key, item in value.items()}
        return {key: item for key, item in pruned.items() if item not in (None, {}, [])}
    if isinstance(value, list):
        return [_pruned(item) for item in value]
    return value


def templates_equal(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    return without_hash(a) == without_hash(b)


def template_hash(template: dict[str, Any], collisions: int = 0) -> str:
    """Return a 10-character hash of the template, in Kubernetes' safe alphabet."""
    text = json.dumps(without_hash(template), sort_keys=True) + f"/{collisions}"
    number = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")
    encoded = ""
    for _ in range(10):
        number, digit = divmod(number, len(SUFFIX_ALPHABET))
        encoded += SUFFIX_ALPHABET[digit]
    return encoded


def _resolve(value: Any, replicas: int, *, round_up: bool) -> int:
    """Resolve an int-or-percent (maxSurge, maxUnavailable) against a replica count."""
    if isinstance(value, str) and value.endswith("%"):
        fraction = replicas * float(value[:-1]) / 100
        return math.ceil(fraction) if round_up else math.floor(fraction)
    return int(value or 0)


class DeploymentController:
    """Rolls Deployments out through ReplicaSets and reports their status and conditions."""

    def __init__(self, store: Store, api: Api, clock: SandboxClock) -> None:
        self._store = store
        self._api = api
        self._clock = clock
        # Deployment uid -> (monotonic time of the last progress, new RS name, ready pods).
        self._progress: dict[str, tuple[float, str, int]] = {}

    async def sync(self) -> bool:
        kind = self._store.kind_of(DEPLOYMENTS)
        changed = False
        deployments = self._store.items(kind)
        for deployment in deployments:
            if not is_terminating(deployment):
                changed |= await self._sync_one(deployment)
        live = {deployment["metadata"]["uid"] for deployment in deployments}
        for uid in set(self._progress) - live:
            del self._progress[uid]
        return changed

    def _owned(self, deployment: dict[str, Any]) -> list[dict[str, Any]]:
        rs_kind = self._store.kind_of(REPLICASETS)
        uid = deployment["metadata"]["uid"]
        return self._store.items(
            rs_kind,
            deployment["metadata"]["namespace"],
            where=lambda rs: controlled_by(rs, uid) and not is_terminating(rs),
        )

    async def _sync_one(self, deployment: dict[str, Any]) -> bool:
        spec = deployment["spec"]
        replica_sets = self._owned(deployment)
        new_rs = next(
            (
                rs
                for rs in replica_sets
                if templates_equal(rs["spec"]["template"], spec["template"])
            ),
            None,
        )
        old = [rs for rs in replica_sets if rs is not new_rs]
        changed = False
        if spec.get("paused"):
            changed |= await self._scale_paused(deployment, new_rs, old)
        else:
            if new_rs is None:
                new_rs = await self._create_replica_set(deployment, old)
                changed = True
            else:
                new_rs, bumped = await self._adopt(deployment, new_rs, old)
                changed |= bumped
            changed |= await self._roll(deployment, new_rs, old)
        changed |= await self._clean_up(deployment, new_rs)
        changed |= await self._report(deployment, new_rs)
        return changed

    async def _create_replica_set(
        self, deployment: dict[str, Any], old: list[dict[str, Any]]
    ) -> dict[str, Any]:
        meta, spec = deployment["metadata"], deployment["spec"]
        rs_kind = self._store.kind_of(REPLICASETS)
        collisions = 0
        while True:
            pod_hash = template_hash(spec["template"], collisions)
            name = f"{meta['name']}-{pod_hash}"
            if self._store.read(rs_kind, meta["namespace"], name) is None:
                break
            # Another template hashed to this name: the real controller bumps collisionCount.
            collisions += 1

        template = copy.deepcopy(spec["template"])
        labels = {
            **((template.setdefault("metadata", {})).get("labels") or {}),
            POD_TEMPLATE_HASH: pod_hash,
        }
        template["metadata"]["labels"] = labels
        selector = copy.deepcopy(spec["selector"])
        selector["matchLabels"] = {
            **(selector.get("matchLabels") or {}),
            POD_TEMPLATE_HASH: pod_hash,
        }

        annotations = {
            REVISION: str(max((revision(rs) for rs in old), default=0) + 1),
            **self._replica_annotations(deployment),
        }
        rs = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": name,
                "labels": labels,
                "annotations": annotations,
                "ownerReferences": [owner_reference(deployment)],
            },
            "spec": {
                "replicas": 0
                if _recreate(spec) and any(_has_pods(rs) for rs in old)
                else spec["replicas"],
                "minReadySeconds": spec.get("minReadySeconds", 0),
                "selector": selector,
                "template": template,
            },
        }

        created = await self._api.create(Target(rs_kind, meta["namespace"]), rs)
        self._progress[meta["uid"]] = (self._clock.monotonic(), name, 0)
        return created

    def _replica_annotations(self, deployment: dict[str, Any]) -> dict[str, str]:
        spec = deployment["spec"]
        replicas = int(spec["replicas"])
        surge = (spec.get("strategy") or {}).get("rollingUpdate", {}).get("maxSurge", "25%")
        annotations = {
            DESIRED_REPLICAS: str(replicas),
            MAX_REPLICAS: str(
                replicas + (0 if _recreate(spec) else _resolve(surge, replicas, round_up=True))
            ),
        }
        cause = (deployment["metadata"].get("annotations") or {}).get(CHANGE_CAUSE)
        if cause is not None:
            annotations[CHANGE_CAUSE] = cause
        return annotations

    async def _adopt(
        self, deployment: dict[str, Any], rs: dict[str, Any], old: list[dict[str, Any]]
    ) -> tuple[dict[str, Any], bool]:
        """Give a re-used ReplicaSet the next revision, recording the one it had."""
        annotations = rs["metadata"].setdefault("annotations", {})
        current = revision(rs)
        next_revision = max((revision(other) for other in old), default=0) + 1
        if current < next_revision:
            annotations[REVISION] = str(next_revision)
            history = [part for part in annotations.get(REVISION_HISTORY, "").split(",") if part]
            annotations[REVISION_HISTORY] = ",".join([*history, str(current)])
            self._progress[deployment["metadata"]["uid"]] = (
                self._clock.monotonic(),
                rs["metadata"]["name"],
                0,
            )
        annotations.update(self._replica_annotations(deployment))
        stored, changed = await self._store.update(self._store.kind_of(REPLICASETS), rs)
        return stored, changed

    async def _roll(
        self, deployment: dict[str, Any], new_rs: dict[str, Any], old: list[dict[str, Any]]
    ) -> bool:
        spec = deployment["spec"]
        replicas = int(spec["replicas"])
        changed = False
        if _recreate(spec):
            for rs in old:
                changed |= await self._set_replicas(rs, 0)
            if any(_has_pods(rs) for rs in old):
                return changed
        changed |= await self._set_replicas(new_rs, replicas)
        available = int((new_rs.get("status") or {}).get("availableReplicas", 0))
        if new_rs["spec"].get("replicas") == replicas and available >= replicas:
            for rs in old:
                changed |= await self._set_replicas(rs, 0)
        return changed

    async def _scale_paused(
        self,
        deployment: dict[str, Any],
        new_rs: dict[str, Any] | None,
        old: list[dict[str, Any]],
    ) -> bool:
        """Scale the active ReplicaSet to spec.replicas; a paused Deployment creates none."""
        candidates = [new_rs] if new_rs is not None else old
        active = max(candidates, key=revision, default=None)
        if active is None:
            return False
        return await self._set_replicas(active, int(deployment["spec"]["replicas"]))

    async def _set_replicas(self, rs: dict[str, Any], replicas: int) -> bool:
        if rs["spec"].get("replicas") == replicas:
            return False
        rs["spec"]["replicas"] = replicas
        stored, changed = await self._store.update(self._store.kind_of(REPLICASETS), rs)
        rs.clear()
        rs.update(stored)
        return changed

    async def _clean_up(self, deployment: dict[str, Any], new_rs: dict[str, Any] | None) -> bool:
        """Delete scaled-down ReplicaSets beyond revisionHistoryLimit, oldest revision first."""
        limit = int(deployment["spec"].get("revisionHistoryLimit", 10))
        new_name = new_rs["metadata"]["name"] if new_rs else None
        idle = sorted(
            (
                rs
                for rs in self._owned(deployment)
                if rs["metadata"]["name"] != new_name
                and rs["spec"].get("replicas") == 0
                and not (rs.get("status") or {}).get("replicas")
            ),
            key=revision,
        )
        rs_kind = self._store.kind_of(REPLICASETS)
        for rs in idle[: max(0, len(idle) - limit)]:
            await self._store.delete(rs_kind, rs["metadata"]["namespace"], rs["metadata"]["name"])
        return len(idle) > limit

    async def _report(self, deployment: dict[str, Any], new_rs: dict[str, Any] | None) -> bool:
        kind = self._store.kind_of(DEPLOYMENTS)
        fresh = self._store.read(
            kind, deployment["metadata"]["namespace"], deployment["metadata"]["name"]
        )
        if fresh is None:
            return False
        replica_sets = self._owned(fresh)
        new_name = new_rs["metadata"]["name"] if new_rs else None
        new_rs = next((rs for rs in replica_sets if rs["metadata"]["name"] == new_name), None)
        if new_rs is not None:
            fresh["metadata"].setdefault("annotations", {})[REVISION] = str(revision(new_rs))
        fresh["status"] = self._status(fresh, new_rs, replica_sets)
        _, changed = await self._store.update(kind, fresh)
        return changed

    def _status(
        self,
        deployment: dict[str, Any],
        new_rs: dict[str, Any] | None,
        replica_sets: list[dict[str, Any]],
    ) -> dict[str, Any]:
        spec = deployment["spec"]
        desired = int(spec["replicas"])

        def total(field: str, sets: list[dict[str, Any]]) -> int:
            return sum(int((rs.get("status") or {}).get(field, 0)) for rs in sets)

        status = copy.deepcopy(deployment.get("status") or {})
        status.update(
            observedGeneration=deployment["metadata"].get("generation", 1),
            replicas=total("replicas", replica_sets),
            updatedReplicas=total("replicas", [new_rs] if new_rs else []),
            readyReplicas=total("readyReplicas", replica_sets),
            availableReplicas=total("availableReplicas", replica_sets),
        )
        unavailable = max(0, desired - status["availableReplicas"])
        if unavailable:
            status["unavailableReplicas"] = unavailable
        else:
            status.pop("unavailableReplicas", None)
        for field in ("readyReplicas", "availableReplicas", "updatedReplicas", "replicas"):
            if not status[field]:
                # The API omits zero counts (omitempty), so clients see them absent.
                status.pop(field)
        now = self._clock.timestamp()
        self._set_available(status, spec, desired, now)
        self._set_progressing(deployment, status, new_rs, desired, now)
        return status

    def _set_available(
        self, status: dict[str, Any], spec: dict[str, Any], desired: int, now: str
    ) -> None:
        rolling = (spec.get("strategy") or {}).get("rollingUpdate") or {}
        max_unavailable = (
            0
            if _recreate(spec)
            else _resolve(rolling.get("maxUnavailable", "25%"), desired, round_up=False)
        )
        if status.get("availableReplicas", 0) >= desired - max_unavailable:
            set_condition(
                status,
                type_="Available",
                value="True",
                reason="MinimumReplicasAvailable",
                message="Deployment has minimum availability.",
                now=now,
            )
        else:
            set_condition(
                status,
                type_="Available",
                value="False",
                reason="MinimumReplicasUnavailable",
                message="Deployment does not have minimum availability.",
                now=now,
            )

    def _set_progressing(
        self,
        deployment: dict[str, Any],
        status: dict[str, Any],
        new_rs: dict[str, Any] | None,
        desired: int,
        now: str,
    ) -> None:
        if deployment["spec"].get("paused"):
            set_condition(
                status,
                type_="Progressing",
                value="Unknown",
                reason="DeploymentPaused",
                message="Deployment is paused",
                now=now,
            )
            return
        if new_rs is None:
            return
        name = new_rs["metadata"]["name"]
        uid = deployment["metadata"]["uid"]
        ready = int((new_rs.get("status") or {}).get("readyReplicas", 0))
        started, tracked, seen_ready = self._progress.get(uid, (self._clock.monotonic(), name, 0))
        if tracked != name or ready > seen_ready:
            started, seen_ready = self._clock.monotonic(), ready
        self._progress[uid] = (started, name, seen_ready)
        complete = (
            status.get("updatedReplicas", 0) == desired
            and status.get("replicas", 0) == desired
            and status.get("availableReplicas", 0) == desired
        )
        deadline = float(deployment["spec"].get("progressDeadlineSeconds", 600))
        if complete:
            set_condition(
                status,
                type_="Progressing",
                value="True",
                reason="NewReplicaSetAvailable",
                message=f'ReplicaSet "{name}" has successfully progressed.',
                now=now,
            )
        elif self._clock.monotonic() - started > deadline:
            set_condition(
                status,
                type_="Progressing",
                value="False",
                reason="ProgressDeadlineExceeded",
                message=f'ReplicaSet "{name}" has timed out progressing.',
                now=now,
            )
        else:
            set_condition(
                status,
                type_="Progressing",
                value="True",
                reason="ReplicaSetUpdated",
                message=f'ReplicaSet "{name}" is progressing.',
                now=now,
            )


def _recreate(spec: dict[str, Any]) -> bool:
    return (spec.get("strategy") or {}).get("type") == "Recreate"


def _has_pods(rs: dict[str, Any]) -> bool:
    return bool(rs["spec"].get("replicas") or (rs.get("status") or {}).get("replicas"))
