"""`pg.base_backup`: a plain-format base backup with a manifest, checked by pg_verifybackup.

Every backup directory gets a `breakglass-backup.json` with its WAL range, timeline and
times. Backups found in the directory without one (made by other tools) are read from
their `backup_label` and `backup_manifest`, so point-in-time recovery can choose among
all of them.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
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

SIDECAR = "breakglass-backup.json"


@dataclass(frozen=True)
class BaseBackup:
    """The facts about one base backup that point-in-time recovery needs."""

    path: str
    label: str
    start_lsn: str
    stop_lsn: str | None
    timeline: int
    start_time: str
    stop_time: str | None
    made_by_breakglass: bool
    verified: bool


def backup_root(db: DatabaseConfig, ctx: ActionContext) -> Path:
    if db.backup_dir is None:
        raise ActionError(
            f"database {db.where()} has no backup_dir configured; add one to take base backups"
        )
    return db.backup_dir if db.backup_dir.is_absolute() else ctx.config.base_dir / db.backup_dir


def read_backup(directory: Path) -> BaseBackup | None:
    """Describe the backup in `directory` from our sidecar, or from its label and manifest."""
    sidecar = directory / SIDECAR
    if sidecar.is_file():
        return BaseBackup(**json.loads(sidecar.read_text(encoding="utf-8")))
    label_file = directory / "backup_label"
    if not label_file.is_file():
        return None
    fields = dict(
        line.split(": ", 1)
        for line in label_file.read_text(encoding="utf-8").splitlines()
        if ": " in line
    )
    start = re.match(
        r"([0-9A-F]+/[0-9A-F]+) \(file ([0-9A-F]{8})", fields.get("START WAL LOCATION", "")
    )
    if start is None:
        return None
    stop_lsn = None
    manifest = directory / "backup_manifest"
    if manifest.is_file():
        ranges = json.loads(manifest.read_text(encoding="utf-8")).get("WAL-Ranges", [])
        if ranges:
            stop_lsn = ranges[-1].get("End-LSN")
    return BaseBackup(
        path=str(directory),
        label=fields.get("LABEL", directory.name),
        start_lsn=start.group(1),
        stop_lsn=stop_lsn,
        timeline=int(start.group(2), 16),
        start_time=_label_time(fields.get("START TIME", "")),
        stop_time=None,
        made_by_breakglass=False,
        verified=False,
    )


def _label_time(text: str) -> str:
    # backup_label writes "2026-12-04 10:30:00 UTC"; other zones are left as written.
    try:
        return (
            datetime.strptime(text.strip(), "%Y-%m-%d %H:%M:%S %Z").replace(tzinfo=UTC).isoformat()
        )
    except ValueError:
        return text.strip()


def list_backups(root: Path) -> list[BaseBackup]:
    if not root.is_dir():
        return []
    found = [read_backup(child) for child in sorted(root.iterdir()) if child.is_dir()]
    return [backup for backup in found if backup is not None]


class BaseBackupParams(Params):
    database: str
    label: str = Field(default="breakglass", pattern=r"^[A-Za-z0-9_.-]+$")


class BaseBackupOutputs(Outputs):
    path: str
    start_lsn: str
    stop_lsn: str | None
    timeline: int
    start_time: str
    stop_time: str
    duration: float


class PgBaseBackup(Action[BaseBackupParams, BaseBackupOutputs]):
    name = "pg.base_backup"
    summary = "Take a plain-format base backup with a manifest and check it with pg_verifybackup."
    params_model: ClassVar[type[Params]] = BaseBackupParams
    outputs_model: ClassVar[type[Outputs]] = BaseBackupOutputs
    mutating = False
    idempotent = True
    default_timeout = 3600.0
    enforces_timeout = True

    def plan(self, params: BaseBackupParams, ctx: ActionContext) -> PlanResult:
        db = database(ctx, params.database)
        root = backup_root(db, ctx)
        with connect(db, ctx, timeout=ctx.timeout) as connection:
            size = connection.execute(
                "SELECT pg_size_pretty(sum(pg_database_size(datname))) FROM pg_database"
            ).fetchone()
        return PlanResult(
            summary=f"base backup of the cluster behind {db.where()} ({size[0] if size else 'size unknown'}), "
            "plain format with WAL streamed, then pg_verifybackup",
            target=f"database {db.where()}",
            changes=[
                f"writes {root}/{params.label}-TIMESTAMP/",
                f"{len(list_backups(root))} backup(s) already there",
            ],
        )

    def run(self, params: BaseBackupParams, ctx: ActionContext) -> BaseBackupOutputs:
        db = database(ctx, params.database)
        started = time.monotonic()
        root = backup_root(db, ctx)
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        begun = ctx.clock.now()
        target = root / f"{params.label}-{begun.strftime('%Y%m%dT%H%M%SZ')}"
        if target.exists():
            raise ActionError(f"backup directory {target} already exists")
        env = child_env(db, ctx)
        argv = [
            program(db, "pg_basebackup"),
            f"--pgdata={target}",
            "--format=plain",
            "--wal-method=stream",
            "--checkpoint=fast",
            f"--label={params.label}",
            "--manifest-checksums=SHA256",
            "--no-password",
        ]
        taken = run_program(argv, env, ctx, started=started)
        if taken.returncode != 0:
            reason = failure_output(taken)
            raise ActionError(
                f"pg_basebackup of {db.where()} failed with exit {taken.returncode}: {reason}",
                temporary=True,
            )
        checked = run_program(
            [program(db, "pg_verifybackup"), str(target)], env, ctx, started=started
        )
        if checked.returncode != 0:
            reason = failure_output(checked)
            raise ActionError(f"pg_verifybackup rejected the new backup {target}: {reason}")
        described = read_backup(target)
        if described is None:
            raise ActionError(f"backup {target} has no readable backup_label")
        # Taken after pg_basebackup returned, so later than the true stop: choosing backups
        # by this time for recovery errs on the safe side.
        finished = ctx.clock.now()
        record = BaseBackup(
            **{
                **asdict(described),
                "made_by_breakglass": True,
                "verified": True,
                "stop_time": finished.isoformat(),
            }
        )
        (target / SIDECAR).write_text(json.dumps(asdict(record), indent=2), encoding="utf-8")
        manifest = json.loads((target / "backup_manifest").read_text(encoding="utf-8"))
        ctx.record_backup(
            BackupMade(
                database=params.database,
                kind="base",
                path=str(target),
                size=sum(path.stat().st_size for path in target.rglob("*") if path.is_file()),
                # The manifest lists every file's SHA-256; its own checksum stands for them all.
                sha256=manifest.get("Manifest-Checksum"),
                details=asdict(record),
            )
        )
        return BaseBackupOutputs(
            path=str(target),
            start_lsn=record.start_lsn,
            stop_lsn=record.stop_lsn,
            timeline=record.timeline,
            start_time=record.start_time,
            stop_time=record.stop_time or finished.isoformat(),
            duration=round(time.monotonic() - started, 3),
        )
