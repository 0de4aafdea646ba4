"""The drill schedule: which recovery drills are due how often, and which runbook each is."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from breakglass.durations import PositiveDuration


class DrillSchedule(BaseModel):
    """One recurring drill. A finished run of its runbook in a drill counts as the drill."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    every: PositiveDuration
    runbook: str | None = Field(
        default=None, description="The runbook a drill runs; none for a drill done by hand."
    )
    description: str = ""


def default_schedule() -> list[DrillSchedule]:
    return [
        DrillSchedule(
            name="application-rollback",
            every="7d",
            runbook="frontend-rollback",
            description="roll an application back in the sandbox or on staging",
        ),
        DrillSchedule(
            name="database-restore",
            every="30d",
            runbook="db-restore-drill",
            description="restore the latest backup into a scratch cluster (drill db-restore)",
        ),
        DrillSchedule(
            name="disaster-recovery",
            every="91d",
            runbook="k8s-rollback-all",
            description="return the whole platform to a known-good snapshot",
        ),
        DrillSchedule(
            name="emergency-simulation",
            every="365d",
            description="a simulated incident, run by hand",
        ),
    ]


class DrillSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schedule: list[DrillSchedule] = Field(default_factory=default_schedule)
    staging_config: Path | None = Field(
        default=None,
        description=(
            "The config of the staging platform `drill run` acts on without --sandbox, "
            "relative to this file. Never this config itself."
        ),
    )
