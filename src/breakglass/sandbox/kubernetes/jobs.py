"""The Job controller: one pod at a time until `completions` succeed or `backoffLimit` is spent.

The kubelet runs each pod's process; this controller creates the pods, counts them into the
Job's status, and sets the Complete or Failed condition. The real controller waits 10 s,
20 s, 40 s ... between retries of failed pods; the sandbox retries at once. The TTL
controller's `ttlSecondsAfterFinished` is honoured on the injected clock.
"""

from __future__ import annotations

import copy
from typing import Any

from breakglass.sandbox.kubernetes.api import Api, Target
from breakglass.sandbox.kubernetes.clock import SandboxClock
from breakglass.sandbox.kubernetes.conditions import find_condition, is_ready, set_condition
from breakglass.sandbox.kubernetes.store import (
    JOBS,
    PODS,
    Store,
    controlled_by,
    is_terminating,
    owner_reference,
    random_suffix,
)


class JobController:
    def __init__(self, store: Store, api: Api, clock: SandboxClock) -> None:
        self._store = store
        self._api = api
        self._clock = clock
        # Job uid -> monotonic time at which the Job finished, for ttlSecondsAfterFinished.
        self._finished_at: dict[str, float] = {}

    async def sync(self) -> bool:
        kind = self._store.kind_of(JOBS)
        changed = False
        for job in self._store.items(kind):
            if is_terminating(job):
                continue
            if _finished(job):
                changed |= await self._expire(job)
            else:
                changed |= await self._sync_one(job)
        return changed

    async def _sync_one(self, job: dict[str, Any]) -> bool:
        spec = job["spec"]
        namespace = job["metadata"]["namespace"]
        pod_kind = self._store.kind_of(PODS)
        job_uid = job["metadata"]["uid"]
        pods = self._store.items(pod_kind, namespace, where=lambda pod: controlled_by(pod, job_uid))

        phases = [(pod.get("status") or {}).get("phase") for pod in pods]
        succeeded = phases.count("Succeeded")
        failed = phases.count("Failed")
        active = len(pods) - succeeded - failed
        completions = int(spec.get("completions") or 1)
        backoff_limit = int(spec.get("backoffLimit", 6))
        # Container restarts (restartPolicy OnFailure) count toward backoffLimit as failures do.
        failures = failed + sum(_restart_count(pod) for pod in pods)

        changed = False
        can_retry = failures <= backoff_limit and not _deadline_hit(pods)
        if active == 0 and succeeded < completions and can_retry:
            await self._create_pod(job)
            active, changed = 1, True

        status = copy.deepcopy(job.get("status") or {})
        now = self._clock.timestamp()
        status.setdefault("startTime", now)
        for field, count in (("active", active), ("succeeded", succeeded), ("failed", failed)):
            if count:
                status[field] = count
            else:
                status.pop(field, None)
        status["ready"] = sum(1 for pod in pods if is_ready(pod))

        if succeeded >= completions:
            status["completionTime"] = now
            set_condition(
                status,
                type_="Complete",
                value="True",
                reason="",
                message="",
                now=now,
                update_time=False,
            )
            _drop_empty_reason(status, "Complete")
        elif _deadline_hit(pods):
            set_condition(
                status,
                type_="Failed",
                value="True",
                reason="DeadlineExceeded",
                message="Job was active longer than specified deadline",
                now=now,
                update_time=False,
            )
        elif failures > backoff_limit:
            set_condition(
                status,
                type_="Failed",
                value="True",
                reason="BackoffLimitExceeded",
                message="Job has reached the specified backoff limit",
                now=now,
                update_time=False,
            )

        if status != job.get("status"):
            job["status"] = status
            _, updated = await self._store.update(self._store.kind_of(JOBS), job)
            changed |= updated
        if _finished(job):
            self._finished_at[job["metadata"]["uid"]] = self._clock.monotonic()
        return changed

    async def _create_pod(self, job: dict[str, Any]) -> None:
        template = copy.deepcopy(job["spec"]["template"])
        template_meta = template.get("metadata") or {}
        pod: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"{job['metadata']['name']}-{random_suffix()}",
                "labels": template_meta.get("labels") or {},
                "annotations": template_meta.get("annotations") or {},
                "ownerReferences": [owner_reference(job)],
            },
            "spec": {**template["spec"], "nodeName": "sandbox"},
        }
        deadline = job["spec"].get("activeDeadlineSeconds")
        if deadline is not None:
            pod["spec"]["activeDeadlineSeconds"] = deadline
        await self._api.create(Target(self._store.kind_of(PODS), job["metadata"]["namespace"]), pod)

    async def _expire(self, job: dict[str, Any]) -> bool:
        ttl = job["spec"].get("ttlSecondsAfterFinished")
        uid = job["metadata"]["uid"]
        finished_at = self._finished_at.setdefault(uid, self._clock.monotonic())
        if ttl is None or self._clock.monotonic() - finished_at < float(ttl):
            return False
        await self._store.delete(
            self._store.kind_of(JOBS), job["metadata"]["namespace"], job["metadata"]["name"]
        )
        self._finished_at.pop(uid, None)
        return True


def _finished(job: dict[str, Any]) -> bool:
    return any(
        (find_condition(job.get("status"), type_) or {}).get("status") == "True"
        for type_ in ("Complete", "Failed")
    )


def _deadline_hit(pods: list[dict[str, Any]]) -> bool:
    return any((pod.get("status") or {}).get("reason") == "DeadlineExceeded" for pod in pods)


def _restart_count(pod: dict[str, Any]) -> int:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return sum(int(status.get("restartCount", 0)) for status in statuses)


def _drop_empty_reason(status: dict[str, Any], type_: str) -> None:
    """Remove an empty reason and message, which Kubernetes 1.26 (the version the sandbox
    reports) leaves off the Complete condition."""
    for condition in status.get("conditions") or []:
        if condition.get("type") == type_:
            for field in ("reason", "message"):
                if condition.get(field) == "":
                    del condition[field]
