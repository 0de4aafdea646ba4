"""Alembic environment of the sandbox application: one connection from the PG* variables."""

from alembic import context
from sqlalchemy import create_engine, pool

# An empty URL leaves every connection parameter to libpq, which reads PGHOST, PGPORT,
# PGUSER and PGDATABASE from the Job's environment.
engine = create_engine(
    "postgresql+psycopg://", poolclass=pool.NullPool, connect_args={"connect_timeout": 10}
)
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=None)
    with context.begin_transaction():
        context.run_migrations()
