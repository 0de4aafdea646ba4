"""`aws.cloudfront_invalidate`: purge paths from a CloudFront distribution's caches.

The caller reference is the run and step, so a retried step finds the invalidation it
already created instead of starting another. Completion is compared case-insensitively:
AWS reports `Completed`, and emulators such as moto report `COMPLETED`.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import boto3
import botocore.config
import botocore.exceptions
from pydantic import Field

from breakglass.actions.base import Action, ActionContext, ActionError, Outputs, Params, PlanResult
from breakglass.config.aws import AwsConfig
from breakglass.durations import PositiveDuration


def aws_settings(ctx: ActionContext) -> AwsConfig:
    found = ctx.config.model.aws
    if found is None:
        raise ActionError("no AWS account is configured; add `aws:` with region and distributions")
    return found


def cloudfront(settings: AwsConfig) -> Any:
    keys: dict[str, str] = {}
    if settings.emulator_credentials:
        # The config validator keeps these on a loopback endpoint; they are not secrets.
        keys = {"aws_access_key_id": "sandbox", "aws_secret_access_key": "sandbox"}
    session = boto3.session.Session(
        profile_name=settings.profile, region_name=settings.region, **keys
    )
    timeout = float(settings.request_timeout)
    return session.client(
        "cloudfront",
        endpoint_url=settings.endpoint_url,
        config=botocore.config.Config(
            connect_timeout=timeout,
            read_timeout=timeout,
            retries={"max_attempts": 1, "mode": "standard"},
        ),
    )


def mapped(error: Exception, doing: str) -> ActionError:
    if isinstance(error, botocore.exceptions.ClientError):
        code = error.response.get("Error", {}).get("Code", "Error")
        message = error.response.get("Error", {}).get("Message", "")
        temporary = code in ("Throttling", "ThrottlingException", "ServiceUnavailable")
        return ActionError(f"cannot {doing}: {code}: {message}", temporary=temporary)
    if isinstance(error, botocore.exceptions.NoCredentialsError):
        return ActionError(
            f"cannot {doing}: no AWS credentials found; set them in the environment or a profile"
        )
    if isinstance(
        error, botocore.exceptions.EndpointConnectionError | botocore.exceptions.ConnectTimeoutError
    ):
        return ActionError(f"cannot {doing}: {error}", temporary=True, unreachable=True)
    return ActionError(f"cannot {doing}: {error}", temporary=True)


class InvalidateParams(Params):
    distribution: str = Field(description="A name under aws.distributions, or a distribution id.")
    paths: list[str] = Field(default_factory=lambda: ["/*"], min_length=1)
    wait: bool = Field(default=False, description="Wait until the invalidation has completed.")
    interval: PositiveDuration = Field(default=5.0, description="Time between two status reads.")


class InvalidateOutputs(Outputs):
    distribution_id: str
    invalidation_id: str
    status: str
    duration: float


class AwsCloudFrontInvalidate(Action[InvalidateParams, InvalidateOutputs]):
    name = "aws.cloudfront_invalidate"
    summary = (
        "Invalidate paths in a CloudFront distribution, and optionally wait until it completes."
    )
    params_model: ClassVar[type[Params]] = InvalidateParams
    outputs_model: ClassVar[type[Outputs]] = InvalidateOutputs
    mutating = True
    idempotent = True
    default_timeout = 900.0
    enforces_timeout = True

    def _resolve(self, params: InvalidateParams, ctx: ActionContext) -> tuple[AwsConfig, str]:
        settings = aws_settings(ctx)
        for path in params.paths:
            if not path.startswith("/"):
                raise ActionError(f"invalidation path {path!r} must start with /")
        return settings, settings.distributions.get(params.distribution, params.distribution)

    def plan(self, params: InvalidateParams, ctx: ActionContext) -> PlanResult:
        settings, distribution_id = self._resolve(params, ctx)
        client = cloudfront(settings)
        try:
            found = client.get_distribution(Id=distribution_id)["Distribution"]
        except Exception as e:  # botocore raises several unrelated classes
            raise mapped(e, f"read CloudFront distribution {distribution_id}") from None
        domain = found.get("DomainName", "?")
        return PlanResult(
            summary=f"invalidate {', '.join(params.paths)} in CloudFront distribution {distribution_id}",
            target=f"CloudFront distribution {distribution_id} ({domain})",
            changes=[
                f"distribution status {found.get('Status', '?')}",
                "wait until the invalidation completes"
                if params.wait
                else "do not wait for completion",
            ],
            mutating=True,
        )

    def run(self, params: InvalidateParams, ctx: ActionContext) -> InvalidateOutputs:
        settings, distribution_id = self._resolve(params, ctx)
        client = cloudfront(settings)
        started = ctx.clock.monotonic()
        reference = f"{ctx.run_id or 'breakglass'}-{ctx.step_id or 'invalidate'}"
        if ctx.run_id is None:
            reference += f"-{time.time_ns()}"
        try:
            created = client.create_invalidation(
                DistributionId=distribution_id,
                InvalidationBatch={
                    "Paths": {"Quantity": len(params.paths), "Items": list(params.paths)},
                    "CallerReference": reference,
                },
            )["Invalidation"]
        except Exception as e:
            raise mapped(e, f"create an invalidation in {distribution_id}") from None
        invalidation_id = str(created["Id"])
        status = str(created.get("Status", "unknown"))
        ctx.note(
            f"invalidation {invalidation_id} created in {distribution_id}", {"id": invalidation_id}
        )
        while params.wait and status.lower() != "completed":
            if ctx.cancelled.is_set() or ctx.remaining(started) <= 0:
                raise ActionError(
                    f"invalidation {invalidation_id} of {distribution_id} is still {status} "
                    f"after {ctx.timeout:g} s",
                    outputs={"invalidation_id": invalidation_id},
                )
            ctx.clock.sleep(min(float(params.interval), max(0.05, ctx.remaining(started))))
            try:
                status = str(
                    client.get_invalidation(DistributionId=distribution_id, Id=invalidation_id)[
                        "Invalidation"
                    ]["Status"]
                )
            except Exception as e:
                raise mapped(e, f"read invalidation {invalidation_id}") from None
        return InvalidateOutputs(
            distribution_id=distribution_id,
            invalidation_id=invalidation_id,
            status=status,
            duration=round(ctx.clock.monotonic() - started, 3),
        )
