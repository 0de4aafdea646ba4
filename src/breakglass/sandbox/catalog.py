"""The sandbox platform's Deployments, their release history and its ConfigMaps.

The demo follows this story. Backend 2.5.0 is the broken release: it shipped with
migration 0004_order_currency and fails 41% of its checkouts. Every earlier
release is healthy with the schema head it was built for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

NAMESPACE = "shop"
DATABASE = "app"
REGISTRY = "registry.sandbox.local"


@dataclass(frozen=True)
class Application:
    name: str
    replicas: int
    releases: tuple[str, ...]  # oldest first; the last one is live when the sandbox starts
    database: bool = False  # gets the PG* variables, as the backend's migration Jobs need
    config: str = "app-config"  # the ConfigMap it reads through envFrom
    health: bool = True  # serves /NAME/healthz on the sandbox's health server


APPLICATIONS = (
    Application("frontend", 2, ("3.1.0", "3.2.0", "3.2.1")),
    Application("backend", 3, ("2.3.0", "2.4.0", "2.4.1", "2.5.0"), database=True),
    Application("worker", 2, ("2.4.1", "2.5.0"), database=True, health=False),
    Application("payment-service", 2, ("1.8.0", "1.9.0"), config="payment-config"),
)

BROKEN_RELEASES = {"backend": "2.5.0"}

# The schema head each backend release runs with.
BACKEND_SCHEMA = {
    "2.3.0": "0002_orders",
    "2.4.0": "0003_subscriptions",
    "2.4.1": "0003_subscriptions",
    "2.5.0": "0004_order_currency",
}
GOOD_SCHEMA = "0003_subscriptions"
LIVE_SCHEMA = "0004_order_currency"

CONFIGMAPS: dict[str, dict[str, str]] = {
    "app-config": {
        "MAINTENANCE_MODE": "false",
        "EMERGENCY_MODE": "false",
        "EMERGENCY_MESSAGE": "",
        "PAYMENT_NOTICE": "",
        "CDN_NOTICE": "",
    },
    "payment-config": {"PRIMARY_PROCESSOR": "stripe", "BACKUP_PROCESSOR": "adyen"},
}


def image(app: str, release: str) -> str:
    return f"{REGISTRY}/{app}:{release}"


def release_of(deployment: dict[str, Any]) -> str:
    """Return the release a Deployment's template runs: its first container's image tag."""
    containers = deployment["spec"]["template"]["spec"]["containers"]
    return str(containers[0]["image"]).rsplit(":", 1)[-1]


def deployment(app: Application, release: str, pg_port: int) -> dict[str, Any]:
    env: list[dict[str, str]] = [{"name": "RELEASE", "value": release}]
    if app.database:
        env += [
            {"name": "PGHOST", "value": "127.0.0.1"},
            {"name": "PGPORT", "value": str(pg_port)},
            {"name": "PGUSER", "value": "postgres"},
            {"name": "PGDATABASE", "value": DATABASE},
        ]
    labels = {"app": app.name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": app.name,
            "namespace": NAMESPACE,
            "labels": labels,
            "annotations": {"kubernetes.io/change-cause": f"deploy {app.name} {release}"},
        },
        "spec": {
            "replicas": app.replicas,
            "revisionHistoryLimit": 10,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": app.name,
                            "image": image(app.name, release),
                            "env": env,
                            "envFrom": [{"configMapRef": {"name": app.config}}],
                        }
                    ]
                },
            },
        },
    }


def configmap(name: str, data: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "data": dict(data),
    }
