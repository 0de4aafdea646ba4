"""Objects as the API server stores them: metadata, resource versions, generations and events.

The store keeps its objects in kmock's `objects` array and publishes every change on kmock's
per-resource event buses, so kmock's own assertions and watch streams see the same state.
Callers hold the emulator's lock around every method that reads or writes.
"""

from __future__ import annotations

import copy
import secrets
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import kmock

from breakglass.sandbox.kubernetes.clock import SandboxClock
from breakglass.sandbox.kubernetes.errors import ApiError, already_exists, not_found

# The alphabet Kubernetes uses for generated name suffixes and pod-template hashes: no
# vowels, so that no word is spelled by accident.
SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


NAMESPACES = kmock.resource("", "v1", "namespaces")
PODS = kmock.resource("", "v1", "pods")
SECRETS = kmock.resource("", "v1", "secrets")
CONFIGMAPS = kmock.resource("", "v1", "configmaps")
DEPLOYMENTS = kmock.resource("apps", "v1", "deployments")
REPLICASETS = kmock.resource("apps", "v1", "replicasets")
JOBS = kmock.resource("batch", "v1", "jobs")
AUTOSCALERS = (
    kmock.resource("autoscaling", "v2", "horizontalpodautoscalers"),
    kmock.resource("autoscaling", "v1", "horizontalpodautoscalers"),
)


def random_suffix(length: int = 5) -> str:
    return "".join(secrets.choice(SUFFIX_ALPHABET) for _ in range(length))


@dataclass(frozen=True)
class Kind:
    """A resource the API serves: its URL parts, its kind and its subresources."""

    resource: kmock.resource
    kind: str
    namespaced: bool
    subresources: frozenset[str]

    @property
    def plural(self) -> str:
        return str(self.resource.plural)

    @property
    def qualified(self) -> str:
        """The name the API uses in messages: `deployments.apps`, or `pods` for the core group."""
        group = self.resource.group
        return f"{self.plural}.{group}" if group else self.plural

    @property
    def api_version(self) -> str:
        group, version = self.resource.group, self.resource.version
        return f"{group}/{version}" if group else str(version)

    def has_status(self) -> bool:
        """Return whether writes to the object leave `status` alone (a `status` subresource)."""
        return "status" in self.subresources


def metadata(obj: dict[str, Any]) -> dict[str, Any]:
    """Return the object's metadata dict, creating it if absent."""
    meta = obj.setdefault("metadata", {})
    if not isinstance(meta, dict):
        raise ApiError(400, "BadRequest", "metadata must be a JSON object")
    return meta


