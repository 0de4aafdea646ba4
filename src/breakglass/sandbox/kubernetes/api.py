"""The API verbs (get, list, create, patch, replace, delete, scale) on the store, without HTTP.

Each verb checks what the real API server checks before a write: the body's kind, the
namespace, resource-version preconditions, admission, and which part of the object a
`status` or `scale` subresource may change.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

from breakglass.sandbox.kubernetes.admission import admit
from breakglass.sandbox.kubernetes.errors import ApiError, bad_request, conflict, not_found
from breakglass.sandbox.kubernetes.patching import apply_patch
from breakglass.sandbox.kubernetes.selectors import FieldSelector, LabelSelector, selector_from_spec
from breakglass.sandbox.kubernetes.store import NAMESPACES, Kind, Store, metadata

_STALE = (
    "the object has been modified; please apply your changes to the latest version and try again"
)


@dataclass(frozen=True)
class Target:
    """The object or collection a request addresses; namespace None means all namespaces."""

    kind: Kind
    namespace: str | None
    name: str | None = None

    def object_name(self) -> str:
        if self.name is None:
            raise ApiError(405, "MethodNotAllowed", "the request needs an object name in its path")
        return self.name


class Api:
    def __init__(self, store: Store) -> None:
        self._store = store

    # -- reads ------------------------------------------------------------------------------

    def get(self, target: Target) -> dict[str, Any]:
        name = target.object_name()
        found = self._store.read(target.kind, target.namespace, name)
        if found is None:
            raise not_found(target.kind, name)
        return found

    def list(self, target: Target, labels: LabelSelector, fields: FieldSelector) -> dict[str, Any]:
        """Return a `<Kind>List`, sorted by namespace and name as etcd returns it."""
        items = [
            obj
            for obj in self._store.items(target.kind, target.namespace)
            if labels.matches(obj["metadata"].get("labels")) and fields.matches(obj)
        ]
        items.sort(key=lambda obj: (obj["metadata"].get("namespace", ""), obj["metadata"]["name"]))
        for item in items:
            # Items of a typed list carry no apiVersion and kind of their own.
            item.pop("apiVersion", None)
            item.pop("kind", None)
        return {
            "apiVersion": target.kind.api_version,
            "kind": f"{target.kind.kind}List",
            "metadata": {"resourceVersion": self._store.resource_version},
            "items": items,
        }

    # -- create -----------------------------------------------------------------------------

    async def create(
        self, target: Target, body: Any, *, dry_run: bool = False, keep_status: bool = False
    ) -> dict[str, Any]:
        """Create an object; `keep_status` lets seeding code set a status the API would drop."""
        obj = self._checked_body(target, body)
        meta = metadata(obj)
        if target.kind.namespaced:
            meta["namespace"] = target.namespace
            self._require_namespace(str(target.namespace))
        else:
            meta.pop("namespace", None)
        if target.kind.has_status() and not keep_status:
            obj.pop("status", None)
        self._store.prepare_create(target.kind, obj)
        admit(target.kind, obj, None)
        if dry_run:
            return obj
        return await self._store.create(target.kind, obj)

    def _require_namespace(self, namespace: str) -> None:
        kind = self._store.kind_of(NAMESPACES)
        found = self._store.read(kind, None, namespace)
        if found is None:
            raise not_found(kind, namespace)
        if found["metadata"].get("deletionTimestamp"):
            raise ApiError(
                403,
                "Forbidden",
                f"unable to create new content in namespace {namespace} because it is being terminated",
            )

    def _checked_body(self, target: Target, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise bad_request("the request body must be a JSON object")
        obj = copy.deepcopy(body)
        if not obj.get("kind"):
            raise bad_request(f"Object 'Kind' is missing in '{json.dumps(obj)[:200]}'")
        if obj["kind"] != target.kind.kind or obj.get("apiVersion") != target.kind.api_version:
            raise bad_request(
                f"the API version in the data ({obj.get('apiVersion')}) and kind ({obj['kind']}) "
                f"do not match the expected {target.kind.api_version} {target.kind.kind}"
            )
        namespace = (obj.get("metadata") or {}).get("namespace")
        if target.kind.namespaced and namespace and namespace != target.namespace:
            raise bad_request(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        return obj

    # -- update -----------------------------------------------------------------------------

    async def patch(
        self,
        target: Target,
        body: Any,
        content_type: str,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        current = self.get(target)
        if subresource == "scale":
            scale = apply_patch(self.scale(target), body, content_type)
            return await self.replace_scale(target, scale, dry_run=dry_run)
        patched = apply_patch(current, body, content_type)
        self._check_precondition(target, current, patched)
        return await self._write(target, current, patched, subresource, dry_run)

    async def replace(
        self, target: Target, body: Any, *, subresource: str | None = None, dry_run: bool = False
    ) -> dict[str, Any]:
        current = self.get(target)
        if subresource == "scale":
            return await self.replace_scale(target, body, dry_run=dry_run)
        new = self._checked_body(target, body)
        if (new.get("metadata") or {}).get("name") != target.name:
            raise bad_request("the name of the object does not match the name on the URL")
        self._check_precondition(target, current, new)
        return await self._write(target, current, new, subresource, dry_run)

    def _check_precondition(
        self, target: Target, current: dict[str, Any], new: dict[str, Any]
    ) -> None:
        expected_version = (new.get("metadata") or {}).get("resourceVersion")
        if expected_version and expected_version != current["metadata"]["resourceVersion"]:
            raise conflict(target.kind, target.object_name(), _STALE)

    async def _write(
        self,
        target: Target,
        current: dict[str, Any],
        new: dict[str, Any],
        subresource: str | None,
        dry_run: bool,
    ) -> dict[str, Any]:
        if subresource == "status":
            # The status subresource changes status only; everything else stays as stored.
            new = {**copy.deepcopy(current), "status": new.get("status")}
            if new["status"] is None:
                new.pop("status")
        elif subresource is not None:
            raise ApiError(
                405, "MethodNotAllowed", f"the sandbox cannot write the {subresource} subresource"
            )
        elif target.kind.has_status():
            new["status"] = copy.deepcopy(current.get("status"))
            if new["status"] is None:
                new.pop("status")
        new = self._store.prepare_update(current, new)
        admit(target.kind, new, current)
        if dry_run:
            return new
        stored, _ = await self._store.update(target.kind, new)
        return stored

    # -- scale ------------------------------------------------------------------------------

    def scale(self, target: Target) -> dict[str, Any]:
        """Return the `autoscaling/v1` Scale view of a Deployment or ReplicaSet."""
        if "scale" not in target.kind.subresources:
            raise not_found(target.kind, f"{target.object_name()}/scale")
        obj = self.get(target)
        meta = obj["metadata"]
        return {
            "apiVersion": "autoscaling/v1",
            "kind": "Scale",
            "metadata": {
                key: meta[key]
                for key in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                if key in meta
            },
            "spec": {"replicas": obj["spec"].get("replicas", 1)},
            "status": {
                "replicas": (obj.get("status") or {}).get("replicas", 0),
                "selector": selector_from_spec(obj["spec"].get("selector")).render(),
            },
        }

    async def replace_scale(
        self, target: Target, scale: Any, *, dry_run: bool = False
    ) -> dict[str, Any]:
        current = self.get(target)
        replicas = (scale.get("spec") or {}).get("replicas") if isinstance(scale, dict) else None
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise ApiError(
                422,
                "Invalid",
                f'Scale.autoscaling "{target.name}" is invalid: spec.replicas: Invalid value: '
                f"{replicas!r}: must be greater than or equal to 0",
            )
        expected_version = (scale.get("metadata") or {}).get("resourceVersion")
        if expected_version and expected_version != current["metadata"]["resourceVersion"]:
            raise conflict(target.kind, target.object_name(), _STALE)
        if dry_run:
            preview = self.scale(target)
            preview["spec"]["replicas"] = replicas
            return preview
        new = copy.deepcopy(current)
        new["spec"]["replicas"] = replicas
        await self._store.update(target.kind, new)
        return self.scale(target)

    # -- delete -----------------------------------------------------------------------------

    async def delete(
        self, target: Target, *, propagation: str = "Background", dry_run: bool = False
    ) -> dict[str, Any]:
        """Delete an object; return it (pods) or a `Status`, as the API server does.

        Dependents go with their owner through the garbage collector, unless
        `propagation` is "Orphan", which removes their owner references instead.
        """
        current = self.get(target)
        if propagation not in ("Background", "Foreground", "Orphan"):
            raise bad_request(f"invalid propagationPolicy {propagation!r}")
        if dry_run:
            return current
        if propagation == "Orphan":
            await self._orphan(current["metadata"]["uid"])
        if target.kind.resource == NAMESPACES:
            await self._empty_namespace(target.object_name())
        deleted = await self._store.delete(target.kind, target.namespace, target.object_name())
        if target.kind.kind == "Pod" or deleted["metadata"].get("deletionTimestamp"):
            return deleted
        return {
            "apiVersion": "v1",
            "kind": "Status",
            "metadata": {},
            "status": "Success",
            "details": {
                "name": target.name,
                "group": target.kind.resource.group,
                "kind": target.kind.plural,
                "uid": current["metadata"]["uid"],
            },
        }

    async def delete_collection(
        self, target: Target, labels: LabelSelector, fields: FieldSelector
    ) -> dict[str, Any]:
        listed = self.list(target, labels, fields)
        for item in listed["items"]:
            name = item["metadata"]["name"]
            await self._store.delete(target.kind, item["metadata"].get("namespace"), name)
        return listed

    async def _orphan(self, owner_uid: str) -> None:
        for kind, obj in self._store.all_objects():
            owners = obj["metadata"].get("ownerReferences") or []
            remaining = [owner for owner in owners if owner.get("uid") != owner_uid]
            if len(remaining) != len(owners):
                obj["metadata"]["ownerReferences"] = remaining
                await self._store.update(kind, obj)

    async def _empty_namespace(self, namespace: str) -> None:
        for kind, obj in self._store.all_objects():
            if kind.namespaced and obj["metadata"].get("namespace") == namespace:
                await self._store.delete(kind, namespace, obj["metadata"]["name"])
