"""Defaulting and validation, the checks a real API server applies before it stores an object.

Only the rules that client code commonly trips over are here. They cover names, label
syntax, the fields a Deployment or a Job needs, and immutable selectors and Job templates.
The defaults (replicas, revision history, container pull policy) are the ones that make a
stored pod template differ from the manifest that created it.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from breakglass.sandbox.kubernetes.errors import ApiError, bad_request, invalid
from breakglass.sandbox.kubernetes.selectors import selector_from_spec
from breakglass.sandbox.kubernetes.store import Kind

_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_LABEL_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")

# Kinds whose names must be DNS labels (63 characters, no dots) rather than subdomains.
_LABEL_NAMED_KINDS = frozenset({"Namespace", "Service"})

# Kinds whose `spec.template` is a pod template that the workload controllers copy.
_TEMPLATE_KINDS = frozenset({"Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job"})


def admit(kind: Kind, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    """Default and validate an object about to be created (old is None) or updated.

    Raises a 400 ApiError for malformed JSON shapes and a 422 for invalid values.
    """
    meta = obj.get("metadata") or {}
    name = str(meta.get("name") or "")
    _check_name(kind, name)
    _check_string_map(meta, "labels")
    _check_string_map(meta, "annotations")
    _check_labels(kind, name, meta.get("labels") or {})
    if kind.kind == "Secret":
        _default_secret(obj)
    if kind.kind in _TEMPLATE_KINDS or kind.kind == "Pod":
        _default_workload(kind, obj)
        if kind.kind == "Job" and old is None:
            _select_own_pods(obj)
        _validate_workload(kind, name, obj, old)


def _kind_label(kind: Kind) -> str:
    group = kind.resource.group
    return f"{kind.kind}.{group}" if group else kind.kind


def _check_name(kind: Kind, name: str) -> None:
    if not name:
        cause = "metadata.name: Required value: name or generateName is required"
        raise invalid(_kind_label(kind), name, [cause])
    if kind.kind in _LABEL_NAMED_KINDS:
        pattern, limit, rule, characters = _DNS_LABEL, 63, "RFC 1123 label", "'-'"
    else:
        pattern, limit, rule, characters = _DNS_SUBDOMAIN, 253, "RFC 1123 subdomain", "'-' or '.'"
    if len(name) > limit or not pattern.fullmatch(name):
        cause = (
            f'metadata.name: Invalid value: "{name}": a lowercase {rule} must consist of lower '
            f"case alphanumeric characters, {characters}, start and end with an alphanumeric "
            f"character, and be at most {limit} characters"
        )
        raise invalid(_kind_label(kind), name, [cause])


def _check_string_map(meta: dict[str, Any], field: str) -> None:
    value = meta.get(field)
    if value is None:
        return
    if not isinstance(value, dict) or not all(
        isinstance(key, str) and isinstance(item, str) for key, item in value.items()
    ):
        raise bad_request(f"metadata.{field}: every key and value must be a string, got {value!r}")


def _check_labels(kind: Kind, name: str, labels: dict[str, str]) -> None:
    causes: list[str] = []
    for key, value in labels.items():
        prefix, _, label_name = key.rpartition("/")
        if (
            (prefix and not _DNS_SUBDOMAIN.fullmatch(prefix))
            or len(label_name) > 63
            or not (_LABEL_NAME.fullmatch(label_name))
        ):
            causes.append(f'metadata.labels: Invalid value: "{key}": invalid label key')
        if len(value) > 63 or not _LABEL_VALUE.fullmatch(value):
            causes.append(f'metadata.labels: Invalid value: "{value}": invalid label value')
    if causes:
        raise invalid(_kind_label(kind), name, causes)


def _default_secret(obj: dict[str, Any]) -> None:
    """Fold `stringData` into base64 `data` and check that `data` is base64, as the API does."""
    obj.setdefault("type", "Opaque")
    data = obj.get("data") or {}
    for key, value in data.items():
        try:
            base64.b64decode(str(value), validate=True)
        except (binascii.Error, ValueError) as e:
            raise bad_request(f"Secret data[{key!r}] is not valid base64: {e}") from e
    for key, value in (obj.pop("stringData", None) or {}).items():
        data[key] = base64.b64encode(str(value).encode()).decode()
    if data:
        obj["data"] = data


def _default_workload(kind: Kind, obj: dict[str, Any]) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    if kind.kind == "Deployment":
        spec.setdefault("replicas", 1)
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        strategy = spec.setdefault("strategy", {"type": "RollingUpdate"})
        if strategy.get("type") == "RollingUpdate":
            strategy.setdefault("rollingUpdate", {"maxSurge": "25%", "maxUnavailable": "25%"})
    elif kind.kind == "ReplicaSet":
        spec.setdefault("replicas", 1)
    elif kind.kind == "Job":
        spec.setdefault("backoffLimit", 6)
        spec.setdefault("completions", 1)
        spec.setdefault("parallelism", 1)
    pod_spec = spec if kind.kind == "Pod" else (spec.get("template") or {}).get("spec")
    if isinstance(pod_spec, dict):
        _default_pod_spec(pod_spec, restart_policy=None if kind.kind == "Job" else "Always")


def _select_own_pods(job: dict[str, Any]) -> None:
    """Give a new Job the selector and pod labels the API server generates from its uid."""
    spec = job.get("spec")
    if not isinstance(spec, dict) or spec.get("manualSelector"):
        return
    meta = job["metadata"]
    own = {
        "batch.kubernetes.io/controller-uid": meta["uid"],
        "batch.kubernetes.io/job-name": meta["name"],
        "controller-uid": meta["uid"],
        "job-name": meta["name"],
    }
    spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": meta["uid"]}}
    template = spec.get("template")
    if isinstance(template, dict):
        template_meta = template.setdefault("metadata", {})
        template_meta["labels"] = {**(template_meta.get("labels") or {}), **own}


def _default_pod_spec(pod_spec: dict[str, Any], *, restart_policy: str | None) -> None:
    if restart_policy is not None:
        pod_spec.setdefault("restartPolicy", restart_policy)
    pod_spec.setdefault("terminationGracePeriodSeconds", 30)
    pod_spec.setdefault("dnsPolicy", "ClusterFirst")
    pod_spec.setdefault("schedulerName", "default-scheduler")
    pod_spec.setdefault("securityContext", {})
    for container in (pod_spec.get("containers") or []) + (pod_spec.get("initContainers") or []):
        if not isinstance(container, dict):
            continue
        image = str(container.get("image") or "")
        untagged = ":" not in image.rsplit("/", 1)[-1] and "@" not in image
        latest = untagged or image.endswith(":latest")
        container.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        container.setdefault("resources", {})
        for port in container.get("ports") or []:
            if isinstance(port, dict):
                port.setdefault("protocol", "TCP")


def _validate_workload(
    kind: Kind, name: str, obj: dict[str, Any], old: dict[str, Any] | None
) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        raise invalid(_kind_label(kind), name, ["spec: Required value"])
    causes: list[str] = []
    if kind.kind == "Pod":
        causes += _container_causes("spec", spec)
    else:
        causes += _template_causes(kind, spec)
    if old is not None:
        causes += _immutable_causes(kind, spec, old.get("spec") or {})
    if causes:
        raise invalid(_kind_label(kind), name, causes)


def _template_causes(kind: Kind, spec: dict[str, Any]) -> list[str]:
    causes: list[str] = []
    template = spec.get("template")
    if not isinstance(template, dict):
        return ["spec.template: Required value"]
    pod_spec = template.get("spec")
    if not isinstance(pod_spec, dict):
        return ["spec.template.spec: Required value"]
    causes += _container_causes("spec.template.spec", pod_spec)

    replicas = spec.get("replicas", 0)
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
        causes.append(f"spec.replicas: Invalid value: {replicas!r}: must be a non-negative integer")

    if kind.kind == "Job":
        policy = pod_spec.get("restartPolicy")
        if policy not in ("Never", "OnFailure"):
            causes.append(
                f'spec.template.spec.restartPolicy: Unsupported value: "{policy}": '
                'supported values: "OnFailure", "Never"'
            )
        return causes

    selector = spec.get("selector")
    if not isinstance(selector, dict) or not (
        selector.get("matchLabels") or selector.get("matchExpressions")
    ):
        return [*causes, "spec.selector: Required value"]
    try:
        parsed = selector_from_spec(selector)
    except ApiError as e:
        return [*causes, f"spec.selector: Invalid value: {e.message}"]

    labels = (template.get("metadata") or {}).get("labels") or {}
    if not parsed.matches(labels):
        causes.append(
            "spec.template.metadata.labels: Invalid value: "
            f"{labels!r}: `selector` does not match template `labels`"
        )
    return causes


def _container_causes(path: str, pod_spec: dict[str, Any]) -> list[str]:
    containers = pod_spec.get("containers")
    if not isinstance(containers, list) or not containers:
        return [f"{path}.containers: Required value"]
    causes: list[str] = []
    seen: set[str] = set()
    for index, container in enumerate(containers):
        if not isinstance(container, dict):
            causes.append(f"{path}.containers[{index}]: Invalid value: must be an object")
            continue
        container_name = container.get("name")
        if not container_name:
            causes.append(f"{path}.containers[{index}].name: Required value")
        elif container_name in seen:
            causes.append(f'{path}.containers[{index}].name: Duplicate value: "{container_name}"')
        seen.add(str(container_name))
        if not container.get("image"):
            causes.append(f"{path}.containers[{index}].image: Required value")
    return causes


def _immutable_causes(kind: Kind, spec: dict[str, Any], old_spec: dict[str, Any]) -> list[str]:
    immutable = ["selector"]
    if kind.kind == "Job":
        immutable.append("template")
    return [
        f"spec.{field}: Invalid value: {spec.get(field)!r}: field is immutable"
        for field in immutable
        if field in old_spec and spec.get(field) != old_spec.get(field)
    ]
