"""The catalog's Kubernetes runbooks and snapshots from the command line, against the sandbox.

The sandbox API server runs in the test process on 127.0.0.1; `breakglass` runs as a
subprocess with a kubeconfig that points at it. The sandbox plays the Deployment
controller and the kubelet, which the API emulator alone does not.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from breakglass.sandbox.kubernetes import SandboxCluster
from tests.conftest import Cli

NAMESPACE = "shop"
SERVICES = ("frontend", "backend", "worker", "payment-service")


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[SandboxCluster]:
    with SandboxCluster(workdir=tmp_path / "jobs") as running:
        yield running


def manifest(name: str, version: str, replicas: int = 2) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "labels": {"app": name},
            "annotations": {"kubernetes.io/change-cause": f"deploy {name} {version}"},
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [{"name": name, "image": f"registry.local/{name}:{version}"}]
                },
            },
        },
    }


def write_config(cluster: SandboxCluster, tmp_path: Path, **extra: Any) -> None:
    kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig", namespace=NAMESPACE)
    config = {
        "kubernetes": {
            "kubeconfig": str(kubeconfig),
            "context": "sandbox",
            "server": cluster.url,
            "namespace": NAMESPACE,
            "snapshot": {"configmaps": ["app-config"]},
        },
        **extra,
    }
    (tmp_path / "breakglass.yaml").write_text(yaml.safe_dump(config))


def image(cluster: SandboxCluster, name: str) -> str:
    found = cluster.get("apps/v1", "Deployment", NAMESPACE, name)
    return str(found["spec"]["template"]["spec"]["containers"][0]["image"])


def test_rollback_all_changes_only_what_differs(
    cli: Cli, tmp_path: Path, cluster: SandboxCluster
) -> None:
    for name in SERVICES:
        cluster.apply(manifest(name, "1.0.0"))
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "app-config", "namespace": NAMESPACE},
            "data": {"MAINTENANCE_MODE": "false"},
        }
    )
    cluster.settle()
    write_config(cluster, tmp_path)
    created = cli("snapshot", "create", "good", "--note", "verified 1.0.0")
    assert created.code == 0, created.output
    assert "frontend: revision 1, 2 replica(s), registry.local/frontend:1.0.0" in created.stdout
    assert cli("snapshot", "create", "good").code == 2

    for name in ("frontend", "backend"):
        cluster.apply(manifest(name, "1.1.0"))
    cluster.settle()
    untouched = {
        name: cluster.get("apps/v1", "Deployment", NAMESPACE, name)["metadata"]["resourceVersion"]
        for name in ("worker", "payment-service")
    }
    diff = cli("snapshot", "diff", "good")
    assert diff.code == 1
    assert (
        "~ frontend: revision 2 -> the snapshot's revision 1 template, images "
        "registry.local/frontend:1.1.0 -> registry.local/frontend:1.0.0" in diff.stdout
    )
    assert "= worker: revision 1 matches the snapshot" in diff.stdout

    planned = cli("plan", "k8s-rollback-all", "-i", "snapshot=good")
    assert planned.code == 0, planned.output
    assert "restore 2 of 4 Deployment(s) to snapshot good" in planned.stdout
    ran = cli("run", "k8s-rollback-all", "-i", "snapshot=good", "--yes")
    assert ran.code == 0, ran.output
    assert image(cluster, "frontend") == "registry.local/frontend:1.0.0"
    assert image(cluster, "backend") == "registry.local/backend:1.0.0"
    for name, version in untouched.items():
        after = cluster.get("apps/v1", "Deployment", NAMESPACE, name)
        assert after["metadata"]["resourceVersion"] == version
        assert after["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
    assert cli("snapshot", "diff", "good").code == 0
    listed = json.loads(cli("snapshot", "list", "--output", "json").stdout)
    assert [item["name"] for item in listed] == ["good"]


def test_unknown_snapshot_refused_before_running(
    cli: Cli, tmp_path: Path, cluster: SandboxCluster
) -> None:
    write_config(cluster, tmp_path)
    ran = cli("run", "k8s-rollback-all", "-i", "snapshot=nope", "--yes")
    assert ran.code == 2
    assert "no snapshot named 'nope'" in ran.stderr
    assert json.loads(cli("runs", "--output", "json").stdout) == []


def test_bad_values_refused_at_plan_time(cli: Cli, tmp_path: Path, cluster: SandboxCluster) -> None:
    for version in ("1.0.0", "1.1.0"):
        cluster.apply(manifest("frontend", version))
        cluster.settle()
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "app-config", "namespace": NAMESPACE},
            "data": {},
        }
    )
    write_config(cluster, tmp_path)
    planned = cli("plan", "frontend-rollback", "-i", "to_revision=0")
    assert planned.code == 2
    assert "step rollback cannot run: invalid parameters: to_revision" in planned.stdout
    assert cli("snapshot", "create", "../etc/x").code == 2
    assert cli("snapshot", "create", "good").code == 0
    cluster.delete("apps/v1", "Deployment", NAMESPACE, "frontend")
    refused = cli("run", "k8s-rollback-all", "-i", "snapshot=good", "--yes")
    assert refused.code == 2
    assert "frontend of snapshot good do not exist in namespace shop" in refused.stderr
    assert json.loads(cli("runs", "--output", "json").stdout) == []
