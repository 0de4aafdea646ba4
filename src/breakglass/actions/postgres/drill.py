"""`pg.restore_drill`: restore the latest base backup and its WAL into a scratch cluster.

The scratch cluster never touches the live one: it gets its own directory and port, its
archive_mode is off, and its restore_command only copies out of the archive, so nothing is
written into it. Once it is promoted, the database's configured checks run against it.
The drill measures the time to restore (RTO) and the data-loss window (RPO: the time
between the last archived transaction and the start of the drill), then removes the copy.
"""

from __future__ import annotations

import shlex
import socket
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import ClassVar

from pydantic import Field

from breakglass.actions.base import Action, ActionContext, ActionError, Outputs, Params, PlanResult
from breakglass.actions.postgres.basebackup import BaseBackup, backup_root, list_backups
from breakglass.actions.postgres.client import database, program
from breakglass.actions.postgres.pitr import (
    RECOVERY_SETTINGS,
    control_data,
    fresh_context,
    log_excerpt,
    owner_write,
    pitr_live,
    postmaster_running,
    restore_backup,
    wait_promoted,
)
from breakglass.actions.postgres.queries import run_checks
from breakglass.actions.postgres.recovery import timeline_chain
from breakglass.actions.postgres.server import as_owner, owner_check, owner_run
from breakglass.config.databases import DatabaseConfig

SCRATCH_PREFIX = "breakglass-drill-"
# Settings the scratch cluster must not take from the live cluster's configuration.
SCRATCH_OVERRIDES = (*RECOVERY_SETTINGS, "port", "listen_addresses", "unix_socket_directories")


def _free_port(avoid: int) -> int:
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port != avoid:
            return port


def live_timeline(db: DatabaseConfig, ctx: ActionContext) -> int | None:
    """Return the timeline the live cluster is on, from the server or its control file."""
    try:
        live = pitr_live(db, ctx)
    except ActionError:
        live = None
    if live is not None:
        return live.timeline
    if db.data_directory is None:
        return None
    data = (
        db.data_directory
        if db.data_directory.is_absolute()
        else ctx.config.base_dir / db.data_directory
    )
    try:
        control = control_data(db, data, ctx)
    except ActionError:
        return None
    value = control.get("Latest checkpoint's TimeLineID")
    return int(value) if value and value.isdigit() else None


def latest_backup(
    db: DatabaseConfig, ctx: ActionContext, timelines: set[int] | None = None
) -> BaseBackup:
    """Return the newest verified backup, on the live cluster's line of history when known.

    A backup on a timeline that a later restore abandoned would prove a branch of history
    the live cluster no longer has.
    """
    usable = [
        backup
        for backup in list_backups(backup_root(db, ctx))
        if backup.verified
        and backup.stop_time is not None
        and (timelines is None or backup.timeline in timelines)
    ]
    if not usable:
        raise ActionError(
            f"no verified base backup of {db.where()} to drill with"
            + (f" on timelines {sorted(timelines)}" if timelines else "")
            + "; take one with `breakglass db backup`"
        )
    return max(usable, key=lambda backup: datetime.fromisoformat(str(backup.stop_time)))


def history_of(
    db: DatabaseConfig, archive: Path, ctx: ActionContext
) -> tuple[int | None, set[int] | None]:
    """Return the live timeline and the timelines of its history, or None for both if unknown."""
    timeline = live_timeline(db, ctx)
    if timeline is None:
        return None, None
    return timeline, {step.timeline for step in timeline_chain(archive, timeline)}


class DrillParams(Params):
    database: str
    scratch_parent: str = Field(
        default_factory=tempfile.gettempdir,
        description="Where the scratch directory is made; the cluster's owner writes there.",
    )


class DrillOutputs(Outputs):
    backup: str
    scratch_port: int
    rto_seconds: float
    rpo_seconds: float
    last_transaction: str | None
    timeline: int
    checks_passed: list[str]


