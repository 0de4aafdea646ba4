"""The Kubernetes API as the k8s.* actions use it: one cluster, raw JSON, timeouts, our errors.

Objects are read as the API server's JSON (`_preload_content=False`), not as the client's
model classes, so that templates compare field for field with what the server stores.
Every request carries the configured timeout, and the client's errors never leave this
module: each becomes a K8sError that names the context, server and namespace.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from breakglass.actions.base import ActionContext, ActionError
from breakglass.config.kubernetes import KubernetesConfig
from breakglass.config.redaction import REDACTOR


class K8sError(ActionError):
    """A Kubernetes API call that failed, named with where it was aimed."""


class K8sNotFoundError(K8sError):
    pass


class K8sConflictError(K8sError):
    pass


class K8sForbiddenError(K8sError):
    pass


class K8sUnreachableError(K8sError):
    pass


class K8sConfigError(K8sError):
    pass


def settings(ctx: ActionContext) -> KubernetesConfig:
    found = ctx.config.model.kubernetes
    if found is None:
        raise K8sConfigError(
            "no Kubernetes cluster is configured; add `kubernetes:` with kubeconfig, context "
            "and namespace to the config"
        )
    return found


class Kube:
    """A client for the configured cluster, checked against the server the config names."""

    def __init__(self, cluster: KubernetesConfig, base_dir: Path) -> None:
        self.settings = cluster
        self.namespace = cluster.namespace
        self.timeout = float(cluster.request_timeout)
        self.api = self._client(cluster, base_dir)
        self.server = str(self.api.configuration.host).rstrip("/")
        self.context = (
            "in-cluster" if cluster.in_cluster else (cluster.context or "current context")
        )
        if cluster.server is not None and self.server != cluster.server.rstrip("/"):
            raise K8sConfigError(
                f"kubeconfig context {self.context} points at {self.server}, but the config "
                f"names {cluster.server}; fix kubernetes.context or kubernetes.server so that "
                "breakglass acts on the intended cluster"
            )
        self.apps = k8s.AppsV1Api(self.api)
        self.core = k8s.CoreV1Api(self.api)
        self.batch = k8s.BatchV1Api(self.api)
        self.autoscaling = k8s.AutoscalingV2Api(self.api)

    @staticmethod
    def _client(cluster: KubernetesConfig, base_dir: Path) -> k8s.ApiClient:
        configuration = k8s.Configuration()
        try:
            if cluster.in_cluster:
                k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            else:
                path = cluster.kubeconfig
                if path is not None and not path.is_absolute():
                    path = base_dir / path
                config_file = str(path) if path else os.environ.get("KUBECONFIG")
                k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
                    config_file=config_file,
                    context=cluster.context,
                    client_configuration=configuration,
                    persist_config=False,
                )
        except (ConfigException, OSError) as e:
            raise K8sConfigError(f"cannot load the Kubernetes client configuration: {e}") from None
        # No hidden retries inside urllib3: the step's own retry policy decides. The pool
        # reads this when the client is made, so it is set before.
        configuration.retries = 0
        return k8s.ApiClient(configuration)

    def where(self) -> str:
        """Name the target as plans and prompts show it."""
        return f"context {self.context}, API server {self.server}, namespace {self.namespace}"

    def call(self, doing: str, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call one API method with the timeout; return the parsed JSON body."""
        try:
            response = method(
                *args, _preload_content=False, _request_timeout=self.timeout, **kwargs
            )
        except ApiException as e:
            raise self._mapped(e, doing) from None
        except urllib3.exceptions.HTTPError as e:
            raise K8sUnreachableError(
                f"cannot {doing}: the API server {self.server} did not respond ({type(e).__name__}); "
                "check the network and the kubeconfig context",
                temporary=True,
                unreachable=True,
            ) from None
        body = response.data
        return json.loads(body) if body else {}

    def _mapped(self, error: ApiException, doing: str) -> K8sError:
        detail = error.reason or ""
        with contextlib.suppress(ValueError, AttributeError):
            detail = json.loads(error.body or "{}").get("message") or detail
        message = REDACTOR.redact(f"cannot {doing} ({self.where()}): {error.status} {detail}")
        if error.status == 404:
            return K8sNotFoundError(message)
        if error.status == 409:
            return K8sConflictError(message, temporary=True)
        if error.status in (401, 403):
            return K8sForbiddenError(message + "; check the context's credentials and RBAC")
        if error.status is not None and (error.status == 429 or error.status >= 500):
            return K8sError(message, temporary=True)
        return K8sError(message)

    # -- reads and writes the actions share --------------------------------------------------

    def deployment(self, name: str) -> dict[str, Any]:
        return dict(
            self.call(
                f"read Deployment {name}",
                self.apps.read_namespaced_deployment,
                name,
                self.namespace,
            )
        )

    def replica_sets_of(self, deployment: dict[str, Any]) -> list[dict[str, Any]]:
        """Return the ReplicaSets the Deployment owns (by owner UID), oldest revision first."""
        uid = deployment["metadata"].get("uid")
        labels = deployment["spec"].get("selector", {}).get("matchLabels", {})
        selector = ",".join(f"{key}={value}" for key, value in sorted(labels.items()))
        listed = self.call(
            f"list the ReplicaSets of {deployment['metadata']['name']}",
            self.apps.list_namespaced_replica_set,
            self.namespace,
            label_selector=selector,
        )
        owned = [
            item
            for item in listed.get("items", [])
            if any(
                owner.get("uid") == uid and owner.get("kind") == "Deployment"
                for owner in item["metadata"].get("ownerReferences", [])
            )
        ]
        return sorted(owned, key=revision_of)

    def patch_deployment(self, name: str, body: Any) -> dict[str, Any]:
        return dict(
            self.call(
                f"patch Deployment {name}",
                self.apps.patch_namespaced_deployment,
                name,
                self.namespace,
                body,
            )
        )

    def autoscalers_for(self, deployment: str) -> list[dict[str, Any]]:
        """Return the HorizontalPodAutoscalers whose target is this Deployment."""
        listed = self.call(
            "list HorizontalPodAutoscalers",
            self.autoscaling.list_namespaced_horizontal_pod_autoscaler,
            self.namespace,
        )
        return [
            item
            for item in listed.get("items", [])
            if item.get("spec", {}).get("scaleTargetRef", {}).get("kind") == "Deployment"
            and item["spec"]["scaleTargetRef"].get("name") == deployment
        ]


def api_server(cluster: KubernetesConfig, base_dir: Path) -> str | None:
    """Return the API server a config acts on: its `server`, else its kubeconfig context's.

    None when neither names one, or the kubeconfig cannot be loaded.
    """
    if cluster.server is not None:
        return cluster.server.rstrip("/")
    try:
        return str(Kube._client(cluster, base_dir).configuration.host).rstrip("/")
    except K8sConfigError:
        return None


def revision_of(obj: dict[str, Any]) -> int:
    value = obj["metadata"].get("annotations", {}).get("deployment.kubernetes.io/revision", "0")
    try:
        return int(value)
    except ValueError:
        return 0


def kube(ctx: ActionContext) -> Kube:
    """Return a client for the configured cluster, or raise naming what is missing."""
    return Kube(settings(ctx), ctx.config.base_dir)
