from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory

from breakglass.store import Store, db, open_store
from breakglass.store.counters import next_id
from breakglass.store.schema import SCHEMA_REVISION


def test_schema_revision_is_alembic_head() -> None:
    config = Config()
    config.set_main_option("script_location", str(Path(db.__file__).parent / "migrations"))
    assert ScriptDirectory.from_config(config).get_current_head() == SCHEMA_REVISION


def test_open_creates_and_reopens(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'deep' / 'state.db'}"
    first = open_store(url)
    assert db.current_revision(first) == SCHEMA_REVISION
    assert (tmp_path / "deep" / "state.db").stat().st_mode & 0o777 == 0o600
    second = open_store(url)
    assert db.current_revision(second) == SCHEMA_REVISION


def test_ids_are_per_day_and_widen(store: Store) -> None:
    day = datetime(2026, 12, 4, 23, 59, tzinfo=UTC)
    with store.write() as connection:
        ids = [next_id(connection, "RUN", day) for _ in range(1000)]
        next_day = next_id(connection, "RUN", datetime(2026, 12, 5, tzinfo=UTC))
    assert ids[0] == "RUN-20261204-001"
    assert ids[998] == "RUN-20261204-999"
    assert ids[999] == "RUN-20261204-1000"
    assert len(set(ids)) == 1000
    assert next_day == "RUN-20261205-001"


def test_concurrent_first_open_on_postgres(postgres_server: object) -> None:
    """Several processes opening a new PostgreSQL database at once all succeed."""
    import threading

    from tests.postgres import PostgresServer

    assert isinstance(postgres_server, PostgresServer)
    url = postgres_server.url(postgres_server.create_database())
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def open_at_once() -> None:
        barrier.wait()
        try:
            open_store(url).dispose()
        except BaseException as e:  # collected and asserted on below
            errors.append(e)

    threads = [threading.Thread(target=open_at_once) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert db.current_revision(open_store(url)) == SCHEMA_REVISION
