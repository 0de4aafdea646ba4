"""Notification channels in the platform config: Slack, a generic webhook, email and PagerDuty.

Contacts name the channels to try, in order. Every credential (the Slack webhook URL, a
header value, the SMTP password, the PagerDuty routing key) is a secret reference, read
only when a notification is sent.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    field_validator,
    model_validator,
)

from breakglass.config.headers import HeaderMap, SecretHeaderMap, check_headers_once
from breakglass.config.secrets import SecretRef
from breakglass.durations import PositiveDuration

CHANNEL_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
# A plain address such as oncall@example.com. Display names ("Ops <ops@example.com>") are not
# accepted, so that the value can go into an SMTP envelope unchanged.
EMAIL_ADDRESS = re.compile(r"^[^@\s<>\"(),;:]+@[^@\s<>\"(),;:]+\.[^@\s<>\"(),;:]+$")
PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
MAX_RETRIES = 5


def is_email_address(value: str) -> bool:
    return EMAIL_ADDRESS.match(value) is not None


def _check_channel_name(value: str) -> str:
    if not re.match(CHANNEL_NAME, value):
        raise ValueError(
            f"channel name {value!r} must start with a letter or digit and use only letters, "
            "digits, '.', '_' and '-'"
        )
    return value


ChannelName = Annotated[str, AfterValidator(_check_channel_name)]


class ChannelSettings(BaseModel):
    """Settings that every channel kind shares."""

    model_config = ConfigDict(extra="forbid")

    timeout: PositiveDuration = Field(
        default=10.0, description="Timeout of each network operation of one delivery attempt."
    )
    retries: int = Field(
        default=2,
        ge=0,
        le=MAX_RETRIES,
        description=(
            "Extra attempts after a temporary failure (connection error, timeout, HTTP 429 or "
            "5xx, SMTP 4xx). The first retry waits 0.5s, and each next one twice as long."
        ),
    )


class SlackChannel(ChannelSettings):
    """A Slack incoming webhook."""

    kind: Literal["slack"]
    url: SecretRef = Field(
        description=(
            "Secret reference (env:NAME or file:PATH) to the incoming-webhook URL. "
            "The URL itself is the credential, so it is never written into the config."
        )
    )


class WebhookChannel(ChannelSettings):
    """A generic HTTP endpoint that receives each notification as JSON."""

    kind: Literal["webhook"]
    url: HttpUrl
    headers: HeaderMap = Field(default_factory=dict)
    secret_headers: SecretHeaderMap = Field(
        default_factory=dict,
        description="Header name to secret reference (env:NAME or file:PATH), read when sending.",
    )

    @model_validator(mode="after")
    def _no_header_twice(self) -> WebhookChannel:
        check_headers_once(self.headers, self.secret_headers)
        return self


class EmailChannel(ChannelSettings):
    """An SMTP relay that sends each notification as a plain-text email."""

    kind: Literal["email"]
    host: str = Field(min_length=1)
    port: int = Field(
        default=587,
        ge=1,
        le=65535,
        description="SMTP submission port. Implicit TLS on port 465 is not supported, so use STARTTLS on 587.",
    )
    starttls: bool = Field(
        default=True,
        description=(
            "Upgrade the connection with STARTTLS and verify the server certificate. "
            "Without it, the message and the password travel unencrypted."
        ),
    )
    username: str | None = None
    password: SecretRef | None = Field(
        default=None, description="Secret reference (env:NAME or file:PATH) to the SMTP password."
    )
    sender: str = Field(description="From address, for example breakglass@example.com.")

    @field_validator("host")
    @classmethod
    def _plain_host(cls, value: str) -> str:
        if any(character.isspace() for character in value) or "/" in value:
            raise ValueError(f"invalid SMTP host {value!r}: write a host name or an IP address")
        return value

    @field_validator("sender")
    @classmethod
    def _address(cls, value: str) -> str:
        if not is_email_address(value):
            raise ValueError(
                f"invalid sender {value!r}: write a plain address such as breakglass@example.com"
            )
        return value

    @model_validator(mode="after")
    def _login_complete(self) -> EmailChannel:
        if (self.username is None) != (self.password is None):
            raise ValueError("set both username and password to log in, or neither")
        return self


class PagerDutyChannel(ChannelSettings):
    """A PagerDuty service, reached through the Events API v2."""

    kind: Literal["pagerduty"]
    routing_key: SecretRef = Field(
        description="Secret reference (env:NAME or file:PATH) to the service's integration key."
    )
    endpoint: HttpUrl = Field(
        default=HttpUrl(PAGERDUTY_EVENTS_URL),
        description="Events API v2 enqueue URL; change it only for a proxy or a regional endpoint.",
    )


Channel = Annotated[
    SlackChannel | WebhookChannel | EmailChannel | PagerDutyChannel,
    Field(discriminator="kind"),
]
"""One configured channel; `kind` selects slack, webhook, email or pagerduty."""

ChannelMap = dict[ChannelName, Channel]
"""Configured channels by name, as contacts list them in `channels`."""
