"""AWS in the platform config: region, profile and the resources runbooks name.

Credentials come from the standard AWS chain (environment, profile, instance or pod role)
and never from this file.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from breakglass.durations import PositiveDuration


class AwsConfig(BaseModel):
    """The AWS account breakglass acts on."""

    model_config = ConfigDict(extra="forbid")

    region: str = Field(default="us-east-1", description="Region of the API calls.")
    profile: str | None = Field(
        default=None, description="A named profile of the AWS config files."
    )
    endpoint_url: str | None = Field(
        default=None,
        description="Send every call to this endpoint instead of AWS (the sandbox's moto server).",
    )
    request_timeout: PositiveDuration = Field(
        default=20.0, description="Deadline of each API call."
    )
    distributions: dict[str, str] = Field(
        default_factory=dict,
        description="CloudFront distribution ids by the name runbooks use, as in frontend: E2EXAMPLE.",
    )
