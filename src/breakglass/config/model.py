"""The platform config (`breakglass.yaml`): typed, validated, and the source of its JSON Schema."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    HttpUrl,
    Tag,
    field_validator,
    model_validator,
)

from breakglass.conditions import JsonCondition
from breakglass.config.aws import AwsConfig
from breakglass.config.channels import ChannelMap
from breakglass.config.databases import DatabaseConfig
from breakglass.config.drills import DrillSettings
from breakglass.config.headers import HeaderMap, SecretHeaderMap, check_headers_once
from breakglass.config.incidents import Contact, IncidentSettings, check_contact_references
from breakglass.config.kubernetes import KubernetesConfig
from breakglass.config.secrets import SecretRef
from breakglass.durations import PositiveDuration

ScalarValue = str | int | float | bool
STORE_SCHEMES = {"sqlite", "postgresql", "postgresql+psycopg"}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AuditSettings(Strict):
    """Settings of the audit log's hash chain."""

    key: SecretRef | None = Field(
        default=None,
        description=(
            "HMAC key for the audit chain. Without one, a random key is created once in the "
            "state directory (audit.key, mode 0600)."
        ),
    )


class HttpHealthCheck(Strict):
    """An HTTP endpoint that must respond with an expected status, latency and JSON fields."""

    kind: Literal["http"] = "http"
    name: str
    url: HttpUrl
    method: Literal["GET", "HEAD", "POST"] = "GET"
    expect_status: list[Annotated[int, Field(ge=100, le=599)]] = Field(
        default_factory=lambda: [200]
    )
    json_conditions: list[JsonCondition] = Field(default_factory=list, alias="json")
    max_latency: PositiveDuration | None = Field(
        default=None, description="Slower responses fail the check."
    )
    warn_latency: PositiveDuration | None = Field(
        default=None, description="Slower responses pass with a warning."
    )
    timeout: PositiveDuration = Field(default=5.0, description="Deadline for the whole request.")
    severity: Literal["critical", "warning"] = Field(
        default="critical", description="A failing warning-level check fails only with --strict."
    )
    headers: HeaderMap = Field(default_factory=dict)
    secret_headers: SecretHeaderMap = Field(
        default_factory=dict, description="Header values read from secret references at use."
    )

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", value):
            raise ValueError(
                f"check name {value!r} must start with a letter or digit and use only letters, "
                "digits, '.', '_' and '-'"
            )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> HttpHealthCheck:
        if (
            self.max_latency is not None
            and self.warn_latency is not None
            and self.warn_latency >= self.max_latency
        ):
            raise ValueError("warn_latency must be lower than max_latency")
        if self.method == "HEAD" and self.json_conditions:
            raise ValueError("a HEAD response has no body, so json conditions cannot be checked")
        check_headers_once(self.headers, self.secret_headers)
        return self


def _check_kind(value: object) -> str:
    # `kind` may be left out for the most common check, an HTTP endpoint.
    if isinstance(value, dict):
        return str(value.get("kind", "http"))
    return str(getattr(value, "kind", "http"))


HealthCheck = Annotated[
    Annotated[HttpHealthCheck, Tag("http")],
    Discriminator(
        _check_kind,
        custom_error_type="unknown_check_kind",
        custom_error_message="unknown health check kind; supported kinds: http",
    ),
]


class HealthSettings(Strict):
    checks: list[HealthCheck] = Field(default_factory=list)

    @field_validator("checks")
    @classmethod
    def _unique_names(cls, checks: list[HttpHealthCheck]) -> list[HttpHealthCheck]:
        seen: set[str] = set()
        for check in checks:
            if check.name in seen:
                raise ValueError(f"duplicate health check name {check.name!r}")
            seen.add(check.name)
        return checks