class PgRestoreDrill(Action[DrillParams, DrillOutputs]):
    name = "pg.restore_drill"
    summary = (
        "Restore the latest base backup and WAL into a scratch cluster on another port, "
        "run the configured checks, record RTO and RPO, and remove the copy."
    )
    params_model: ClassVar[type[Params]] = DrillParams
    outputs_model: ClassVar[type[Outputs]] = DrillOutputs
    mutating = False
    idempotent = True
    default_timeout = 3600.0
    enforces_timeout = True

    def _check(self, params: DrillParams, ctx: ActionContext) -> tuple[DatabaseConfig, Path]:
        db = database(ctx, params.database)
        if db.backup_dir is None or db.wal_archive_dir is None:
            raise ActionError(
                f"database {params.database} needs backup_dir and wal_archive_dir for a restore drill"
            )
        archive = db.wal_archive_dir
        archive = archive if archive.is_absolute() else ctx.config.base_dir / archive
        if not archive.is_dir():
            raise ActionError(f"WAL archive {archive} does not exist; check wal_archive_dir")
        return db, archive

    def plan(self, params: DrillParams, ctx: ActionContext) -> PlanResult:
        db, archive = self._check(params, ctx)
        timeline, timelines = history_of(db, archive, ctx)
        backup = latest_backup(db, ctx, timelines)
        return PlanResult(
            summary=f"restore drill of {db.where()} from backup {Path(backup.path).name}",
            target=f"a scratch copy of {db.where()}",
            changes=[
                f"copy {backup.path} into a new directory under {params.scratch_parent}",
                f"replay the WAL in {archive} read-only (archive_mode off on the copy), "
                + (
                    f"following timeline {timeline}, the live cluster's"
                    if timeline is not None
                    else "following the newest timeline (the live cluster's is unknown)"
                ),
                "start the copy on 127.0.0.1 on a free port, never the live one, and wait for promotion",
                f"run {len(db.checks)} configured check(s) on the copy",
                "stop the copy and remove its directory",
            ],
            warnings=[]
            if db.checks
            else [
                f"databases.{params.database}.checks is empty: the drill only proves the restore starts"
            ],
        )

    def run(self, params: DrillParams, ctx: ActionContext) -> DrillOutputs:
        started = time.monotonic()
        began = ctx.clock.now()
        db, archive = self._check(params, ctx)
        timeline, timelines = history_of(db, archive, ctx)
        backup = latest_backup(db, ctx, timelines)
        made = owner_check(
            db,
            ["mktemp", "-d", "-p", params.scratch_parent, f"{SCRATCH_PREFIX}XXXXXX"],
            ctx,
            started=started,
            what=f"make a scratch directory under {params.scratch_parent}",
        )
        scratch = Path(made.decode().strip())
        port = _free_port(db.port)
        scratch_db = db.model_copy(
            update={"host": "127.0.0.1", "port": port, "data_directory": scratch / "data"}
        )
        log = scratch / "server.log"
        ctx.note(f"restore drill in {scratch} on port {port}", {"scratch": str(scratch)})
        try:
            self._restore(db, backup, archive, scratch, port, timeline, ctx, started)
            pg_ctl = program(db, "pg_ctl")
            start = owner_run(
                as_owner(
                    [
                        pg_ctl,
                        "-D",
                        str(scratch / "data"),
                        "-l",
                        str(log),
                        "-w",
                        "-t",
                        "60",
                        "start",
                    ],
                    db.os_user,
                ),
                ctx,
                started=started,
                what="start the scratch cluster",
            )
            if start.returncode != 0 and not postmaster_running(db, scratch / "data", ctx, started):
                raise ActionError("the scratch cluster did not start")
            timeline, replayed = wait_promoted(scratch_db, scratch / "data", ctx, started)
            rto = round(time.monotonic() - started, 3)
            passed, failed = run_checks(scratch_db, ctx)
        except ActionError as e:
            excerpt = log_excerpt(db, log, 0, ctx)
            raise ActionError(
                f"restore drill failed: {e.message}"
                + (f"\nserver log:\n{excerpt}" if excerpt else "")
            ) from None
        finally:
            self._remove(db, scratch, ctx)
        if failed:
            raise ActionError(
                f"the restored copy failed {len(failed)} check(s): " + " | ".join(failed)
            )
        # With no transaction after the backup, the backup's stop time bounds the newest
        # data the copy holds.
        newest = replayed or backup.stop_time
        rpo = round((began - datetime.fromisoformat(str(newest))).total_seconds(), 3)
        return DrillOutputs(
            backup=backup.path,
            scratch_port=port,
            rto_seconds=rto,
            rpo_seconds=rpo,
            last_transaction=replayed,
            timeline=timeline,
            checks_passed=passed,
        )

    def _restore(
        self,
        db: DatabaseConfig,
        backup: BaseBackup,
        archive: Path,
        scratch: Path,
        port: int,
        timeline: int | None,
        ctx: ActionContext,
        started: float,
    ) -> None:
        data = scratch / "data"
        # The copy only reads the archive, and never archives into it.
        restore = f"cp {shlex.quote(str(archive))}/%f %p"
        settings = [
            "# scratch restore drill settings written by breakglass",
            f"port = {port}",
            "listen_addresses = '127.0.0.1'",
            f"unix_socket_directories = '{scratch}'",
            "archive_mode = off",
            "archive_command = ''",
            "restore_command = '" + restore.replace("'", "''") + "'",
            # The live cluster's timeline, not the newest in the archive: a restore that was
            # undone leaves a newer timeline there that the live cluster abandoned.
            f"recovery_target_timeline = '{timeline if timeline is not None else 'latest'}'",
        ]
        restore_backup(db, Path(backup.path), data, SCRATCH_OVERRIDES, settings, ctx, started)
        for name in ("postgresql.conf", "pg_hba.conf"):
            if not (Path(backup.path) / name).is_file():
                # Debian keeps these outside the data directory, so the backup lacks them.
                body = (
                    ""
                    if name == "postgresql.conf"
                    else "local all all peer\nhost all all 127.0.0.1/32 scram-sha-256\n"
                )
                owner_write(db, data / name, body, ctx, started)

    def _remove(self, db: DatabaseConfig, scratch: Path, ctx: ActionContext) -> None:
        """Stop the scratch cluster and delete its directory, which this drill made."""
        if not scratch.name.startswith(SCRATCH_PREFIX):
            return
        cleanup = fresh_context(ctx)
        started = time.monotonic()
        owner_run(
            as_owner(
                [
                    program(db, "pg_ctl"),
                    "-D",
                    str(scratch / "data"),
                    "-m",
                    "immediate",
                    "-w",
                    "stop",
                ],
                db.os_user,
            ),
            cleanup,
            started=started,
            what="stop the scratch cluster",
        )
        owner_check(
            db,
            ["rm", "-rf", "--", str(scratch)],
            cleanup,
            started=started,
            what=f"remove {scratch}",
        )
        cleanup.note(f"removed the scratch copy {scratch}", {})
