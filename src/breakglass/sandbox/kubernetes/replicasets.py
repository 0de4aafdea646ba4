"""The ReplicaSet controller: each ReplicaSet's pod count follows `spec.replicas`.

Surplus pods go not-ready first and newest first, as the real controller ranks them. The
status counts pods, ready pods and pods whose labels match the template.
"""

from __future__ import annotations

import copy
from typing import Any

from breakglass.sandbox.kubernetes.api import Api, Target
from breakglass.sandbox.kubernetes.conditions import is_ready
from breakglass.sandbox.kubernetes.store import (
    PODS,
    REPLICASETS,
    Store,
    controlled_by,
    is_terminating,
    owner_reference,
    random_suffix,
)


class ReplicaSetController:
    """Keeps each ReplicaSet's pod count at `spec.replicas` and reports pod readiness."""

    def __init__(self, store: Store, api: Api) -> None:
        self._store = store
        self._api = api

    async def sync(self) -> bool:
        rs_kind = self._store.kind_of(REPLICASETS)
        changed = False
        for rs in self._store.items(rs_kind):
            if not is_terminating(rs):
                changed |= await self._sync_one(rs)
        return changed

    async def _sync_one(self, rs: dict[str, Any]) -> bool:
        pod_kind = self._store.kind_of(PODS)
        namespace = rs["metadata"]["namespace"]
        uid = rs["metadata"]["uid"]
        pods = self._store.items(
            pod_kind,
            namespace,
            where=lambda pod: controlled_by(pod, uid) and not is_terminating(pod),
        )

        desired = int(rs["spec"].get("replicas", 1))
        changed = False
        for _ in range(desired - len(pods)):
            pods.append(await self._create_pod(rs))
            changed = True

        # Not-ready pods go first and then the newest, as the real controller ranks them.
        newest_first = sorted(
            pods, key=lambda pod: pod["metadata"]["creationTimestamp"], reverse=True
        )
        ranked = sorted(newest_first, key=is_ready)
        surplus = ranked[: max(0, len(pods) - desired)]
        for pod in surplus:
            await self._store.delete(pod_kind, namespace, pod["metadata"]["name"])
            pods.remove(pod)
            changed = True

        ready = sum(1 for pod in pods if is_ready(pod))
        labels = (rs["spec"]["template"].get("metadata") or {}).get("labels") or {}
        labelled = sum(
            1
            for pod in pods
            if all(pod["metadata"].get("labels", {}).get(k) == v for k, v in labels.items())
        )
        status = {
            "replicas": len(pods),
            "fullyLabeledReplicas": labelled,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "observedGeneration": rs["metadata"].get("generation", 1),
        }
        # The API omits zero counts (omitempty) except `replicas`.
        status = {key: value for key, value in status.items() if value or key == "replicas"}

        if rs.get("status") != status:
            rs["status"] = status
            _, updated = await self._store.update(self._store.kind_of(REPLICASETS), rs)
            changed |= updated
        return changed

    async def _create_pod(self, rs: dict[str, Any]) -> dict[str, Any]:
        template = copy.deepcopy(rs["spec"]["template"])
        template_meta = template.get("metadata") or {}
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"{rs['metadata']['name']}-{random_suffix()}",
                "labels": template_meta.get("labels") or {},
                "annotations": template_meta.get("annotations") or {},
                "ownerReferences": [owner_reference(rs)],
            },
            "spec": {**template["spec"], "nodeName": "sandbox"},
        }
        target = Target(self._store.kind_of(PODS), rs["metadata"]["namespace"])
        return await self._api.create(target, pod)
