"""`k8s.patch_configmap`: change some keys of a ConfigMap, recording their old values for undo."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from pydantic import Field

from breakglass.actions.base import Action, ActionContext, Outputs, Params, PlanResult
from breakglass.actions.kubernetes.client import Kube, kube

SHOWN_VALUE_CHARS = 80
# The values a patch replaced, kept on the ConfigMap in the same patch, so that a patch
# retried after a crash still records the values from before the first attempt.
PREVIOUS_ANNOTATION = "breakglass.dev/previous-data"


class PatchParams(Params):
    configmap: str
    data: dict[str, str | None] = Field(
        description="Keys to set; a null value removes the key. The undo passes the recorded previous values."
    )


class PatchOutputs(Outputs):
    previous: dict[str, str | None]
    changed: list[str]


def _pointer(section: str, key: str) -> str:
    # JSON pointer escaping: "~" first, then "/".
    return f"/{section}/" + key.replace("~", "~0").replace("/", "~1")


def _shown(value: str | None) -> str:
    if value is None:
        return "(absent)"
    flat = value.replace("\n", "\\n")
    return repr(flat if len(flat) <= SHOWN_VALUE_CHARS else flat[: SHOWN_VALUE_CHARS - 1] + "…")


def patch_operations(
    current: dict[str, str] | None, wanted: dict[str, str | None]
) -> list[dict[str, Any]]:
    """Return the JSON patch that sets and removes exactly the given keys."""
    operations: list[dict[str, Any]] = []
    if current is None:
        operations.append({"op": "add", "path": "/data", "value": {}})
        current = {}
    for key, value in wanted.items():
        if value is None:
            if key in current:
                operations.append({"op": "remove", "path": _pointer("data", key)})
        elif current.get(key) != value:
            operations.append({"op": "add", "path": _pointer("data", key), "value": value})
    return operations


class K8sPatchConfigMap(Action[PatchParams, PatchOutputs]):
    name = "k8s.patch_configmap"
    summary = "Set or remove keys of a ConfigMap, recording the previous values for undo."
    params_model: ClassVar[type[Params]] = PatchParams
    outputs_model: ClassVar[type[Outputs]] = PatchOutputs
    mutating = True
    idempotent = True

    def _read(self, client: Kube, name: str) -> dict[str, Any]:
        return dict(
            client.call(
                f"read ConfigMap {name}",
                client.core.read_namespaced_config_map,
                name,
                client.namespace,
            )
        )

    def plan(self, params: PatchParams, ctx: ActionContext) -> PlanResult:
        client = kube(ctx)
        current = self._read(client, params.configmap).get("data") or {}
        changes = [
            f"{key}: {_shown(current.get(key))} -> {_shown(value)}"
            for key, value in params.data.items()
            if current.get(key) != value
        ]
        return PlanResult(
            summary=f"patch ConfigMap {params.configmap}: {len(changes)} key(s) change",
            target=f"ConfigMap {params.configmap} ({client.where()})",
            changes=changes or ["no key changes; nothing to do"],
            mutating=bool(changes),
        )

    def run(self, params: PatchParams, ctx: ActionContext) -> PatchOutputs:
        client = kube(ctx)
        found = self._read(client, params.configmap)
        data = found.get("data")
        current: dict[str, str] | None = dict(data) if isinstance(data, dict) else None
        annotations = found.get("metadata", {}).get("annotations") or {}
        operations = patch_operations(current, params.data)
        previous = {key: (current or {}).get(key) for key in params.data}
        if not operations and PREVIOUS_ANNOTATION in annotations:
            # An earlier attempt already applied the patch, so its record contains the values before it.
            recorded = json.loads(annotations[PREVIOUS_ANNOTATION])
            previous = {key: recorded.get(key, previous[key]) for key in params.data}
        if operations:
            record = json.dumps(previous, sort_keys=True)
            if (
                "annotations" not in found.get("metadata", {})
                or found["metadata"]["annotations"] is None
            ):
                operations.append(
                    {
                        "op": "add",
                        "path": "/metadata/annotations",
                        "value": {PREVIOUS_ANNOTATION: record},
                    }
                )
            else:
                operations.append(
                    {
                        "op": "add",
                        "path": _pointer("metadata/annotations", PREVIOUS_ANNOTATION),
                        "value": record,
                    }
                )
            client.call(
                f"patch ConfigMap {params.configmap}",
                client.core.patch_namespaced_config_map,
                params.configmap,
                client.namespace,
                operations,
            )
        changed = [key for key in params.data if previous[key] != params.data[key]]
        return PatchOutputs(previous=previous, changed=changed)
