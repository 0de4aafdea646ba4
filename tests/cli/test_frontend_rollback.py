"""frontend-rollback end to end: the sandbox cluster, CloudFront on a moto server, and a
local health endpoint, all on 127.0.0.1.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from pytest_httpserver import HTTPServer

from breakglass.sandbox.kubernetes import SandboxCluster
from tests.aws import AWS_ENV, create_distribution, moto_url, reset
from tests.conftest import Cli

__all__ = ["moto_url"]

NAMESPACE = "web"


@pytest.fixture
def cloudfront(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)
    reset(moto_url)
    return boto3.client("cloudfront", endpoint_url=moto_url, region_name="us-east-1")


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[SandboxCluster]:
    with SandboxCluster(workdir=tmp_path / "jobs") as running:
        yield running


def frontend(version: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "frontend",
            "namespace": NAMESPACE,
            "labels": {"app": "frontend"},
            "annotations": {"kubernetes.io/change-cause": f"deploy {version}"},
        },
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "frontend"}},
            "template": {
                "metadata": {"labels": {"app": "frontend"}},
                "spec": {
                    "containers": [{"name": "web", "image": f"registry.local/frontend:{version}"}]
                },
            },
        },
    }


def setup(
    cluster: SandboxCluster,
    cloudfront: Any,
    moto_url: str,
    server: HTTPServer,
    tmp_path: Path,
    serving: str,
) -> str:
    for version in ("1.4.2", "1.5.0"):
        cluster.apply(frontend(version))
        cluster.settle()
    server.expect_request("/healthz").respond_with_json({"status": "ok", "version": serving})
    distribution_id = create_distribution(cloudfront)
    config = {
        "kubernetes": {
            "kubeconfig": str(
                cluster.write_kubeconfig(tmp_path / "kubeconfig", namespace=NAMESPACE)
            ),
            "context": "sandbox",
            "server": cluster.url,
            "namespace": NAMESPACE,
        },
        "aws": {"endpoint_url": moto_url, "distributions": {"frontend": distribution_id}},
        "health": {
            "checks": [
                {
                    "name": "frontend",
                    "url": server.url_for("/healthz"),
                    "expect_status": [200],
                    "json": [{"path": "version", "equals": "1.4.2"}],
                }
            ]
        },
    }
    (tmp_path / "breakglass.yaml").write_text(yaml.safe_dump(config))
    return distribution_id


def test_rollback_purges_the_cdn_after_the_rollout(
    cli: Cli,
    tmp_path: Path,
    cluster: SandboxCluster,
    cloudfront: Any,
    moto_url: str,
    server: HTTPServer,
) -> None:
    distribution_id = setup(cluster, cloudfront, moto_url, server, tmp_path, serving="1.4.2")
    planned = cli("plan", "frontend-rollback", env=AWS_ENV)
    assert planned.code == 0, planned.output
    assert "current: revision 2, images registry.local/frontend:1.5.0" in planned.stdout
    assert "target:  revision 1, images registry.local/frontend:1.4.2" in planned.stdout
    ran = cli("run", "frontend-rollback", "--yes", env=AWS_ENV, timeout=120)
    assert ran.code == 0, ran.output
    image = cluster.get("apps/v1", "Deployment", NAMESPACE, "frontend")["spec"]["template"]["spec"][
        "containers"
    ][0]["image"]
    assert image == "registry.local/frontend:1.4.2"
    listed = cloudfront.list_invalidations(DistributionId=distribution_id)
    assert listed["InvalidationList"]["Quantity"] == 1
    # The purge came after the rollout had completed.
    journal = json.loads(
        cli(
            "runs",
            "show",
            json.loads(cli("runs", "--output", "json").stdout)[0]["id"],
            "--output",
            "json",
        ).stdout
    )["journal"]
    order = [entry["step_id"] for entry in journal if entry["kind"] == "step_ended"]
    assert order.index("wait") < order.index("purge_cdn") < order.index("verify")
    # The bad release's logs were kept before the rollback replaced its pods.
    assert order.index("evidence") < order.index("rollback")
    evidence = next(
        entry
        for entry in journal
        if entry["kind"] == "step_ended" and entry["step_id"] == "evidence"
    )
    assert evidence["data"]["outputs"]["files"]


def test_failed_verification_fails_the_run_and_escalates(
    cli: Cli,
    tmp_path: Path,
    cluster: SandboxCluster,
    cloudfront: Any,
    moto_url: str,
    server: HTTPServer,
) -> None:
    setup(cluster, cloudfront, moto_url, server, tmp_path, serving="1.5.0")
    ran = cli("run", "frontend-rollback", "--yes", env=AWS_ENV, timeout=120)
    assert ran.code == 1, ran.output
    assert "health checks failed" in ran.stdout
    [incident] = json.loads(cli("incident", "list", "--output", "json").stdout)
    shown = json.loads(cli("incident", "show", incident["id"], "--output", "json").stdout)
    assert shown["escalation_level"] == 1
