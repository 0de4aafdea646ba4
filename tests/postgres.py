"""A real PostgreSQL server for tests, started as the `postgres` OS user when run as root.

PostgreSQL refuses to run as root, so under root the server commands go through
`runuser -u postgres --`, and the cluster lives in a directory that user can traverse.
The server listens on 127.0.0.1 only, on a free port, with trust authentication: it is a
throwaway cluster that exists for one test session.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg

from breakglass.actions.postgres.server import as_owner
from breakglass.sandbox import postgres as sandbox_postgres
from breakglass.sandbox.errors import PlatformError
from breakglass.sandbox.postgres import free_port


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str
    base: Path

    @property
    def data(self) -> Path:
        return self.base / "data"

    @property
    def archive(self) -> Path:
        """The WAL archive of a cluster started with archive=True."""
        return self.base / "archive"

    @property
    def log(self) -> Path:
        """The server log; the same file pg.server_start's pg_ctl -l default names."""
        return self.base / "data.log"

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{database}"

    def create_database(self) -> str:
        name = f"bg_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            dbname="postgres",
            autocommit=True,
            connect_timeout=10,
        ) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return name


def find_bindir() -> Path | None:
    """Return the directory of initdb and pg_ctl, or None when PostgreSQL is not installed."""
    try:
        return sandbox_postgres.find_bindir()
    except PlatformError:
        return None


def start_server(*, archive: bool = False) -> Iterator[PostgresServer]:
    """Start a cluster and remove it afterwards.

    With archive=True the cluster archives its WAL into `archive/`, and its settings live
    in postgresql.conf instead of pg_ctl options, so a plain `pg_ctl start` (as PITR runs
    it) brings it back on the same port.
    """
    bindir = find_bindir()
    if bindir is None:
        raise RuntimeError("PostgreSQL server binaries not found; install the postgresql package")
    owner = sandbox_postgres.owner_name()
    base = Path(tempfile.mkdtemp(prefix="breakglass-pg-", dir="/tmp"))
    base.chmod(0o755)
    data = base / "data"
    data.mkdir(mode=0o700)
    (base / "archive").mkdir(mode=0o700)
    if os.geteuid() == 0:
        for path in (data, base, base / "archive"):
            shutil.chown(path, owner, owner)
    port = free_port()

    def run(argv: list[str]) -> None:
        subprocess.run(as_owner(argv, owner), check=True, capture_output=True, timeout=120)

    run([str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync"])
    settings = {
        "port": str(port),
        "listen_addresses": "'127.0.0.1'",
        "unix_socket_directories": f"'{base}'",
        "fsync": "off",
    }
    if archive:
        settings |= {
            "wal_level": "replica",
            "archive_mode": "on",
            "archive_command": f"'test ! -f {base}/archive/%f && cp %p {base}/archive/%f'",
        }
    with (data / "postgresql.conf").open("a", encoding="utf-8") as conf:
        conf.writelines(f"{key} = {value}\n" for key, value in settings.items())
    run(
        [
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(base / "data.log"),
            "-w",
            "-t",
            "60",
            "start",
        ]
    )
    try:
        yield PostgresServer("127.0.0.1", port, "postgres", base)
    finally:
        subprocess.run(
            as_owner(
                [str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"], owner
            ),
            capture_output=True,
            timeout=60,
            check=False,
        )
        shutil.rmtree(base, ignore_errors=True)
