"""`pg.dump`: a custom-format dump, verified by listing it with pg_restore before success.

A dump that pg_restore cannot read, or that lists no entries, is a failed step: a safety
backup that cannot be restored is worse than none, because the runbook goes on trusting it.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import ClassVar

from pydantic import Field

from breakglass.actions.base import (
    Action,
    ActionContext,
    ActionError,
    BackupMade,
    Outputs,
    Params,
    PlanResult,
)
from breakglass.actions.postgres.client import (
    child_env,
    connect,
    database,
    failure_output,
    program,
    run_program,
)
from breakglass.config.databases import DatabaseConfig
from breakglass.config.paths import state_dir


class DumpParams(Params):
    database: str
    label: str = Field(
        default="backup", pattern=r"^[A-Za-z0-9_.-]+$", description="Part of the file name."
    )


class DumpOutputs(Outputs):
    path: str
    sha256: str
    size: int
    entries: int
    duration: float
    server_version: str


def dump_directory(db_name: str, db: DatabaseConfig, ctx: ActionContext) -> Path:
    if db.dump_dir is not None:
        return db.dump_dir if db.dump_dir.is_absolute() else ctx.config.base_dir / db.dump_dir
    return state_dir(ctx.config.model, ctx.config.base_dir) / "backups" / db_name


def verify_archive(path: Path, db: DatabaseConfig, ctx: ActionContext, *, started: float) -> int:
    """List a custom-format archive with pg_restore; return its entry count or raise."""
    if not path.is_file() or path.stat().st_size == 0:
        raise ActionError(f"dump {path} is missing or empty")
    listed = run_program(
        [program(db, "pg_restore"), "--list", str(path)], child_env(db, ctx), ctx, started=started
    )
    if listed.returncode != 0:
        reason = failure_output(listed, 300)
        raise ActionError(f"dump {path} is unreadable: pg_restore --list failed: {reason}")
    entries = [
        line
        for line in listed.stdout.decode(errors="replace").splitlines()
        if line and not line.startswith(";")
    ]
    if not entries:
        raise ActionError(f"dump {path} lists no entries; it would restore nothing")
    return len(entries)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()


class PgDump(Action[DumpParams, DumpOutputs]):
    name = "pg.dump"
    summary = "Dump a database with pg_dump -Fc, verify the archive with pg_restore --list, record its SHA-256."
    params_model: ClassVar[type[Params]] = DumpParams
    outputs_model: ClassVar[type[Outputs]] = DumpOutputs
    mutating = False
    idempotent = True
    default_timeout = 3600.0
    enforces_timeout = True

    def plan(self, params: DumpParams, ctx: ActionContext) -> PlanResult:
        db = database(ctx, params.database)
        with connect(db, ctx, timeout=ctx.timeout) as connection:
            size = connection.execute(
                "SELECT pg_size_pretty(pg_database_size(current_database()))"
            ).fetchone()
        directory = dump_directory(params.database, db, ctx)
        return PlanResult(
            summary=f"dump {db.where()} ({size[0] if size else 'size unknown'}) with pg_dump -Fc, then verify it",
            target=f"database {db.where()}",
            changes=[f"writes {directory}/{params.database}-{params.label}-TIMESTAMP.dump"],
        )

    def run(self, params: DumpParams, ctx: ActionContext) -> DumpOutputs:
        db = database(ctx, params.database)
        started = time.monotonic()
        with connect(db, ctx, timeout=ctx.timeout) as connection:
            row = connection.execute("SHOW server_version").fetchone()
        version = str(row[0]) if row else "unknown"
        directory = dump_directory(params.database, db, ctx)
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        stamp = ctx.clock.now().strftime("%Y%m%dT%H%M%SZ")
        path = directory / f"{params.database}-{params.label}-{stamp}.dump"
        argv = [program(db, "pg_dump"), "--format=custom", "--no-password", f"--file={path}"]
        dumped = run_program(argv, child_env(db, ctx), ctx, started=started)
        if dumped.returncode != 0:
            reason = failure_output(dumped)
            raise ActionError(
                f"pg_dump of {db.where()} failed with exit {dumped.returncode}: {reason}",
                temporary=True,
            )
        path.chmod(0o600)
        entries = verify_archive(path, db, ctx, started=started)
        outputs = DumpOutputs(
            path=str(path),
            sha256=sha256_of(path),
            size=path.stat().st_size,
            entries=entries,
            duration=round(time.monotonic() - started, 3),
            server_version=version,
        )
        ctx.record_backup(
            BackupMade(
                database=params.database,
                kind="dump",
                path=outputs.path,
                sha256=outputs.sha256,
                size=outputs.size,
                server_version=version,
                details={"entries": entries, "duration": outputs.duration, "where": db.where()},
            )
        )
        return outputs
