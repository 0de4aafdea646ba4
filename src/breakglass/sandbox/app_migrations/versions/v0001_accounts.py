"""Create accounts: one row per subscriber."""

from alembic import op

revision = "0001_accounts"
down_revision = None


def upgrade() -> None:
    op.execute(
        "CREATE TABLE accounts ("
        " id serial PRIMARY KEY,"
        " email text NOT NULL UNIQUE,"
        " created_at timestamptz NOT NULL DEFAULT now())"
    )


def downgrade() -> None:
    op.execute("DROP TABLE accounts")
