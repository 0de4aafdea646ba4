"""Databases in the platform config: how to reach each server and where its backups live.

The password is a secret reference. It reaches libpq as a connection argument inside this
process, and child programs (`pg_dump`, `pg_restore`) through their environment, never
through argv.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from breakglass.config.secrets import SecretRef
from breakglass.durations import PositiveDuration


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
    backup_dir: Path | None = Field(
        default=None,
        description="Directory of plain-format base backups, one subdirectory each, for pg.base_backup and PITR.",
    )

    @field_validator("host")
    @classmethod
    def _plain_host(cls, value: str) -> str:
        if not value or re.search(r"\s", value):
            raise ValueError(f"invalid database host {value!r}")
        return value

    def where(self) -> str:
        """Name the database as plans and prompts show it: host, port and database."""
        return f"{self.host}:{self.port}/{self.dbname}"
