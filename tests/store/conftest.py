from __future__ import annotations

from pathlib import Path

import pytest

from breakglass.store import Store, open_store


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """The store on each backend: the embedded SQLite file and a real PostgreSQL server."""
    if request.param == "sqlite":
        return open_store(f"sqlite:///{tmp_path / 'store' / 'state.db'}")
    server = request.getfixturevalue("postgres_server")
    return open_store(server.url(server.create_database()))
