"""Add a currency to orders: the schema change of the broken backend release."""

from alembic import op

revision = "0004_order_currency"
down_revision = "0003_subscriptions"


def upgrade() -> None:
    op.execute("ALTER TABLE orders ADD COLUMN currency char(3) NOT NULL DEFAULT 'USD'")


def downgrade() -> None:
    op.execute("ALTER TABLE orders DROP COLUMN currency")
