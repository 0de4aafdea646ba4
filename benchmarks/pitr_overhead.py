"""PITR orchestration overhead: `pg.pitr_restore` against the bare command sequence.

One PostgreSQL cluster on 127.0.0.1 archives its WAL. It gets pgbench tables (scale 5,
about 75 MB), a base backup taken by `pg.base_backup`, 2,000 pgbench transactions before
the target instant and 2,000 after it. Then, alternately, the same recovery runs twice:

- through `pg.pitr_restore`, with every guardrail of its plan, the WAL switch, the moves,
  the owner-run copy, the recovery settings, the start and the wait for promotion;
- as the bare sequence a careful operator would type: `pg_ctl stop -m fast`, `mv` the
  data directory aside, `cp -a` the backup and `chown -R`, write `postgresql.auto.conf`
  and `recovery.signal`, `pg_ctl start -w`, then poll `pg_is_in_recovery()`.

Both recover the same backup and WAL to the same target, which lies on timeline 1 before
every later timeline switch, so each repetition follows a longer timeline history. The
figure is the ratio of the medians. Set-aside data directories are deleted between runs.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from tests.postgres import PostgresServer, find_bindir, start_server

from benchmarks.common import BenchmarkResult, Figure
from breakglass.actions import registry
from breakglass.actions.base import ActionContext
from breakglass.config.loading import LoadedConfig
from breakglass.config.model import PlatformConfig

NAME = "pitr_overhead"
SUMMARY = "pg.pitr_restore wall time / the bare command sequence, same backup and WAL"

REPETITIONS = 3
SCALE = 5
TRANSACTIONS = 2000


def owner() -> str:
    import pwd

    return "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name


def as_owner(argv: list[str]) -> list[str]:
    return ["runuser", "-u", owner(), "--", *argv] if os.geteuid() == 0 else argv


def context(server: PostgresServer, state: Path) -> ActionContext:
    database: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": server.port,
        "dbname": "postgres",
        "user": "postgres",
        "data_directory": str(server.data),
        "server_control": {"kind": "pg_ctl", "timeout": "120s"},
        "backup_dir": str(server.base / "backups"),
        "wal_archive_dir": str(server.archive),
        "restore_free_space_reserve": "1MiB",
    }
    if os.geteuid() == 0:
        database["os_user"] = owner()
    model = PlatformConfig.model_validate({"state_dir": str(state), "databases": {"app": database}})
    return ActionContext(
        config=LoadedConfig(model, state / "breakglass.yaml", "bench"), timeout=1800
    )


def pgbench(server: PostgresServer, *args: str) -> None:
    bindir = find_bindir()
    assert bindir is not None
    subprocess.run(
        [
            str(bindir / "pgbench"),
            "-h",
            "127.0.0.1",
            "-p",
            str(server.port),
            "-U",
            "postgres",
            *args,
            "postgres",
        ],
        check=True,
        capture_output=True,
        timeout=1800,
    )


def query(server: PostgresServer, sql: str) -> Any:
    with psycopg.connect(
        host="127.0.0.1", port=server.port, user="postgres", dbname="postgres", autocommit=True
    ) as connection:
        row = connection.execute(sql).fetchone()
        return row[0] if row else None


def bare_restore(server: PostgresServer, backup: Path, target: str, timeline: int) -> float:
    """The same recovery as a shell runbook does it, without the guardrails; return seconds."""
    bindir = find_bindir()
    assert bindir is not None
    pg_ctl = str(bindir / "pg_ctl")
    started = time.perf_counter()
    subprocess.run(
        as_owner([pg_ctl, "-D", str(server.data), "-m", "fast", "-w", "stop"]),
        check=True,
        capture_output=True,
    )
    aside = server.base / f"bare-aside-{time.time_ns()}"
    subprocess.run(as_owner(["mv", str(server.data), str(aside)]), check=True)
    subprocess.run(["cp", "-a", str(backup), str(server.data)], check=True)
    (server.data / "breakglass-backup.json").unlink(missing_ok=True)
    settings = (
        f"\nrestore_command = 'cp {server.archive}/%f %p'\n"
        f"recovery_target_time = '{target}'\n"
        "recovery_target_action = 'promote'\n"
        f"recovery_target_timeline = '{timeline}'\n"
    )
    with (server.data / "postgresql.auto.conf").open("a", encoding="utf-8") as conf:
        conf.write(settings)
    (server.data / "recovery.signal").touch()
    if os.geteuid() == 0:
        subprocess.run(["chown", "-R", f"{owner()}:{owner()}", str(server.data)], check=True)
    server.data.chmod(0o700)
    subprocess.run(
        as_owner(
            [pg_ctl, "-D", str(server.data), "-l", str(server.log), "-w", "-t", "600", "start"]
        ),
        check=True,
        capture_output=True,
    )
    while True:
        try:
            if query(server, "SELECT pg_is_in_recovery()") is False:
                break
        except psycopg.OperationalError:
            pass
        time.sleep(0.5)
    elapsed = time.perf_counter() - started
    shutil.rmtree(aside, ignore_errors=True)
    return elapsed


def run() -> BenchmarkResult:
    if find_bindir() is None:
        raise RuntimeError(
            "PostgreSQL server binaries not found; run `make test` once to install them"
        )
    result = BenchmarkResult(NAME, SUMMARY)
    servers = start_server(archive=True)
    server = next(servers)
    try:
        state = server.base / "state"
        state.mkdir()
        ctx = context(server, state)
        pgbench(server, "-i", "-s", str(SCALE), "-q")
        backup_action = registry.get_action("pg.base_backup")
        made = backup_action.run(backup_action.parse({"database": "app"}), ctx)
        pgbench(server, "-t", str(TRANSACTIONS), "-c", "2")
        time.sleep(1)
        target = datetime.now(UTC).isoformat()
        time.sleep(1)
        pgbench(server, "-t", str(TRANSACTIONS), "-c", "2")
        action = registry.get_action("pg.pitr_restore")
        params = action.parse({"database": "app", "target_time": target})
        breakglass_times: list[float] = []
        bare_times: list[float] = []
        for _ in range(REPETITIONS):
            timeline = int(
                str(query(server, "SELECT pg_walfile_name(pg_current_wal_lsn())"))[:8], 16
            )
            bare_times.append(
                bare_restore(server, Path(made.path), target.replace("T", " "), timeline)
            )
            started = time.perf_counter()
            restored = action.run(params, ctx)
            breakglass_times.append(time.perf_counter() - started)
            shutil.rmtree(restored.moved_aside, ignore_errors=True)
        ratio = statistics.median(breakglass_times) / statistics.median(bare_times)
        result.figures = [
            Figure.from_samples("pg.pitr_restore", "s", breakglass_times),
            Figure.from_samples("bare command sequence", "s", bare_times),
            Figure.single("ratio", "x", round(ratio, 2), "pg.pitr_restore / bare; lower is better"),
        ]
        size = query(server, "SELECT pg_size_pretty(pg_database_size('postgres'))")
        result.notes.append(
            f"database size {size}; backup {made.path}; target {target}; "
            f"{TRANSACTIONS} pgbench transactions on each side of the target"
        )
    finally:
        servers.close()
    return result
