"""Incidents, their timeline events and action items; runs link to incidents.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

from breakglass.store.schema import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "incidents",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("severity", sa.String(4), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("services", sa.Text, nullable=False, server_default="[]"),
        sa.Column("commander", sa.String(100), nullable=True),
        sa.Column("opened_at", UTCDateTime, nullable=False),
        sa.Column("opened_by", sa.String(200), nullable=False),
        sa.Column("clock_started_at", UTCDateTime, nullable=False),
        sa.Column("acknowledged_at", UTCDateTime, nullable=True),
        sa.Column("acknowledged_by", sa.String(200), nullable=True),
        sa.Column("mitigated_at", UTCDateTime, nullable=True),
        sa.Column("resolved_at", UTCDateTime, nullable=True),
        sa.Column("escalation_level", sa.Integer, nullable=False, server_default="0"),
        sa.Column("summary", sa.Text, nullable=True),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_incidents_status", "incidents", ["status"])
    op.create_table(
        "incident_events",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("incident_id", sa.String(32), sa.ForeignKey("incidents.id"), nullable=False),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("message", sa.Text, nullable=True),
        sa.Column("data", sa.Text, nullable=False, server_default="{}"),
    )
    op.create_index("ix_incident_events_incident", "incident_events", ["incident_id", "seq"])
    op.create_table(
        "action_items",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("incident_id", sa.String(32), sa.ForeignKey("incidents.id"), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("owner", sa.String(200), nullable=True),
        sa.Column("due", sa.String(10), nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("done_at", UTCDateTime, nullable=True),
        sa.Column("done_by", sa.String(200), nullable=True),
    )
    op.create_index("ix_runs_incident", "runs", ["incident_id"])


def downgrade() -> None:
    op.drop_index("ix_runs_incident", "runs")
    for table in ("action_items", "incident_events", "incidents"):
        op.drop_table(table)