class Store:
    def __init__(self, emulator: kmock.KubernetesEmulator, clock: SandboxClock) -> None:
        self._emulator = emulator
        self._clock = clock
        self._resource_version = 0

    @property
    def resource_version(self) -> str:
        """The latest resource version handed out, as list responses report it."""
        return str(self._resource_version)

    # -- kinds ------------------------------------------------------------------------------

    def kind_of(self, resource: kmock.resource) -> Kind:
        """Return the kind the discovery data declares for a URL's resource, or raise 404."""
        if resource not in self._emulator.resources:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        info = self._emulator.resources[resource]
        return Kind(
            resource=resource,
            kind=info.kind or str(resource.plural).capitalize(),
            namespaced=bool(info.namespaced),
            subresources=frozenset(info.subresources),
        )

    def kind_for(self, api_version: str, kind: str) -> Kind:
        """Return the resource that serves objects of this apiVersion and kind."""
        group, _, version = api_version.rpartition("/")
        for resource in self._emulator.resources:
            info = self._emulator.resources[resource]
            if (resource.group, resource.version, info.kind) == (group, version, kind):
                return self.kind_of(resource)
        raise ApiError(
            404, "NotFound", f"no resource serves kind {kind!r} in apiVersion {api_version!r}"
        )

    # -- reads ------------------------------------------------------------------------------

    def read(self, kind: Kind, namespace: str | None, name: str) -> dict[str, Any] | None:
        """Return a copy of the live object, or None when it does not exist."""
        key = (kind.resource, namespace if kind.namespaced else None, name)
        if key not in self._emulator.objects:
            return None
        stored = self._emulator.objects[key]
        return None if stored.deleted else copy.deepcopy(stored.raw)

    def items(
        self,
        kind: Kind,
        namespace: str | None = None,
        where: Callable[[dict[str, Any]], bool] | None = None,
    ) -> list[dict[str, Any]]:
        """Return copies of the live objects of a kind, in one namespace or in all of them.

        `where` filters before copying: controllers look up the few objects one owner
        controls among many, and copying every object for each owner made a reconcile
        quadratic in the number of objects.
        """
        return [
            copy.deepcopy(obj) for obj in self._live(kind, namespace) if where is None or where(obj)
        ]

    def _live(self, kind: Kind, namespace: str | None) -> Iterator[dict[str, Any]]:
        for (resource, object_namespace, _), stored in self._emulator.objects.items():
            if resource != kind.resource or stored.deleted:
                continue
            if namespace is None or object_namespace == namespace:
                yield stored.raw

    def changes_since(
        self, kind: Kind, namespace: str | None, resource_version: int
    ) -> list[dict[str, Any]]:
        """Return the watch events after a resource version, oldest first, from the history.

        Each write appends a version to kmock's per-object history and a deletion appends the
        deleted state followed by a None marker, so the history replays as events.
        """
        events: list[tuple[int, dict[str, Any]]] = []
        for (resource, object_namespace, _), stored in self._emulator.objects.items():
            if resource != kind.resource:
                continue
            if namespace is not None and object_namespace != namespace:
                continue
            versions = list(stored.history)
            for index, version in enumerate(versions):
                if version is None:
                    continue
                obj = version.raw
                number = int((obj.get("metadata") or {}).get("resourceVersion") or 0)
                if number <= resource_version:
                    continue
                following = versions[index + 1] if index + 1 < len(versions) else version
                if following is None:
                    event_type = "DELETED"
                elif index == 0 or versions[index - 1] is None:
                    event_type = "ADDED"
                else:
                    event_type = "MODIFIED"
                events.append((number, {"type": event_type, "object": copy.deepcopy(obj)}))
        return [event for _, event in sorted(events, key=lambda pair: pair[0])]

    def all_objects(self) -> list[tuple[Kind, dict[str, Any]]]:
        """Return copies of every live object with its kind, for the garbage collector."""
        found: list[tuple[Kind, dict[str, Any]]] = []
        for (resource, _, _), stored in list(self._emulator.objects.items()):
            if not stored.deleted and resource in self._emulator.resources:
                found.append((self.kind_of(resource), copy.deepcopy(stored.raw)))
        return found

    # -- writes -----------------------------------------------------------------------------

    def next_resource_version(self) -> str:
        self._resource_version += 1
        return str(self._resource_version)

    def prepare_create(self, kind: Kind, obj: dict[str, Any]) -> dict[str, Any]:
        """Fill in the metadata the API server assigns on create, without storing the object."""
        meta = metadata(obj)
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = f"{meta['generateName']}{random_suffix()}"
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = self._clock.timestamp()
        meta.pop("resourceVersion", None)
        meta.pop("deletionTimestamp", None)
        if "spec" in obj:
            meta["generation"] = 1
        obj["apiVersion"] = kind.api_version
        obj["kind"] = kind.kind
        return obj

    async def create(self, kind: Kind, obj: dict[str, Any]) -> dict[str, Any]:
        """Store a new object prepared by `prepare_create` and publish ADDED; 409 if it exists."""
        meta = metadata(obj)
        key = (kind.resource, meta.get("namespace") if kind.namespaced else None, meta["name"])
        if self.read(kind, key[1], key[2]) is not None:
            raise already_exists(kind, key[2])
        meta["resourceVersion"] = self.next_resource_version()
        if key in self._emulator.objects:
            # A re-created name continues the soft-deleted object's history, as kmock does.
            self._emulator.objects[key].history.append(copy.deepcopy(obj))
        else:
            self._emulator.objects[key] = copy.deepcopy(obj)
        await self._publish(kind, "ADDED", obj)
        return copy.deepcopy(obj)

    def prepare_update(self, old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
        """Carry the immutable metadata over and bump the generation if `spec` changed."""
        old_meta, new_meta = old["metadata"], metadata(new)
        for field in ("name", "namespace", "uid", "creationTimestamp", "deletionTimestamp"):
            if field in old_meta:
                new_meta[field] = old_meta[field]
            else:
                new_meta.pop(field, None)
        new["apiVersion"], new["kind"] = old["apiVersion"], old["kind"]
        if "generation" in old_meta:
            changed = new.get("spec") != old.get("spec")
            new_meta["generation"] = old_meta["generation"] + (1 if changed else 0)
        new_meta["resourceVersion"] = old_meta.get("resourceVersion")
        return new

    async def update(self, kind: Kind, new: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Store a new version of an existing object; return it and whether anything changed.

        An update that changes nothing keeps the resource version and publishes no event,
        as on a real API server. An object marked for deletion whose last finalizer is
        removed is deleted.
        """
        meta = metadata(new)
        old = self.read(kind, meta.get("namespace"), meta["name"])
        if old is None:
            raise not_found(kind, meta["name"])
        new = self.prepare_update(old, new)
        if new == old:
            return old, False
        meta = new["metadata"]
        meta["resourceVersion"] = self.next_resource_version()
        key = (kind.resource, meta.get("namespace") if kind.namespaced else None, meta["name"])
        self._emulator.objects[key].history.append(copy.deepcopy(new))
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            self._emulator.objects[key].delete()
            await self._publish(kind, "DELETED", new)
        else:
            await self._publish(kind, "MODIFIED", new)
        return copy.deepcopy(new), True

    async def delete(self, kind: Kind, namespace: str | None, name: str) -> dict[str, Any]:
        """Delete an object, or only mark it for deletion while it has finalizers."""
        old = self.read(kind, namespace, name)
        if old is None:
            raise not_found(kind, name)
        meta = old["metadata"]
        if meta.get("finalizers"):
            if not meta.get("deletionTimestamp"):
                marked = copy.deepcopy(old)
                marked["metadata"]["deletionTimestamp"] = self._clock.timestamp()
                marked["metadata"]["resourceVersion"] = self.next_resource_version()
                key = (kind.resource, namespace if kind.namespaced else None, name)
                self._emulator.objects[key].history.append(copy.deepcopy(marked))
                await self._publish(kind, "MODIFIED", marked)
                return marked
            return old
        key = (kind.resource, namespace if kind.namespaced else None, name)
        deleted = copy.deepcopy(old)
        deleted["metadata"]["resourceVersion"] = self.next_resource_version()
        self._emulator.objects[key].history.append(copy.deepcopy(deleted))
        self._emulator.objects[key].delete()
        await self._publish(kind, "DELETED", deleted)
        return deleted

    async def _publish(self, kind: Kind, event: str, obj: dict[str, Any]) -> None:
        bus = self._emulator._buses[kind.resource]
        await bus.put({"type": event, "object": copy.deepcopy(obj)})


def owner_reference(owner: dict[str, Any]) -> dict[str, Any]:
    """Return a controller owner reference to `owner`, as workload controllers set it."""
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def controlled_by(obj: dict[str, Any], owner_uid: str) -> bool:
    """Return whether `obj` names the owner with this uid as its controller."""
    return any(
        reference.get("uid") == owner_uid and reference.get("controller")
        for reference in obj["metadata"].get("ownerReferences") or []
    )


def is_terminating(obj: dict[str, Any]) -> bool:
    return bool(obj["metadata"].get("deletionTimestamp"))