class PlatformConfig(Strict):
    """The platform breakglass acts on: its state store, runbooks, checks and policies."""

    state_url: str | None = Field(
        default=None,
        description=(
            "SQLAlchemy URL of the state store. Default: an SQLite file state.db in the state "
            "directory. Team mode: postgresql+psycopg://user@host/db (password via PGPASSFILE)."
        ),
    )
    state_dir: Path | None = Field(
        default=None,
        description="Directory for state.db, backups and evidence. Default: $XDG_STATE_HOME/breakglass.",
    )
    runbook_dirs: list[Path] = Field(
        default_factory=list,
        description=(
            "Directories searched for runbooks after the built-in catalog, relative to this file. "
            "A runbook here overrides a built-in of the same name."
        ),
    )
    approval_timeout: PositiveDuration = Field(
        default=3600.0,
        description="How long a run waits for an approval while keeping its locks.",
    )
    lease_ttl: PositiveDuration = Field(
        default=30.0,
        description=(
            "How long a run's lease and its locks live without renewal. A crashed run is shown "
            "as interrupted, and its locks are free, once this has passed."
        ),
    )
    lease_renew_every: PositiveDuration = Field(
        default=10.0, description="How often a running process renews its leases."
    )
    audit: AuditSettings = Field(default_factory=AuditSettings)
    health: HealthSettings = Field(default_factory=HealthSettings)
    incidents: IncidentSettings = Field(default_factory=IncidentSettings)
    contacts: list[Contact] = Field(default_factory=list)
    channels: ChannelMap = Field(
        default_factory=dict,
        description="Notification channels by name; contacts list the ones to try, in order.",
    )
    databases: dict[str, DatabaseConfig] = Field(
        default_factory=dict, description="PostgreSQL databases by name, for the pg.* actions."
    )
    kubernetes: KubernetesConfig | None = Field(
        default=None, description="The Kubernetes cluster, for the k8s.* actions."
    )
    drills: DrillSettings = Field(
        default_factory=DrillSettings, description="The recovery drills and how often each is due."
    )
    aws: AwsConfig | None = Field(
        default=None, description="The AWS account, for the aws.* actions."
    )
    vars: dict[str, ScalarValue] = Field(
        default_factory=dict,
        description="Platform values that runbooks read as {{ config.vars.NAME }}.",
    )

    @field_validator("vars", mode="before")
    @classmethod
    def _scalar_vars(cls, value: object) -> object:
        if isinstance(value, dict):
            for name, item in value.items():
                if isinstance(item, dict | list) or item is None:
                    raise ValueError(f"vars.{name} must be a string, number or boolean")
        return value

    @model_validator(mode="after")
    def _contacts_known(self) -> PlatformConfig:
        check_contact_references(self.incidents, self.contacts)
        chain = {member for members in self.incidents.escalation.values() for member in members}
        for contact in self.contacts:
            if contact.id in chain and not contact.channels:
                raise ValueError(
                    f"contact {contact.id} is in the escalation chain but lists no channels, "
                    "so it could never be paged: add channels to it"
                )
            for name in contact.channels:
                channel = self.channels.get(name)
                if channel is not None and channel.kind == "email" and not contact.email:
                    raise ValueError(
                        f"contact {contact.id} lists email channel {name!r} but has no email address"
                    )
                if name not in self.channels:
                    configured = ", ".join(sorted(self.channels)) or "none"
                    raise ValueError(
                        f"contact {contact.id} lists channel {name!r}, which is not configured "
                        f"(channels: {configured})"
                    )
        return self

    def contact(self, contact_id: str) -> Contact | None:
        return next((contact for contact in self.contacts if contact.id == contact_id), None)

    @model_validator(mode="after")
    def _renew_well_before_expiry(self) -> PlatformConfig:
        if self.lease_renew_every * 2 > self.lease_ttl:
            raise ValueError(
                "lease_renew_every must be at most half of lease_ttl, so that one missed "
                "renewal does not lose the lease"
            )
        return self

    @field_validator("state_url")
    @classmethod
    def _supported_store(cls, value: str | None) -> str | None:
        if value is None:
            return value
        scheme, sep, rest = value.partition("://")
        if not sep or scheme not in STORE_SCHEMES:
            raise ValueError(
                f"state_url must start with {', '.join(f'{name}://' for name in sorted(STORE_SCHEMES))}; for example "
                "sqlite:////var/lib/breakglass/state.db or postgresql+psycopg://breakglass@db/breakglass"
            )
        authority, _, query = rest.split("/", 1)[0], None, rest.partition("?")[2]
        has_user_password = "@" in authority and ":" in authority.split("@", 1)[0]
        if has_user_password or "password=" in query.lower():
            raise ValueError(
                "state_url contains a password; remove it and give the password through "
                "PGPASSFILE or PGPASSWORD instead"
            )
        return value
