"""Settings of a database's schema migration tool, for the pg.migrations.* actions.

`kind: command` drives the project's own migration commands (npm scripts, a CLI), each an
argv list: one prints the current version, one lists the known versions in order, one
reverts exactly one migration. Versions are read from their standard output with
`version_pattern`, line by line, after ANSI colour codes are removed, so banners and
warnings that do not match are ignored. `kind: alembic` uses Alembic in-process on the
project's `alembic.ini`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from breakglass.config.secrets import SecretRef
from breakglass.durations import PositiveDuration

COMMAND_FIELDS = ("current", "history", "down", "version_pattern")
COMMAND_ONLY_FIELDS = (*COMMAND_FIELDS, "history_order", "cwd", "env", "secret_env", "job")
ALEMBIC_ONLY_FIELDS = ("config_file", "script_location")


class MigrationJob(BaseModel):
    """The Kubernetes Job the commands run in, from a Deployment's current image."""

    model_config = ConfigDict(extra="forbid")

    deployment: str = Field(description="The Deployment whose release knows the migrations.")
    container: str | None = Field(default=None, description="Its container. Default: the first.")


class MigrationsConfig(BaseModel):
    """The migration tool of one database, and how to reach it."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["command", "alembic"]
    current: list[str] | None = Field(
        default=None, description="argv that prints the current version, for kind command."
    )
    history: list[str] | None = Field(
        default=None,
        description="argv that lists the applied and pending versions in order, for kind command.",
    )
    history_order: Literal["oldest_first", "newest_first"] = Field(
        default="oldest_first", description="The order in which `history` lists versions."
    )
    down: list[str] | None = Field(
        default=None, description="argv that reverts exactly one migration, for kind command."
    )
    version_pattern: str | None = Field(
        default=None,
        description=(
            "Regular expression that finds a version in one output line, with one group or a "
            "group named `version` around it; lines that do not match are ignored."
        ),
    )
    cwd: Path | None = Field(
        default=None,
        description="Working directory of the commands, relative to the config file.",
    )
    env: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Extra environment of the commands. PGHOST, PGPORT, PGDATABASE and PGUSER are set "
            "already, and PGPASSWORD when the database has a password."
        ),
    )
    secret_env: dict[str, SecretRef] = Field(
        default_factory=dict, description="Environment variables read from secret references."
    )
    job: MigrationJob | None = Field(
        default=None,
        description=(
            "Run the commands in a Kubernetes Job from this Deployment's current image and "
            "environment, instead of locally; cwd, secret_env and the PG* variables then come "
            "from the Deployment, and only env is added."
        ),
    )
    config_file: Path | None = Field(
        default=None, description="The project's alembic.ini, relative to the config file."
    )
    script_location: Path | None = Field(
        default=None,
        description="The Alembic script directory. Default: script_location in alembic.ini, relative to that file.",
    )
    timeout: PositiveDuration = Field(
        default=600.0,
        description="Deadline for one command or one downgrade; the step's own timeout also applies.",
    )

    @field_validator("current", "history", "down", mode="before")
    @classmethod
    def _argv_list(cls, value: object) -> object:
        if isinstance(value, str):
            raise ValueError(
                "give an argv list such as [npm, run, migration:current]; a shell command string is not accepted"
            )
        return value

    @field_validator("current", "history", "down")
    @classmethod
    def _not_empty(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not value:
            raise ValueError("the argv list is empty; name at least the program")
        return value

    @field_validator("version_pattern")
    @classmethod
    def _one_version_group(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            pattern = re.compile(value)
        except re.error as e:
            raise ValueError(
                f"version_pattern {value!r} is not a valid regular expression: {e}"
            ) from None
        if "version" not in pattern.groupindex and pattern.groups != 1:
            raise ValueError(
                f"version_pattern {value!r} has {pattern.groups} groups; put exactly one group, "
                r"or a group named version, around the version, as in 'Current: (?P<version>\S+)'"
            )
        return value

    @model_validator(mode="after")
    def _fields_fit_kind(self) -> MigrationsConfig:
        if self.kind == "command":
            missing = [name for name in COMMAND_FIELDS if getattr(self, name) is None]
            if missing:
                raise ValueError(f"migrations of kind command need {', '.join(missing)}")
            foreign = [name for name in ALEMBIC_ONLY_FIELDS if name in self.model_fields_set]
        else:
            if self.config_file is None:
                raise ValueError("migrations of kind alembic need config_file (the alembic.ini)")
            foreign = [name for name in COMMAND_ONLY_FIELDS if name in self.model_fields_set]
        if foreign:
            raise ValueError(f"{', '.join(foreign)} do not apply to migrations of kind {self.kind}")
        return self

    def compiled_pattern(self) -> re.Pattern[str]:
        """Return version_pattern compiled; only kind command has one."""
        assert self.version_pattern is not None
        return re.compile(self.version_pattern)
