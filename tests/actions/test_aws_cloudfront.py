"""CloudFront invalidations against a moto server on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest

from breakglass.actions import registry
from breakglass.actions.base import ActionContext, ActionError
from breakglass.config.loading import LoadedConfig
from breakglass.config.model import PlatformConfig
from tests.aws import AWS_ENV, create_distribution, moto_url, reset

__all__ = ["moto_url"]


@pytest.fixture
def distribution(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)
    reset(moto_url)
    return create_distribution(
        boto3.client("cloudfront", endpoint_url=moto_url, region_name="us-east-1")
    )


def context(moto_url: str, tmp_path: Path, **aws: Any) -> ActionContext:
    model = PlatformConfig.model_validate(
        {"aws": {"endpoint_url": moto_url, "region": "us-east-1", **aws}}
    )
    return ActionContext(
        config=LoadedConfig(model, tmp_path / "breakglass.yaml", "digest"),
        run_id="RUN-20261204-001",
        step_id="purge",
        timeout=30,
    )


def test_invalidation_created_and_waited_for(
    moto_url: str, distribution: str, tmp_path: Path
) -> None:
    ctx = context(moto_url, tmp_path, distributions={"frontend": distribution})
    action = registry.get_action("aws.cloudfront_invalidate")
    params = action.parse(
        {
            "distribution": "frontend",
            "paths": ["/index.html", "/assets/*"],
            "wait": True,
            "interval": "50ms",
        }
    )
    planned = action.plan(params, ctx)
    assert planned.target.startswith(f"CloudFront distribution {distribution} (")
    done = action.run(params, ctx)
    assert done.distribution_id == distribution
    assert done.status.lower() == "completed"
    listed = boto3.client(
        "cloudfront", endpoint_url=moto_url, region_name="us-east-1"
    ).list_invalidations(DistributionId=distribution)
    assert listed["InvalidationList"]["Quantity"] == 1


def test_unknown_distribution_named(moto_url: str, distribution: str, tmp_path: Path) -> None:
    ctx = context(moto_url, tmp_path)
    action = registry.get_action("aws.cloudfront_invalidate")
    with pytest.raises(
        ActionError, match="cannot read CloudFront distribution ENOSUCH: NoSuchDistribution"
    ):
        action.plan(action.parse({"distribution": "ENOSUCH"}), ctx)


def test_relative_path_refused(moto_url: str, distribution: str, tmp_path: Path) -> None:
    ctx = context(moto_url, tmp_path)
    action = registry.get_action("aws.cloudfront_invalidate")
    with pytest.raises(ActionError, match="must start with /"):
        action.run(action.parse({"distribution": distribution, "paths": ["index.html"]}), ctx)


def test_unreachable_endpoint_is_temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    ctx = context("http://127.0.0.1:9", tmp_path, request_timeout="1s")
    action = registry.get_action("aws.cloudfront_invalidate")
    with pytest.raises(ActionError) as raised:
        action.plan(action.parse({"distribution": "E1"}), ctx)
    assert raised.value.unreachable
    assert raised.value.temporary
