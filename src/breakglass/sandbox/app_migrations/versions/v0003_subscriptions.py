"""Create subscriptions: each account's plan and renewal date."""

from alembic import op

revision = "0003_subscriptions"
down_revision = "0002_orders"


def upgrade() -> None:
    op.execute(
        "CREATE TABLE subscriptions ("
        " account_id integer PRIMARY KEY REFERENCES accounts (id),"
        " plan text NOT NULL,"
        " renews_at date NOT NULL)"
    )


def downgrade() -> None:
    op.execute("DROP TABLE subscriptions")
