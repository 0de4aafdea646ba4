"""A scratch PostgreSQL cluster on 127.0.0.1 that archives its WAL, for the sandbox.

PostgreSQL refuses to run as root. Under root, the cluster belongs to the `postgres` OS
user that Debian's package creates, and its commands go through `runuser`. It lives under
/tmp because that user cannot traverse a root home directory.
Authentication is `trust` on 127.0.0.1 only: the cluster contains sample data and exists
while the sandbox is up.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from breakglass.actions.postgres.server import as_owner, plain_env
from breakglass.sandbox.errors import PlatformError

HOST = "127.0.0.1"
_COMMAND_SECONDS = 120


@dataclass(frozen=True)
class ScratchCluster:
    """Location, port and owner of a scratch cluster. Its data, archive, backups and log are under `base`."""

    base: Path
    port: int
    owner: str
    bindir: Path

    @property
    def data(self) -> Path:
        return self.base / "data"

    @property
    def archive(self) -> Path:
        return self.base / "archive"

    @property
    def backups(self) -> Path:
        return self.base / "backups"

    @property
    def log(self) -> Path:
        return self.base / "server.log"

    def to_json(self) -> dict[str, Any]:
        return {
            key: str(value) if isinstance(value, Path) else value
            for key, value in asdict(self).items()
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ScratchCluster:
        return cls(
            base=Path(data["base"]),
            port=int(data["port"]),
            owner=str(data["owner"]),
            bindir=Path(data["bindir"]),
        )

    def program(self, name: str) -> str:
        return str(self.bindir / name)

    def run(self, argv: list[str]) -> None:
        """Run a server program as the cluster's owner; raise PlatformError with its output."""
        try:
            done = subprocess.run(
                as_owner(argv, self.owner),
                capture_output=True,
                text=True,
                timeout=_COMMAND_SECONDS,
                env=plain_env(),
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            raise PlatformError(f"{Path(argv[0]).name} failed: {e}") from e
        if done.returncode != 0:
            detail = (done.stderr or done.stdout).strip()
            raise PlatformError(f"{Path(argv[0]).name} exited {done.returncode}: {detail}")

    def start(self) -> None:
        self.run(
            [
                self.program("pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.log),
                "-w",
                "-t",
                "60",
                "start",
            ]
        )

    def stop(self) -> None:
        """Stop the server at once if it runs; a stopped or missing cluster is not an error."""
        pid = self.postmaster_pid()
        if pid is None:
            return
        try:
            self.run(
                [self.program("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"]
            )
        except PlatformError:
            # A stale postmaster.pid after a crash: nothing runs, so nothing needs stopping.
            if process_alive(pid):
                raise

    def postmaster_pid(self) -> int | None:
        try:
            first = (self.data / "postmaster.pid").read_text(encoding="utf-8").split("\n", 1)[0]
            return int(first)
        except (OSError, ValueError):
            return None


def connect(port: int, dbname: str, *, timeout: int = 10) -> Any:
    """Open an autocommit connection to a sandbox cluster as its `postgres` superuser."""
    import psycopg

    return psycopg.connect(
        host=HOST,
        port=port,
        user="postgres",
        dbname=dbname,
        autocommit=True,
        connect_timeout=timeout,
    )


def find_bindir() -> Path:
    """Return the directory of initdb and pg_ctl, or raise PlatformError saying what to install."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    if candidates:
        return Path(candidates[0]).parent
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise PlatformError(
        "the PostgreSQL server programs (initdb, pg_ctl) are not installed",
        hint="install them: `sudo apt-get install postgresql` on Debian or Ubuntu",
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def owner_name() -> str:
    """Return the OS user the cluster runs as: `postgres` under root, else the current user."""
    if os.geteuid() != 0:
        return pwd.getpwuid(os.geteuid()).pw_name
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise PlatformError(
            "PostgreSQL cannot run as root and there is no `postgres` OS user to run it",
            hint="install the postgresql package, which creates that user, or run as another user",
        ) from None
    return "postgres"


def make_base() -> Path:
    """Create an empty directory for a cluster that its owner can reach."""
    base = Path(tempfile.mkdtemp(prefix="breakglass-sandbox-pg-", dir="/tmp"))
    base.chmod(0o755)
    return base


def create(base: Path, *, fast: bool = True) -> ScratchCluster:
    """initdb a cluster in `base`, set it to archive into `base/archive`, and start it.

    `fast` turns fsync off: a crash of the machine may lose the sandbox's data, never a
    real platform's.
    """
    owner = owner_name()
    cluster = ScratchCluster(base=base, port=free_port(), owner=owner, bindir=find_bindir())
    for path in (cluster.data, cluster.archive, cluster.backups):
        path.mkdir(mode=0o700)
        if os.geteuid() == 0:
            shutil.chown(path, owner, owner)
    if os.geteuid() == 0:
        shutil.chown(base, owner, owner)
    cluster.run(
        [
            cluster.program("initdb"),
            "-D",
            str(cluster.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        ]
    )
    archive = cluster.archive
    settings = {
        "port": str(cluster.port),
        "listen_addresses": f"'{HOST}'",
        "unix_socket_directories": f"'{base}'",
        "wal_level": "replica",
        "archive_mode": "on",
        "archive_command": f"'test ! -f {archive}/%f && cp %p {archive}/%f'",
        "fsync": "off" if fast else "on",
    }
    # In postgresql.conf rather than pg_ctl options, so a plain `pg_ctl start` (as PITR
    # runs it) brings the cluster back with the same settings.
    with (cluster.data / "postgresql.conf").open("a", encoding="utf-8") as conf:
        conf.writelines(f"{key} = {value}\n" for key, value in settings.items())
    cluster.start()
    return cluster


def process_alive(pid: int) -> bool:
    """True while a process with this PID exists, also when it belongs to another user."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
