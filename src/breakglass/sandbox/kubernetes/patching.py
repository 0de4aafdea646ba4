"""The three PATCH flavours of the Kubernetes API: JSON patch, merge patch and strategic merge.

kmock merges dict patches recursively and replaces lists whole. That is right for a merge
patch (RFC 7386) but not for the strategic merge patch that clients send by default. There,
lists such as `containers` or `env` are merged item by item on a key (`name`), and
`$patch` directives replace or delete parts. The built-in API types declare these merge
keys in their Go struct tags (`patchMergeKey`).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import jsonpatch
import jsonpointer

from breakglass.sandbox.kubernetes.errors import ApiError

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"

# List field -> the item key that strategic merge matches items on.
# NOTE: this covers the pod template and metadata lists that rollbacks patch. Any other
# list of objects is replaced whole, as a merge patch would replace it.
_MERGE_KEYS: dict[str, tuple[str, ...]] = {
    "containers": ("name",),
    "initContainers": ("name",),
    "ephemeralContainers": ("name",),
    "env": ("name",),
    "volumes": ("name",),
    "volumeMounts": ("mountPath",),
    "volumeDevices": ("devicePath",),
    "imagePullSecrets": ("name",),
    "hostAliases": ("ip",),
    "conditions": ("type",),
    "ownerReferences": ("uid",),
    "resourceClaims": ("name",),
    "topologySpreadConstraints": ("topologyKey",),
    # Container ports merge on containerPort, Service ports on port.
    "ports": ("containerPort", "port"),
}
# Lists of scalars whose patch strategy is "merge": patch values are added, not replacing.
_MERGED_SCALAR_LISTS = frozenset({"finalizers"})


def apply_patch(current: dict[str, Any], body: Any, content_type: str) -> dict[str, Any]:
    """Return `current` with the PATCH body applied as its Content-Type specifies."""
    media_type = content_type.split(";", maxsplit=1)[0].strip().lower()
    if media_type == JSON_PATCH:
        return apply_json_patch(current, body)
    if not isinstance(body, dict):
        raise ApiError(400, "BadRequest", f"a {media_type or 'patch'} body must be a JSON object")
    if media_type == MERGE_PATCH:
        return _as_object(apply_merge_patch(current, body))
    if media_type in (STRATEGIC_MERGE_PATCH, "application/json", ""):
        return apply_strategic_merge_patch(current, body)
    if media_type == APPLY_PATCH:
        raise ApiError(
            415,
            "UnsupportedMediaType",
            "the sandbox does not implement server-side apply (application/apply-patch+yaml); "
            "send a JSON, merge or strategic merge patch",
        )
    raise ApiError(
        415,
        "UnsupportedMediaType",
        f"the body of the request was in an unknown format: {media_type}",
    )


def apply_json_patch(current: dict[str, Any], operations: Any) -> dict[str, Any]:
    """Apply RFC 6902 operations; a failed `test` or a missing path is a 422, as on a real server."""
    if not isinstance(operations, list):
        raise ApiError(400, "BadRequest", "a JSON patch body must be a list of operations")
    try:
        patched = jsonpatch.apply_patch(current, operations, in_place=False)
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as e:
        raise ApiError(
            422,
            "Invalid",
            f"the server rejected our request due to an error in our request: {e}",
        ) from e
    return _as_object(patched)


def apply_merge_patch(current: Any, patch: Any) -> Any:
    """Apply an RFC 7386 merge patch: objects merge, null deletes, everything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(current) if isinstance(current, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = apply_merge_patch(result.get(key), value)
    return result


def apply_strategic_merge_patch(current: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    return _as_object(_merge_map(current, patch))


def _merge_map(current: Any, patch: Mapping[str, Any]) -> Any:
    directive = patch.get("$patch")
    if directive == "delete":
        return None
    if directive == "replace":
        return {key: copy.deepcopy(value) for key, value in patch.items() if key != "$patch"}
    result = dict(current) if isinstance(current, dict) else {}
    for key, value in patch.items():
        if key.startswith("$setElementOrder/") or key in ("$patch", "$retainKeys"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            result[field] = [item for item in result.get(field) or [] if item not in value]
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            merged = _merge_map(result.get(key), value)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, list):
            result[key] = _merge_list(key, result.get(key), value)
        else:
            result[key] = value
    retained = patch.get("$retainKeys")
    if isinstance(retained, list):
        result = {key: value for key, value in result.items() if key in retained}
    return result


def _merge_list(field: str, current: Any, patch: list[Any]) -> list[Any]:
    existing = list(current) if isinstance(current, list) else []
    if field in _MERGED_SCALAR_LISTS:
        return existing + [item for item in patch if item not in existing]
    key = _merge_key(field, existing + patch)
    if key is None:
        return [_strip_directives(item) for item in patch]
    if any(isinstance(item, dict) and item.get("$patch") == "replace" for item in patch):
        return [_strip_directives(item) for item in patch if item.get("$patch") != "replace"]
    result = [copy.deepcopy(item) for item in existing]
    for item in patch:
        position = next((i for i, old in enumerate(result) if old.get(key) == item.get(key)), None)
        if item.get("$patch") == "delete":
            if position is not None:
                del result[position]
        elif position is None:
            result.append(_strip_directives(item))
        else:
            result[position] = _merge_map(result[position], item)
    return result


def _merge_key(field: str, items: list[Any]) -> str | None:
    if not items or not all(isinstance(item, dict) for item in items):
        return None
    for key in _MERGE_KEYS.get(field, ()):
        if all(key in item or "$patch" in item for item in items):
            return key
    return None


def _strip_directives(item: Any) -> Any:
    if isinstance(item, dict):
        return {
            key: _strip_directives(value) for key, value in item.items() if not key.startswith("$")
        }
    return copy.deepcopy(item)


def _as_object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ApiError(422, "Invalid", "the patched object is not a JSON object")
    return value
