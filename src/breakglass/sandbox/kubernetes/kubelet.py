"""The sandbox's kubelet: pod status, Job processes and container logs.

kmock runs no pods, so this module plays the kubelet. Pods of ReplicaSets and bare pods are
marked Running at once and Ready after `rollout_seconds` on the injected clock. A pod whose
template carries `sandbox.breakglass.dev/never-ready: "true"` never becomes Ready. Their
logs are synthetic. Pods of Jobs run their first container's `command` + `args` as a local process
(argv, no shell) in a scratch directory. The container's `env` and `envFrom` are resolved
from the sandbox's Secrets and ConfigMaps. The output becomes the container log, and the
exit code the container's terminated state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from breakglass.sandbox.kubernetes.clock import SandboxClock
from breakglass.sandbox.kubernetes.environment import ConfigError, expand, resolve_environment
from breakglass.sandbox.kubernetes.errors import bad_request
from breakglass.sandbox.kubernetes.processes import Outcome, run_process, start_failed
from breakglass.sandbox.kubernetes.store import JOBS, PODS, Store, is_terminating

logger = logging.getLogger(__name__)

NEVER_READY = "sandbox.breakglass.dev/never-ready"
RESTARTS = "sandbox.breakglass.dev/restarts"


@dataclass
class ContainerLog:
    """The log text of one container, current and (after a restart) previous."""

    current: str = ""
    previous: str | None = None


class Kubelet:
    def __init__(
        self,
        store: Store,
        clock: SandboxClock,
        lock: asyncio.Lock,
        on_change: Callable[[], Awaitable[None]],
        *,
        rollout_seconds: float,
        job_timeout: float,
        workdir: Path,
    ) -> None:
        self._store = store
        self._clock = clock
        self._lock = lock
        self._on_change = on_change
        self._rollout_seconds = rollout_seconds
        self._job_timeout = job_timeout
        self._workdir = workdir
        # Pod uid -> monotonic time at which the pod turns Ready; None means never.
        self._ready_at: dict[str, float | None] = {}
        self._logs: dict[tuple[str, str, str], ContainerLog] = {}
        self._processes: dict[str, asyncio.Task[None]] = {}

    # -- reconciling ------------------------------------------------------------------------

    async def sync(self) -> bool:
        pod_kind = self._store.kind_of(PODS)
        changed = False
        live: set[tuple[str, str]] = set()
        for pod in self._store.items(pod_kind):
            meta = pod["metadata"]
            live.add((meta["namespace"], meta["name"]))
            if is_terminating(pod) or meta["uid"] in self._processes:
                continue
            if _owner_kind(pod) == "Job":
                changed |= await self._sync_job_pod(pod)
            else:
                changed |= await self._sync_service_pod(pod)
        for key in [key for key in self._logs if key[:2] not in live]:
            del self._logs[key]
        live_uids = {pod["metadata"]["uid"] for pod in self._store.items(pod_kind)}
        for uid, task in list(self._processes.items()):
            if uid not in live_uids:
                # The pod was deleted: the kubelet kills its containers.
                task.cancel()
        for uid in set(self._ready_at) - live_uids:
            del self._ready_at[uid]
        return changed

    async def _sync_service_pod(self, pod: dict[str, Any]) -> bool:
        status = pod.get("status") or {}
        uid = pod["metadata"]["uid"]
        if not status.get("phase"):
            annotations = pod["metadata"].get("annotations") or {}
            never = annotations.get(NEVER_READY) == "true"
            self._ready_at[uid] = None if never else self._clock.monotonic() + self._rollout_seconds
            restarts = _restarts(pod)
            self._write_synthetic_logs(pod, restarts)
            pod["status"] = self._running_status(pod, ready=False, restarts=restarts)
        ready_at = self._ready_at.get(uid)
        if uid not in self._ready_at or pod["status"].get("phase") != "Running":
            # Pods that tests seeded with a status of their own keep it.
            return await self._save(pod)
        if ready_at is not None and self._clock.monotonic() >= ready_at:
            _set_ready(pod, True, self._clock.timestamp())
        return await self._save(pod)

    async def _save(self, pod: dict[str, Any]) -> bool:
        _, changed = await self._store.update(self._store.kind_of(PODS), pod)
        return changed

    def _running_status(self, pod: dict[str, Any], *, ready: bool, restarts: int) -> dict[str, Any]:
        now = self._clock.timestamp()
        statuses = []
        for container in pod["spec"].get("containers") or []:
            entry: dict[str, Any] = {
                "name": container["name"],
                "image": container.get("image", ""),
                "imageID": f"sandbox://{container.get('image', '')}",
                "containerID": f"sandbox://{pod['metadata']['uid']}/{container['name']}",
                "ready": ready,
                "started": True,
                "restartCount": restarts,
                "state": {"running": {"startedAt": now}},
            }
            if restarts:
                entry["lastState"] = {
                    "terminated": {
                        "exitCode": 1,
                        "reason": "Error",
                        "startedAt": now,
                        "finishedAt": now,
                    }
                }
            statuses.append(entry)
        return {
            "phase": "Running",
            "startTime": now,
            "qosClass": "BestEffort",
            "conditions": [
                {"type": "Initialized", "status": "True", "lastTransitionTime": now},
                {"type": "Ready", "status": str(ready), "lastTransitionTime": now},
                {"type": "ContainersReady", "status": str(ready), "lastTransitionTime": now},
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
            ],
            "containerStatuses": statuses,
        }

    def _write_synthetic_logs(self, pod: dict[str, Any], restarts: int) -> None:
        meta = pod["metadata"]
        for container in pod["spec"].get("containers") or []:
            name = container["name"]
            image = container.get("image", "")
            current = (
                f"sandbox: container {name} of pod {meta['name']} started from image {image}\n"
            )
            previous = (
                f"sandbox: container {name} of pod {meta['name']} exited with code 1 "
                f"before restart {restarts}\n"
                if restarts
                else None
            )
            self._logs[(meta["namespace"], meta["name"], name)] = ContainerLog(current, previous)

    # -- Jobs -------------------------------------------------------------------------------

    async def _sync_job_pod(self, pod: dict[str, Any]) -> bool:
        status = pod.get("status") or {}
        if status.get("phase") not in (None, "Pending"):
            return False
        container = pod["spec"]["containers"][0]
        try:
            env = resolve_environment(self._store, pod, container, self._scratch(pod))
        except ConfigError as e:
            pod["status"] = self._waiting_status(pod, "CreateContainerConfigError", str(e))
            return await self._save(pod)
        argv = [
            expand(part, env)
            for part in (container.get("command") or []) + (container.get("args") or [])
        ]
        if not container.get("command"):
            outcome = start_failed(
                "the sandbox runs a Job container's command as a local process and this "
                f"container ({container['name']}) has no command; set command (and args)",
                self._clock,
            )
            return await self._finish(pod, outcome, restarts=0, timed_out_by=None)
        pod["status"] = self._running_status(pod, ready=True, restarts=0)
        changed = await self._save(pod)
        task = asyncio.create_task(
            self._run_job_pod(pod, argv, env, self._restart_limit(pod)),
            name=f"sandbox-pod-{pod['metadata']['name']}",
        )
        self._processes[pod["metadata"]["uid"]] = task
        return changed

    def _restart_limit(self, pod: dict[str, Any]) -> int:
        """Return how often a failed container restarts in place (OnFailure: the backoffLimit)."""
        if pod["spec"].get("restartPolicy") != "OnFailure":
            return 0
        owner: dict[str, Any] = next(
            (ref for ref in pod["metadata"].get("ownerReferences") or [] if ref.get("controller")),
            {},
        )
        job = self._store.read(
            self._store.kind_of(JOBS), pod["metadata"]["namespace"], owner.get("name", "")
        )
        return int(((job or {}).get("spec") or {}).get("backoffLimit", 6))

    def _waiting_status(self, pod: dict[str, Any], reason: str, message: str) -> dict[str, Any]:
        now = self._clock.timestamp()
        return {
            "phase": "Pending",
            "startTime": (pod.get("status") or {}).get("startTime", now),
            "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": now}],
            "containerStatuses": [
                {
                    "name": container["name"],
                    "image": container.get("image", ""),
                    "imageID": "",
                    "ready": False,
                    "started": False,
                    "restartCount": 0,
                    "state": {"waiting": {"reason": reason, "message": message}},
                }
                for container in pod["spec"].get("containers") or []
            ],
        }

    def _scratch(self, pod: dict[str, Any]) -> Path:
        path = self._workdir / f"{pod['metadata']['namespace']}.{pod['metadata']['name']}"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _timeout(self, pod: dict[str, Any]) -> tuple[float, str]:
        """Return the process timeout in real seconds and what set it."""
        deadline = pod["spec"].get("activeDeadlineSeconds")
        if deadline is not None and float(deadline) <= self._job_timeout:
            return float(deadline), "activeDeadlineSeconds"
        return self._job_timeout, "job_timeout"

    async def _run_job_pod(
        self, pod: dict[str, Any], argv: list[str], env: dict[str, str], restart_limit: int
    ) -> None:
        meta = pod["metadata"]
        key = (meta["namespace"], meta["name"], pod["spec"]["containers"][0]["name"])
        try:
            restarts = 0
            previous: str | None = None
            while True:
                timeout, timed_by = self._timeout(pod)
                outcome = await run_process(argv, env, self._scratch(pod), timeout, self._clock)
                self._logs[key] = ContainerLog(outcome.output, previous)
                failed = outcome.reason in ("Error", "StartError")
                if not (failed and restarts < restart_limit):
                    break
                restarts += 1
                previous = outcome.output
            async with self._lock:
                await self._finish(pod, outcome, restarts=restarts, timed_out_by=timed_by)
        finally:
            self._processes.pop(meta["uid"], None)
        try:
            await self._on_change()
        except Exception:
            # No caller awaits this task, so a raised error would vanish. The next request
            # or settle() reconciles again.
            logger.exception(
                "reconciling after pod %s/%s finished failed", meta["namespace"], meta["name"]
            )

    async def _finish(
        self, pod: dict[str, Any], outcome: Outcome, *, restarts: int, timed_out_by: str | None
    ) -> bool:
        """Record a Job container's end on its pod. Callers hold the lock."""
        current = self._store.read(
            self._store.kind_of(PODS), pod["metadata"]["namespace"], pod["metadata"]["name"]
        )
        if current is None:
            return False

        meta = current["metadata"]
        container = current["spec"]["containers"][0]
        self._logs.setdefault(
            (meta["namespace"], meta["name"], container["name"]), ContainerLog(outcome.output)
        )

        succeeded = outcome.exit_code == 0
        terminated = {
            "exitCode": outcome.exit_code,
            "reason": "Error" if outcome.reason == "DeadlineExceeded" else outcome.reason,
            "startedAt": outcome.started_at,
            "finishedAt": outcome.finished_at,
            "containerID": f"sandbox://{meta['uid']}/{container['name']}",
        }
        if outcome.reason == "StartError":
            terminated["message"] = outcome.output.strip()

        status = self._running_status(current, ready=False, restarts=restarts)
        status["phase"] = "Succeeded" if succeeded else "Failed"
        status["containerStatuses"][0].update(state={"terminated": terminated}, started=False)
        status["containerStatuses"][0].pop("lastState", None)
        if outcome.reason == "DeadlineExceeded":
            status["reason"] = "DeadlineExceeded"
            status["message"] = (
                "Pod was active on the node longer than the specified deadline"
                if timed_out_by == "activeDeadlineSeconds"
                else f"the sandbox stops Job processes after {self._job_timeout:g} s (job_timeout)"
            )

        current["status"] = status
        return await self._save(current)

    # -- logs -------------------------------------------------------------------------------

    def read_log(self, pod: dict[str, Any], container: str | None, previous: bool) -> str:
        """Return a container's log as `GET .../pods/NAME/log` does, or raise its 400."""
        name = pod["metadata"]["name"]
        names = [c["name"] for c in pod["spec"].get("containers") or []]
        if container is None:
            if len(names) != 1:
                raise bad_request(
                    f"a container name must be specified for pod {name}, choose one of: [{' '.join(names)}]"
                )
            container = names[0]
        if container not in names:
            raise bad_request(f"container {container} is not valid for pod {name}")
        log = self._logs.get((pod["metadata"]["namespace"], name, container))
        if previous:
            if log is None or log.previous is None:
                raise bad_request(
                    f'previous terminated container "{container}" in pod "{name}" not found'
                )
            return log.previous
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            waiting = (status.get("state") or {}).get("waiting")
            if status.get("name") == container and waiting:
                reason = waiting.get("reason", "ContainerCreating")
                raise bad_request(
                    f'container "{container}" in pod "{name}" is waiting to start: {reason}'
                )
        return log.current if log else ""

    def set_log(
        self, namespace: str, pod: str, container: str, text: str, *, previous: bool = False
    ) -> None:
        log = self._logs.setdefault((namespace, pod, container), ContainerLog())
        if previous:
            log.previous = text
        else:
            log.current = text

    # -- lifecycle --------------------------------------------------------------------------

    def running(self) -> list[str]:
        """Return the names of the tasks running Job processes."""
        return [task.get_name() for task in self._processes.values()]

    async def wait_idle(self, timeout: float | None = None) -> None:
        """Wait until no Job process runs; raise TimeoutError naming them if some still do."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while self._processes:
            remaining = None if deadline is None else max(0.0, deadline - loop.time())
            _, pending = await asyncio.wait(list(self._processes.values()), timeout=remaining)
            if pending and deadline is not None and loop.time() >= deadline:
                raise TimeoutError(f"Job processes still running: {', '.join(self.running())}")

    async def shutdown(self) -> None:
        """Kill every Job process and wait for their tasks to end."""
        tasks = list(self._processes.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _owner_kind(pod: dict[str, Any]) -> str | None:
    for reference in pod["metadata"].get("ownerReferences") or []:
        if reference.get("controller"):
            return str(reference.get("kind"))
    return None


def _restarts(pod: dict[str, Any]) -> int:
    value = (pod["metadata"].get("annotations") or {}).get(RESTARTS, "0")
    try:
        return max(0, int(value))
    except ValueError:
        logger.warning(
            "pod %s: annotation %s=%r is not a whole number; treating it as 0 restarts",
            pod["metadata"]["name"],
            RESTARTS,
            value,
        )
        return 0


def _set_ready(pod: dict[str, Any], ready: bool, now: str) -> None:
    status = pod["status"]
    for condition in status.get("conditions") or []:
        if condition["type"] in ("Ready", "ContainersReady") and condition["status"] != str(ready):
            condition.update(status=str(ready), lastTransitionTime=now)
    for container in status.get("containerStatuses") or []:
        container["ready"] = ready
