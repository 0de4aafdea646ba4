"""Restore drill RTO for a database of about 1 GB, and how it grows with WAL volume.

One PostgreSQL cluster on 127.0.0.1 archives its WAL. pgbench initializes it at scale 70
(about 1 GB), and `pg.base_backup` backs it up. `pg.restore_drill` then restores that
backup into a scratch cluster, replays the archive, promotes the copy and removes it; its
RTO output is the figure. pgbench transactions then add WAL after the backup, and the
drill runs again at each volume, so the figures show RTO against WAL bytes to replay.

The drill's own RTO is read from its output (time from the start of the drill to the
promoted copy). Each point is one drill: a drill copies the whole backup, so repeating
them would take many minutes on a small machine.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from tests.postgres import find_bindir, start_server

from benchmarks.common import BenchmarkResult, Figure
from benchmarks.pitr_overhead import context, owner, pgbench, query
from breakglass.actions import registry

NAME = "restore_drill"
SUMMARY = "pg.restore_drill RTO at scale 70 (about 1 GB), by WAL volume since the backup"

SCALE = 70
# pgbench transactions added before each further drill (2 clients).
WAL_STEPS = (0, 60_000, 120_000)


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
        scratch = server.base / "scratch"
        scratch.mkdir()
        shutil.chown(scratch, owner(), owner())
        ctx = context(server, state)
        started = time.perf_counter()
        pgbench(server, "-i", "-s", str(SCALE), "-q")
        initialized = time.perf_counter() - started
        backup = registry.get_action("pg.base_backup")
        made = backup.run(backup.parse({"database": "app"}), ctx)
        start_lsn = made.start_lsn
        drill = registry.get_action("pg.restore_drill")
        params = drill.parse({"database": "app", "scratch_parent": str(scratch)})
        for transactions in WAL_STEPS:
            if transactions:
                pgbench(server, "-t", str(transactions // 2), "-c", "2")
            query(server, "SELECT pg_switch_wal()")
            time.sleep(2)  # let the archiver catch up with the last segment
            wal_bytes = int(
                query(server, f"SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '{start_lsn}')")
            )
            outputs = drill.run(params, ctx)
            result.figures.append(
                Figure.single(
                    f"RTO, {wal_bytes / 1_048_576:.0f} MiB of WAL since the backup",
                    "s",
                    outputs.rto_seconds,
                    f"RPO {outputs.rpo_seconds} s",
                )
            )
        size = query(server, "SELECT pg_size_pretty(pg_database_size('postgres'))")
        backup_bytes = sum(
            path.stat().st_size for path in Path(made.path).rglob("*") if path.is_file()
        )
        result.notes.append(
            f"database {size}, backup {backup_bytes / 1_048_576:.0f} MiB; pgbench -i took {initialized:.0f} s"
        )
    finally:
        servers.close()
    return result
