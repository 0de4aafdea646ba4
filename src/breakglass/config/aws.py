"""AWS in the platform config: region, profile and the resources runbooks name.

Credentials come from the standard AWS chain (environment, profile, instance or pod role)
and never from this file.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, model_validator

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
    emulator_credentials: bool = Field(
        default=False,
        description=(
            "Sign calls with fixed placeholder keys, as a local emulator such as moto accepts. "
            "Only with an endpoint_url on 127.0.0.1 or localhost."
        ),
    )
    request_timeout: PositiveDuration = Field(
        default=20.0, description="Deadline of each API call."
    )
    distributions: dict[str, str] = Field(
        default_factory=dict,
        description="CloudFront distribution ids by the name runbooks use, as in frontend: E2EXAMPLE.",
    )

    @model_validator(mode="after")
    def _placeholder_keys_stay_local(self) -> AwsConfig:
        if self.emulator_credentials:
            host = urlsplit(self.endpoint_url or "").hostname
            if host not in {"127.0.0.1", "localhost", "::1"}:
                raise ValueError(
                    "emulator_credentials needs an endpoint_url on 127.0.0.1 or localhost: "
                    "placeholder keys are never sent to AWS"
                )
        return self
