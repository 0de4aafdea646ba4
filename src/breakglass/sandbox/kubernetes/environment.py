"""A Job container's process environment, resolved as the kubelet resolves a container's.

The process gets PATH (the sandbox's own), HOSTNAME (the pod name) and HOME (its scratch
directory), then `envFrom`, then `env`. Nothing else is inherited from the sandbox's
environment, so the host's variables, and any secrets in them, do not leak into Job
processes.
"""

from __future__ import annotations

import base64
import os
import re
from pathlib import Path
from typing import Any

from breakglass.sandbox.kubernetes.store import CONFIGMAPS, SECRETS, Store

_VARIABLE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


class ConfigError(Exception):
    """A Secret, ConfigMap or key a container's environment refers to does not exist."""


def resolve_environment(
    store: Store, pod: dict[str, Any], container: dict[str, Any], home: Path
) -> dict[str, str]:
    """Return the container's environment; raise ConfigError naming what is missing."""
    namespace = pod["metadata"]["namespace"]
    env = {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOSTNAME": pod["metadata"]["name"],
        "HOME": str(home),
    }
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        for ref_field, kind_name in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
            ref = source.get(ref_field)
            if ref:
                values = _source_values(store, namespace, kind_name, ref)
                env.update({f"{prefix}{key}": value for key, value in values.items()})
    for variable in container.get("env") or []:
        value = _variable_value(store, pod, variable, env)
        if value is not None:
            env[variable["name"]] = value
    return env


def expand(text: str, env: dict[str, str]) -> str:
    """Expand `$(VAR)` references as the kubelet does; `$$` is a literal `$`, unknown stay."""

    def replace(match: re.Match[str]) -> str:
        if match[0] == "$$":
            return "$"
        return env.get(match[1], match[0])

    return _VARIABLE.sub(replace, text)


def _variable_value(
    store: Store, pod: dict[str, Any], variable: dict[str, Any], env: dict[str, str]
) -> str | None:
    if "valueFrom" not in variable:
        return expand(str(variable.get("value", "")), env)
    source = variable["valueFrom"]
    namespace = pod["metadata"]["namespace"]
    for ref_field, kind_name in (("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")):
        ref = source.get(ref_field)
        if ref:
            values = _source_values(store, namespace, kind_name, ref)
            if ref["key"] in values:
                return values[ref["key"]]
            if ref.get("optional"):
                return None
            raise ConfigError(
                f"couldn't find key {ref['key']} in {kind_name} {namespace}/{ref['name']}"
            )
    field = (source.get("fieldRef") or {}).get("fieldPath")
    fields: dict[str, str] = {
        "metadata.name": pod["metadata"]["name"],
        "metadata.namespace": namespace,
        "metadata.uid": pod["metadata"]["uid"],
        "spec.nodeName": pod["spec"].get("nodeName", ""),
    }
    if field in fields:
        return fields[field]
    raise ConfigError(
        f"the sandbox cannot resolve valueFrom {source!r} of variable {variable['name']}"
    )


def _source_values(
    store: Store, namespace: str, kind_name: str, ref: dict[str, Any]
) -> dict[str, str]:
    kind = store.kind_of(SECRETS if kind_name == "Secret" else CONFIGMAPS)
    found = store.read(kind, namespace, str(ref.get("name", "")))
    if found is None:
        if ref.get("optional"):
            return {}
        raise ConfigError(f'{kind_name.lower()} "{ref.get("name")}" not found')
    if kind_name == "Secret":
        return {
            key: base64.b64decode(value).decode(errors="replace")
            for key, value in (found.get("data") or {}).items()
        }
    return {key: str(value) for key, value in (found.get("data") or {}).items()}
