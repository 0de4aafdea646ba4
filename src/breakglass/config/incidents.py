"""Incident policy in the platform config: severity targets, contacts and the escalation chain.

The severity defaults are the platform team's incident policy: P0 (complete outage, payments
down, data breach) needs a response within 15 minutes and a resolution within an hour.
"""

from __future__ import annotations

import datetime as dt
import re
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from breakglass.durations import PositiveDuration


class Severity(StrEnum):
    P0 = "P0"
    P1 = "P1"
    P2 = "P2"
    P3 = "P3"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SeverityTargets(Strict):
    """Deadlines for one severity, counted from the incident's start or its last severity change."""

    meaning: str = ""
    response: PositiveDuration = Field(description="Time to the first acknowledgement.")
    resolution: PositiveDuration = Field(description="Time to resolution.")
    update_every: PositiveDuration = Field(description="Cadence of status updates to users.")

    @model_validator(mode="after")
    def _response_first(self) -> SeverityTargets:
        if self.response > self.resolution:
            raise ValueError("the response target must not be longer than the resolution target")
        return self


DEFAULT_SEVERITIES: dict[Severity, SeverityTargets] = {
    Severity.P0: SeverityTargets(
        meaning="complete outage, payments down, data breach, legal or compliance violation",
        response="15m",
        resolution="1h",
        update_every="30m",
    ),
    Severity.P1: SeverityTargets(
        meaning="core features unavailable, severe degradation, payment issues over 50% of transactions",
        response="30m",
        resolution="4h",
        update_every="1h",
    ),
    Severity.P2: SeverityTargets(
        meaning="non-core features unavailable, moderate degradation, payment issues under 50%",
        response="2h",
        resolution="24h",
        update_every="4h",
    ),
    Severity.P3: SeverityTargets(
        meaning="cosmetic issues, minor degradation",
        response="4h",
        resolution="72h",
        update_every="24h",
    ),
}

CONTACT_ID = r"^[a-z0-9][a-z0-9_.-]*$"


class Contact(Strict):
    """A person or an external party the escalation engine can reach."""

    id: str
    name: str
    role: str = ""
    phone: str | None = None
    email: str | None = None
    chat: str | None = Field(default=None, description="Chat handle, for example @alice.")
    channels: list[str] = Field(
        default_factory=list, description="Notification channels to try, in order."
    )
    level: int | None = Field(default=None, ge=1, le=4, description="Escalation level, 1 to 4.")
    external: str | None = Field(
        default=None, description="Kind of external contact: cdn, payments, cloud, legal, ..."
    )
    incidents: list[str] = Field(
        default_factory=list, description="Kinds of incident an external contact belongs to."
    )
    reviewed: dt.date | None = Field(
        default=None, description="Date of the last review, YYYY-MM-DD."
    )

    @field_validator("id")
    @classmethod
    def _plain_id(cls, value: str) -> str:
        if not re.match(CONTACT_ID, value):
            raise ValueError(
                f"contact id {value!r} must be lower-case letters, digits, '.', '_' and '-', "
                "for example alice"
            )
        return value


class IncidentSettings(Strict):
    severities: dict[Severity, SeverityTargets] = Field(
        default_factory=lambda: dict(DEFAULT_SEVERITIES),
        description="Targets per severity; a severity left out keeps its default.",
    )
    page_on_open: dict[Severity, list[int]] = Field(
        default_factory=lambda: {Severity.P0: [1, 2]},
        description="Escalation levels paged at once when an incident opens (default: level 1).",
    )
    escalation: dict[int, list[str]] = Field(
        default_factory=dict,
        description="Contact ids per escalation level, 1 (on-call engineer) to 4 (CTO).",
    )

    @field_validator("severities")
    @classmethod
    def _fill_defaults(
        cls, value: dict[Severity, SeverityTargets]
    ) -> dict[Severity, SeverityTargets]:
        return {**DEFAULT_SEVERITIES, **value}

    @field_validator("page_on_open")
    @classmethod
    def _opening_levels(cls, value: dict[Severity, list[int]]) -> dict[Severity, list[int]]:
        for severity, levels in value.items():
            if not levels or any(not 1 <= level <= 4 for level in levels):
                raise ValueError(f"page_on_open.{severity.value} must list levels from 1 to 4")
        return value

    @field_validator("escalation")
    @classmethod
    def _levels(cls, value: dict[int, list[str]]) -> dict[int, list[str]]:
        for level in value:
            if not 1 <= level <= 4:
                raise ValueError(f"escalation level {level} is out of range: use 1 to 4")
        return value

    def targets(self, severity: Severity) -> SeverityTargets:
        return self.severities[severity]


def check_contact_references(incidents: IncidentSettings, contacts: list[Contact]) -> None:
    """Raise ValueError when the escalation chain names an unknown or duplicate contact."""
    ids = [contact.id for contact in contacts]
    duplicates = sorted({contact_id for contact_id in ids if ids.count(contact_id) > 1})
    if duplicates:
        raise ValueError(f"duplicate contact ids: {', '.join(duplicates)}")
    for level, members in sorted(incidents.escalation.items()):
        for member in members:
            if member not in ids:
                raise ValueError(
                    f"escalation level {level} names contact {member!r}, which is not in contacts"
                )
