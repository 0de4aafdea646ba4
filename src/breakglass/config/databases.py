"""Databases in the platform config: how to reach each server and where its backups live.

The password is a secret reference. It reaches libpq as a connection argument inside this
process, and child programs (`pg_dump`, `pg_restore`) through their environment, never
through argv.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ByteSize, ConfigDict, Field, field_validator, model_validator

from breakglass.conditions import JsonCondition
from breakglass.config.migrations import MigrationsConfig
from breakglass.config.secrets import SecretRef
from breakglass.durations import PositiveDuration


class ServerControl(BaseModel):
    """How to stop and start the server, as argv lists run as the cluster's OS user.

    `kind: pg_ctl` runs `pg_ctl -D DATA_DIRECTORY -w stop -m fast` and `... start`;
    `kind: systemctl` runs `systemctl stop|start UNIT`; `kind: command` runs the given argv.
    """

    model_config = ConfigDict(extra="forbid")

    kind: Literal["pg_ctl", "systemctl", "command"] = "pg_ctl"
    unit: str | None = Field(default=None, description="The systemd unit, for kind systemctl.")
    stop: list[str] | None = Field(
        default=None, description="argv that stops the server, for kind command."
    )
    start: list[str] | None = Field(
        default=None, description="argv that starts the server, for kind command."
    )
    timeout: PositiveDuration = Field(default=120.0, description="Deadline for a stop or a start.")

    @model_validator(mode="after")
    def _complete(self) -> ServerControl:
        if self.kind == "systemctl" and not self.unit:
            raise ValueError("server_control of kind systemctl needs unit")
        if self.kind == "command" and not (self.stop and self.start):
            raise ValueError("server_control of kind command needs both stop and start argv lists")
        return self


class DatabaseCheck(BaseModel):
    """A read-only query that shows the data is sound, with the result it must give."""

    model_config = ConfigDict(extra="forbid")

    name: str
    sql: str
    expect_rows: int | None = Field(default=None, ge=0, description="Exact number of rows.")
    expect: list[JsonCondition] = Field(
        default_factory=list, description="Conditions on rows[0].column or row_count."
    )


class DatabaseConfig(BaseModel):
    """One PostgreSQL database breakglass may read, back up or restore."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field(description="Server host name or address, or a Unix socket directory.")
    port: int = Field(default=5432, ge=1, le=65535)
    dbname: str
    user: str
    password: SecretRef | None = None
    sslmode: str | None = Field(default=None, description="libpq sslmode, for example verify-full.")
    connect_timeout: PositiveDuration = Field(default=10.0, description="Deadline for connecting.")
    statement_timeout: PositiveDuration = Field(
        default=60.0, description="Deadline for one statement, set on every session."
    )
    bindir: Path | None = Field(
        default=None,
        description="Directory of pg_dump and pg_restore. Default: PATH, then /usr/lib/postgresql/*/bin.",
    )
    dump_dir: Path | None = Field(
        default=None, description="Where pg.dump writes archives. Default: STATE_DIR/backups/NAME."
    )
    os_user: str | None = Field(
        default=None,
        description=(
            "OS user owning the cluster; server-side commands run as this user: directly when "
            "breakglass runs as it, through runuser as root, else through sudo -n."
        ),
    )
    data_directory: Path | None = Field(default=None, description="The cluster's data directory.")
    server_control: ServerControl | None = None
    backup_dir: Path | None = Field(
        default=None,
        description="Directory of plain-format base backups, one subdirectory each, for pg.base_backup and PITR.",
    )
    wal_archive_dir: Path | None = Field(
        default=None,
        description="Directory the server's archive_command copies WAL segments into, read by PITR.",
    )
    server_log: Path | None = Field(
        default=None,
        description=(
            "The server's log file, shown when a start or a recovery fails. For kind pg_ctl it "
            "is passed as pg_ctl -l. Default for pg_ctl: DATA_DIRECTORY.log beside the data directory."
        ),
    )
    restore_free_space_reserve: ByteSize = Field(
        default=ByteSize(512 * 1024 * 1024),
        description="Free space PITR leaves on the data directory's file system, as in 2GiB.",
    )
    writers: list[str] = Field(
        default_factory=list,
        description=(
            "Deployments that write to this database. db-pitr and db-migration-rollback scale "
            "them to zero first and give them their recorded replica counts back at the end."
        ),
    )
    checks: list[DatabaseCheck] = Field(
        default_factory=list,
        description="Queries run by pg.verify after a restore and by restore drills.",
    )
    migrations: MigrationsConfig | None = Field(
        default=None, description="How to read and roll back this database's schema migrations."
    )

    @field_validator("host")
    @classmethod
    def _plain_host(cls, value: str) -> str:
        if not value or re.search(r"\s", value):
            raise ValueError(f"invalid database host {value!r}")
        return value

    @model_validator(mode="after")
    def _control_needs_directory(self) -> DatabaseConfig:
        control = self.server_control
        if control is not None and control.kind == "pg_ctl" and self.data_directory is None:
            raise ValueError("server_control of kind pg_ctl needs data_directory")
        return self

    def log_file(self) -> Path | None:
        """Return the server log file: the configured one, else pg_ctl's default beside the data."""
        if self.server_log is not None:
            return self.server_log
        if self.data_directory is not None and (
            self.server_control is not None and self.server_control.kind == "pg_ctl"
        ):
            return self.data_directory.with_name(self.data_directory.name + ".log")
        return None

    def where(self) -> str:
        """Name the database as plans and prompts show it: host, port and database."""
        return f"{self.host}:{self.port}/{self.dbname}"
