"""Tables of the state store. Every change here is an Alembic migration in `migrations/`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import IntegrityError

# The migration revision this code expects; compared with the database on open so that
# Alembic is loaded only when an upgrade is due.
SCHEMA_REVISION = "0006"


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC time; SQLite returns naive values, which are read back as UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; times must carry a time zone")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def insert_if_absent(connection: Connection, table: Table, values: dict[str, Any]) -> bool:
    """Insert a row unless its key exists; return whether this call inserted it.

    On PostgreSQL two transactions can both find a key missing and both insert it; the
    savepoint lets the loser carry on in its transaction instead of failing whole.
    SQLite writers are serialized by BEGIN IMMEDIATE, so there the race cannot happen.
    """
    try:
        with connection.begin_nested():
            connection.execute(table.insert().values(**values))
    except IntegrityError:
        return False
    return True


metadata = MetaData()

runs = Table(
    "runs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("runbook", String(200), nullable=False),
    Column("runbook_path", Text, nullable=False),
    Column("runbook_digest", String(64), nullable=False),
    Column("config_path", Text, nullable=True),
    Column("config_digest", String(64), nullable=False),
    Column("inputs", Text, nullable=False),
    Column("state", String(32), nullable=False),
    Column("policy", String(16), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("incident_id", String(32), nullable=True),
    Column("cancel_level", Integer, nullable=False, default=0),
    Column("summary", Text, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("ended_at", UTCDateTime, nullable=True),
    Column("approval_deadline", UTCDateTime, nullable=True),
    Index("ix_runs_state", "state"),
)

journal = Table(
    "journal",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(32), ForeignKey("runs.id"), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("kind", String(40), nullable=False),
    Column("step_id", String(100), nullable=True),
    Column("phase", String(16), nullable=True),
    Column("attempt", Integer, nullable=True),
    Column("status", String(32), nullable=True),
    Column("duration", Float, nullable=True),
    Column("actor", String(200), nullable=False),
    Column("message", Text, nullable=True),
    Column("data", Text, nullable=False, default="{}"),
    Index("ix_journal_run", "run_id", "seq"),
)

leases = Table(
    "leases",
    metadata,
    Column("name", String(300), primary_key=True),
    Column("holder", String(32), nullable=True),
    Column("owner", String(64), nullable=True),
    Column("token", Integer, nullable=False),
    Column("acquired_at", UTCDateTime, nullable=True),
    Column("expires_at", UTCDateTime, nullable=True),
)

counters = Table(
    "counters",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Integer, nullable=False),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("at", UTCDateTime, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("kind", String(60), nullable=False),
    Column("subject", String(300), nullable=False),
    Column("data", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

# One row that serializes appends to the audit chain: every append updates it in the
# same transaction, so two writers cannot both extend the same head.
audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", Integer, nullable=False),
    Column("hash", String(64), nullable=False),
)

incidents = Table(
    "incidents",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("title", Text, nullable=False),
    Column("severity", String(4), nullable=False),
    Column("status", String(20), nullable=False),
    Column("services", Text, nullable=False, default="[]"),
    Column("commander", String(100), nullable=True),
    Column("opened_at", UTCDateTime, nullable=False),
    Column("opened_by", String(200), nullable=False),
    Column("clock_started_at", UTCDateTime, nullable=False),
    Column("acknowledged_at", UTCDateTime, nullable=True),
    Column("acknowledged_by", String(200), nullable=True),
    Column("mitigated_at", UTCDateTime, nullable=True),
    Column("resolved_at", UTCDateTime, nullable=True),
    Column("escalation_level", Integer, nullable=False, default=0),
    Column("summary", Text, nullable=True),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_incidents_status", "status"),
)

incident_events = Table(
    "incident_events",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("incident_id", String(32), ForeignKey("incidents.id"), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("kind", String(40), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("message", Text, nullable=True),
    Column("data", Text, nullable=False, default="{}"),
    Index("ix_incident_events_incident", "incident_id", "seq"),
)

action_items = Table(
    "action_items",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("incident_id", String(32), ForeignKey("incidents.id"), nullable=False),
    Column("text", Text, nullable=False),
    Column("owner", String(200), nullable=True),
    Column("due", String(10), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("done_at", UTCDateTime, nullable=True),
    Column("done_by", String(200), nullable=True),
)

notifications = Table(
    "notifications",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("incident_id", String(32), ForeignKey("incidents.id"), nullable=False),
    Column("dedup_key", String(200), nullable=False),
    Column("contact_id", String(100), nullable=False),
    Column("kind", String(10), nullable=False),
    Column("reason", String(40), nullable=False),
    Column("status", String(12), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("channel", String(100), nullable=True),
    Column("detail", Text, nullable=True),
    Column("error", Text, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("dedup_key", "contact_id", name="uq_notifications_key_contact"),
)

backups = Table(
    "backups",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("database", String(100), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("path", Text, nullable=False),
    Column("sha256", String(64), nullable=True),
    Column("size", Integer, nullable=True),
    Column("server_version", String(100), nullable=True),
    Column("details", Text, nullable=False, default="{}"),
    Column("run_id", String(32), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(200), nullable=False),
    Index("ix_backups_database", "database", "created_at"),
)

snapshots = Table(
    "snapshots",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("data", Text, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("note", Text, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(200), nullable=False),
)

drills = Table(
    "drills",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False),
    Column("runbook", String(200), nullable=True),
    Column("run_id", String(32), nullable=True),
    Column("result", String(20), nullable=False),
    Column("details", Text, nullable=False, default="{}"),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime, nullable=False),
    Column("actor", String(200), nullable=False),
    Index("ix_drills_name", "name", "finished_at"),
)
