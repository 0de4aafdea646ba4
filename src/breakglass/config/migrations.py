"""How breakglass reads and rolls back a database's schema migrations."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class MigrationsConfig(BaseModel):
    """Placeholder; the migration adapters define the real fields."""

    model_config = ConfigDict(extra="forbid")
