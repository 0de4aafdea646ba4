"""kmock's Kubernetes emulator with the parts of an API server and a control plane it lacks.

kmock stores and serves objects, but fills in no metadata, ignores selectors, has no PUT,
no subresources and no controllers, and its path parser fails on `/api/v1/namespaces`.
`SandboxEmulator` serves every resource path itself on top of kmock's object store and
event buses: CRUD, list and watch with selectors, and the `status`, `scale` and pod `log`
subresources. It runs the controllers after each write. Discovery (`/api`, `/apis`,
`/version`) and any other path go to kmock.

Before serving a request it reconciles, so a client that polls reads the state the
controllers reach at the injected clock's current time. With `instant_jobs` it also waits
for running Job processes first, so that Jobs take no time on the injected clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import aiohttp.web
import kmock

from breakglass.sandbox.kubernetes.api import Api, Target
from breakglass.sandbox.kubernetes.autoscaling import AutoscalerController
from breakglass.sandbox.kubernetes.clock import SandboxClock
from breakglass.sandbox.kubernetes.deployments import DeploymentController
from breakglass.sandbox.kubernetes.errors import ApiError, bad_request
from breakglass.sandbox.kubernetes.garbage import GarbageCollector
from breakglass.sandbox.kubernetes.jobs import JobController
from breakglass.sandbox.kubernetes.kubelet import Kubelet
from breakglass.sandbox.kubernetes.patching import STRATEGIC_MERGE_PATCH
from breakglass.sandbox.kubernetes.replicasets import ReplicaSetController
from breakglass.sandbox.kubernetes.selectors import (
    FieldSelector,
    LabelSelector,
    parse_field_selector,
    parse_label_selector,
)
from breakglass.sandbox.kubernetes.store import NAMESPACES, PODS, Store

logger = logging.getLogger(__name__)

# Reconciling stops when a pass changes nothing. A rollout takes about five passes, so
# reaching this bound means two controllers keep undoing each other.
_MAX_PASSES = 50
_NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})


class Controller(Protocol):
    async def sync(self) -> bool: ...


@dataclass(frozen=True)
class ApiPath:
    """A resource URL taken apart: `/apis/GROUP/VERSION/namespaces/NS/PLURAL/NAME/SUB`."""

    resource: kmock.resource
    namespace: str | None
    name: str | None
    subresource: str | None


def parse_api_path(path: str) -> ApiPath | None:
    """Parse a resource path; return None for discovery and non-API paths."""
    segments = [segment for segment in path.split("/") if segment]
    if len(segments) >= 2 and segments[0] == "api":
        group, version, rest = "", segments[1], segments[2:]
    elif len(segments) >= 3 and segments[0] == "apis":
        group, version, rest = segments[1], segments[2], segments[3:]
    else:
        return None
    if not rest:
        return None
    namespace: str | None = None
    if rest[0] == "namespaces" and (
        len(rest) <= 2 or (len(rest) == 3 and rest[2] in _NAMESPACE_SUBRESOURCES)
    ):
        plural, tail = "namespaces", rest[1:]
    elif rest[0] == "namespaces":
        namespace, plural, tail = rest[1], rest[2], rest[3:]
    else:
        plural, tail = rest[0], rest[1:]
    name = tail[0] if tail else None
    subresource = "/".join(tail[1:]) or None
    return ApiPath(kmock.resource(group, version, plural), namespace, name, subresource)


class SandboxEmulator(kmock.KubernetesEmulator):
    """A Kubernetes API server with Deployment, ReplicaSet, Job, HPA and GC controllers.

    `clock` returns monotonic seconds and drives rollouts, deadlines and timestamps.
    `rollout_seconds` is how long a new pod takes to become Ready on that clock.
    `job_timeout` bounds each Job process in real seconds. With `instant_jobs`, requests
    wait for running Job processes. `workdir` contains the Job pods' scratch directories. Serve it with `aiohttp.web.Server(emulator)` inside
    `async with emulator:`; `SandboxCluster` does both in a background thread.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float],
        rollout_seconds: float = 0.0,
        job_timeout: float = 60.0,
        instant_jobs: bool = True,
        workdir: Path,
    ) -> None:
        super().__init__()
        with warnings.catch_warnings():
            # kmock 0.8 reads its bundled discovery data with a deprecated importlib call.
            warnings.simplefilter("ignore", DeprecationWarning)
            self.resources.load_bundled()
        self.clock = SandboxClock(clock)
        self.instant_jobs = instant_jobs
        # With a ticker moving the state, reads serve what the last tick left, so that many
        # polling clients do not each run every controller over every object.
        self.reconcile_reads = True
        self.job_timeout = job_timeout
        self.store = Store(self, self.clock)
        self.api = Api(self.store)
        self.kubelet = Kubelet(
            self.store,
            self.clock,
            self._lock,
            self.reconcile_now,
            rollout_seconds=rollout_seconds,
            job_timeout=job_timeout,
            workdir=workdir,
        )
        self._controllers: list[Controller] = [
            AutoscalerController(self.store, self.clock),
            DeploymentController(self.store, self.api, self.clock),
            ReplicaSetController(self.store, self.api),
            JobController(self.store, self.api, self.clock),
            self.kubelet,
            GarbageCollector(self.store),
        ]
        self._watches: set[asyncio.Task[Any]] = set()

    # -- reconciling ------------------------------------------------------------------------

    async def reconcile(self) -> None:
        """Run every controller until a pass changes nothing. Callers hold `self._lock`."""
        for _ in range(_MAX_PASSES):
            changed = False
            for controller in self._controllers:
                try:
                    changed |= await controller.sync()
                except ApiError as e:
                    # A real controller reports such a failure in an event and retries later,
                    # so the sandbox logs it and retries on the next reconcile.
                    logger.warning(
                        "%s failed: %s; will retry", type(controller).__name__, e.message
                    )
            if not changed:
                return
        raise RuntimeError(
            f"the sandbox controllers still changed objects after {_MAX_PASSES} passes"
        )

    async def reconcile_now(self) -> None:
        async with self._lock:
            await self.reconcile()

    async def settle(self, timeout: float) -> None:
        """Reconcile and wait for Job processes until nothing changes and nothing runs."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            await self.kubelet.wait_idle(max(0.0, deadline - loop.time()))
            async with self._lock:
                await self.reconcile()
                if not self.kubelet.running():
                    return

    async def shutdown(self) -> None:
        """Kill Job processes and end open watch streams."""
        await self.kubelet.shutdown()
        for task in list(self._watches):
            task.cancel()

    # -- HTTP -------------------------------------------------------------------------------

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        path = parse_api_path(raw_request.path)
        if path is None:
            return await super().__call__(raw_request)
        body = await raw_request.read()
        try:
            target = self._target(path)
            await self._wait_for_instant_jobs()
            if raw_request.method == "GET" and raw_request.query.get("watch") in ("true", "1"):
                return await self._watch(raw_request, target)
            reading = raw_request.method == "GET"
            async with self._lock:
                if not reading or self.reconcile_reads:
                    await self.reconcile()
                response = await self._serve(raw_request, path, target, body)
                if not reading:
                    await self.reconcile()
            return response
        except ApiError as e:
            return aiohttp.web.json_response(e.to_status(), status=e.status)

    async def _wait_for_jobs(self) -> None:
        # A process outlives job_timeout only while its output drains, so this bounds a bug.
        try:
            await self.kubelet.wait_idle(self.job_timeout + 5)
        except TimeoutError as e:
            raise ApiError(504, "Timeout", f"the sandbox timed out waiting for Jobs: {e}") from e

    def _target(self, path: ApiPath) -> Target:
        kind = self.store.kind_of(path.resource)
        if not kind.namespaced and path.namespace is not None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return Target(kind, path.namespace, path.name)

    async def _serve(
        self, request: aiohttp.web.BaseRequest, path: ApiPath, target: Target, body: bytes
    ) -> aiohttp.web.StreamResponse:
        method = request.method
        query = request.query
        dry_run = query.get("dryRun") == "All"

        if path.subresource == "log":
            if method != "GET":
                raise ApiError(405, "MethodNotAllowed", f"{method} is not allowed on pods/log")
            return self._serve_log(target, query)
        if path.subresource not in (None, "status", "scale"):
            raise ApiError(
                404, "NotFound", f"the sandbox does not serve the {path.subresource} subresource"
            )

        if target.name is None:
            return await self._serve_collection(request, target, body, dry_run)
        if path.subresource == "scale" and method == "GET":
            return _json(self.api.scale(target))
        if method == "GET":
            return _json(self.api.get(target))

        if method == "PATCH":
            content_type = request.headers.get("Content-Type", STRATEGIC_MERGE_PATCH)
            patched = await self.api.patch(
                target,
                _parse_json(body),
                content_type,
                subresource=path.subresource,
                dry_run=dry_run,
            )
            return _json(patched)
        if method == "PUT":
            replaced = await self.api.replace(
                target, _parse_json(body), subresource=path.subresource, dry_run=dry_run
            )
            return _json(replaced)
        if method == "DELETE" and path.subresource is None:
            return await self._delete(request, target, body, dry_run)
        raise ApiError(405, "MethodNotAllowed", f"{method} is not allowed on this path")

    async def _delete(
        self, request: aiohttp.web.BaseRequest, target: Target, body: bytes, dry_run: bool
    ) -> aiohttp.web.StreamResponse:
        """Delete with `DeleteOptions` from the query or the body, as clients send either."""
        options = _parse_json(body) if body else None
        options = options or {}
        if not isinstance(options, dict):
            raise bad_request("the DELETE body must be a DeleteOptions object")
        propagation = request.query.get("propagationPolicy") or options.get("propagationPolicy")
        dry_run = dry_run or "All" in (options.get("dryRun") or [])
        deleted = await self.api.delete(
            target, propagation=propagation or "Background", dry_run=dry_run
        )
        return _json(deleted)

    async def _serve_collection(
        self, request: aiohttp.web.BaseRequest, target: Target, body: bytes, dry_run: bool
    ) -> aiohttp.web.StreamResponse:
        if request.method == "GET":
            labels, fields = _selectors(request, target)
            return _json(self.api.list(target, labels, fields))
        if target.kind.namespaced and target.namespace is None:
            raise ApiError(
                405, "MethodNotAllowed", f"{request.method} needs a namespace in the path"
            )
        if request.method == "POST":
            created = await self.api.create(target, _parse_json(body), dry_run=dry_run)
            return _json(created, status=201)
        if request.method == "DELETE":
            labels, fields = _selectors(request, target)
            return _json(await self.api.delete_collection(target, labels, fields))
        raise ApiError(405, "MethodNotAllowed", f"{request.method} is not allowed on a collection")

    def _serve_log(self, target: Target, query: Any) -> aiohttp.web.StreamResponse:
        if target.kind.resource != PODS:
            raise ApiError(404, "NotFound", "the log subresource exists only for pods")
        pod = self.api.get(target)
        text = self.kubelet.read_log(
            pod, query.get("container"), query.get("previous") in ("true", "1")
        )
        if "tailLines" in query:
            count = _natural(query["tailLines"], "tailLines")
            lines = text.splitlines(keepends=True)
            text = "".join(lines[max(0, len(lines) - count) :])
        if "limitBytes" in query:
            limit = _natural(query["limitBytes"], "limitBytes")
            if limit == 0:
                raise bad_request("limitBytes must be greater than zero")
            text = text.encode()[:limit].decode(errors="ignore")
        return aiohttp.web.Response(text=text, content_type="text/plain")

    # -- watch ------------------------------------------------------------------------------

    async def _watch(
        self, request: aiohttp.web.BaseRequest, target: Target
    ) -> aiohttp.web.StreamResponse:
        """Stream ADDED/MODIFIED/DELETED events as JSON lines, as `?watch=true` does.

        Without `resourceVersion` (or with "0") the stream starts with an ADDED event per
        existing object. With one, it replays the changes after that version from the
        objects' history and then follows. `timeoutSeconds` ends the stream after that
        many real seconds.
        """
        labels, fields = _selectors(request, target)
        since = _natural(request.query.get("resourceVersion") or "0", "resourceVersion")
        timeout = request.query.get("timeoutSeconds")
        task = asyncio.current_task()
        if task is not None:
            self._watches.add(task)
        bus = self._buses[target.kind.resource]
        async with self._lock:
            await self.reconcile()
            marker = await bus.mark()
            if since:
                initial = self.store.changes_since(target.kind, target.namespace, since)
            else:
                initial = [
                    {"type": "ADDED", "object": obj}
                    for obj in self.store.items(target.kind, target.namespace)
                ]
            # `initial` covers every change up to this resource version, and the bus the rest.
            replayed = int(self.store.resource_version)
        response = aiohttp.web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        try:
            for event in initial:
                obj = event["object"]
                if labels.matches(obj["metadata"].get("labels")) and fields.matches(obj):
                    await _write_event(response, event)
            await self._stream(
                response, bus.stream(since=marker), target, labels, fields, replayed, timeout
            )
        finally:
            await bus.unmark(marker)
            if task is not None:
                self._watches.discard(task)
        with contextlib.suppress(ConnectionResetError):
            await response.write_eof()
        return response

    async def _stream(
        self,
        response: aiohttp.web.StreamResponse,
        events: Any,
        target: Target,
        labels: LabelSelector,
        fields: FieldSelector,
        since: int,
        timeout: str | None,
    ) -> None:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + _natural(timeout, "timeoutSeconds")
        while True:
            remaining = None if deadline is None else max(0.0, deadline - loop.time())
            try:
                event = await asyncio.wait_for(anext(events), remaining)
            except (TimeoutError, StopAsyncIteration):
                return
            obj = event["object"]
            meta = obj.get("metadata") or {}
            if target.namespace is not None and meta.get("namespace") != target.namespace:
                continue
            if int(meta.get("resourceVersion") or 0) <= since:
                continue
            if labels.matches(meta.get("labels")) and fields.matches(obj):
                await _write_event(response, event)

    # -- direct access for SandboxCluster ---------------------------------------------------

    async def seed(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create or replace an object, creating its namespace if needed; keep its status."""
        await self._wait_for_instant_jobs()
        async with self._lock:
            kind = self.store.kind_for(str(obj.get("apiVersion", "")), str(obj.get("kind", "")))
            meta = obj.get("metadata") or {}
            namespace = str(meta.get("namespace") or "default") if kind.namespaced else None
            if namespace is not None:
                await self._ensure_namespace(namespace)
            target = Target(kind, namespace, meta.get("name"))
            if meta.get("name") and self.store.read(kind, namespace, str(meta["name"])) is not None:
                stored = await self.api.replace(target, obj)
                if "status" in obj and kind.has_status():
                    stored = await self.api.replace(
                        target, {**stored, "status": obj["status"]}, subresource="status"
                    )
            else:
                stored = await self.api.create(target, obj, keep_status=True)
            await self.reconcile()
            return stored

    async def _wait_for_instant_jobs(self) -> None:
        """Wait for running Job processes under `instant_jobs`, before any read or write."""
        if self.instant_jobs:
            await self._wait_for_jobs()

    async def _ensure_namespace(self, name: str) -> None:
        kind = self.store.kind_of(NAMESPACES)
        if self.store.read(kind, None, name) is None:
            namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
            await self.api.create(Target(kind, None), namespace)

    async def read(
        self, api_version: str, kind_name: str, namespace: str | None, name: str
    ) -> dict[str, Any] | None:
        await self._wait_for_instant_jobs()
        async with self._lock:
            await self.reconcile()
            kind = self.store.kind_for(api_version, kind_name)
            return self.store.read(kind, namespace if kind.namespaced else None, name)

    async def read_all(
        self, api_version: str, kind_name: str, namespace: str | None, label_selector: str
    ) -> list[dict[str, Any]]:
        await self._wait_for_instant_jobs()
        async with self._lock:
            await self.reconcile()
            kind = self.store.kind_for(api_version, kind_name)
            selector = parse_label_selector(label_selector)
            found = [
                obj
                for obj in self.store.items(kind, namespace if kind.namespaced else None)
                if selector.matches(obj["metadata"].get("labels"))
            ]
            return sorted(
                found,
                key=lambda obj: (obj["metadata"].get("namespace", ""), obj["metadata"]["name"]),
            )

    async def remove(
        self, api_version: str, kind_name: str, namespace: str | None, name: str
    ) -> None:
        await self._wait_for_instant_jobs()
        async with self._lock:
            kind = self.store.kind_for(api_version, kind_name)
            await self.api.delete(Target(kind, namespace if kind.namespaced else None, name))
            await self.reconcile()


def _selectors(
    request: aiohttp.web.BaseRequest, target: Target
) -> tuple[LabelSelector, FieldSelector]:
    labels = parse_label_selector(request.query.get("labelSelector", ""))
    fields = parse_field_selector(request.query.get("fieldSelector", ""), target.kind.plural)
    return labels, fields


def _parse_json(body: bytes) -> Any:
    try:
        return json.loads(body or b"null")
    except (ValueError, UnicodeDecodeError) as e:
        raise bad_request(f"the request body is not valid JSON: {e}") from e


def _natural(text: str, parameter: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise bad_request(f"{parameter} must be a non-negative integer, got {text!r}")
    return value


def _json(body: dict[str, Any], status: int = 200) -> aiohttp.web.Response:
    return aiohttp.web.json_response(body, status=status)


async def _write_event(response: aiohttp.web.StreamResponse, event: dict[str, Any]) -> None:
    await response.write(json.dumps(event).encode() + b"\n")
