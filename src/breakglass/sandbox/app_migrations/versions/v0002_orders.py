"""Create orders: what each subscriber paid, and when."""

from alembic import op

revision = "0002_orders"
down_revision = "0001_accounts"


def upgrade() -> None:
    op.execute(
        "CREATE TABLE orders ("
        " id serial PRIMARY KEY,"
        " account_id integer NOT NULL REFERENCES accounts (id),"
        " amount_cents integer NOT NULL CHECK (amount_cents >= 0),"
        " status text NOT NULL,"
        " created_at timestamptz NOT NULL DEFAULT now())"
    )


def downgrade() -> None:
    op.execute("DROP TABLE orders")
