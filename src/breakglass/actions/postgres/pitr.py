"""`pg.pitr_restore` and `pg.pitr_undo`: point-in-time recovery of a whole cluster.

Every guardrail is checked by `survey`, which the plan and the run both call before
anything is stopped or moved: the target instant, the backup, the WAL span, the timeline,
the replicas, the state store and the disk space. The run then forces a WAL switch (when
the server is up), stops the server, moves the data directory aside, restores the backup
as the cluster's owner, writes the recovery settings, starts the server and waits for the
promotion. A recovery that fails puts the original data directory back and starts it.

Each change to the data directory is journaled as a note before and after it happens, so
after a crash in the middle the journal records where the original data directory is.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import ClassVar

import psycopg
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from breakglass.actions.base import (
    Action,
    ActionContext,
    ActionError,
    Outputs,
    Params,
    PlanResult,
)
from breakglass.actions.postgres.basebackup import SIDECAR, BaseBackup, backup_root, list_backups
from breakglass.actions.postgres.client import connect, database, program
from breakglass.actions.postgres.recovery import (
    DEFAULT_SEGMENT_BYTES,
    WalSpan,
    check_span,
    choose_backup,
    segment_name,
    segment_number,
    timeline_chain,
)
from breakglass.actions.postgres.server import (
    as_owner,
    control_server,
    owner_check,
    owner_run,
)
from breakglass.config.databases import DatabaseConfig
from breakglass.config.paths import state_url
from breakglass.timeinput import parse_instant

# Planning rates for the duration estimate: copying a base backup and replaying WAL.
# Rough on purpose, and the plan calls the result an estimate.
COPY_BYTES_PER_SECOND = 200 * 1024 * 1024
REPLAY_BYTES_PER_SECOND = 100 * 1024 * 1024
STOP_START_SECONDS = 15
# The settings pg.pitr_restore owns in postgresql.auto.conf. Earlier values are removed
# before its own are written, because a stale second target makes the server refuse to start.
RECOVERY_SETTINGS = (
    "restore_command",
    "recovery_target",
    "recovery_target_lsn",
    "recovery_target_name",
    "recovery_target_time",
    "recovery_target_xid",
    "recovery_target_action",
    "recovery_target_timeline",
    "recovery_target_inclusive",
)
LOG_EXCERPT_LINES = 20


@dataclass
class LiveServer:
    """Facts the running server reports about itself; None stands for a stopped server."""

    timeline: int
    current_segment: str
    segment_bytes: int
    replicas: list[str]
    server_now: datetime
    data_directory: str | None
    archiving: str
    last_failed_wal: str | None
    databases: list[str]


@dataclass
class Survey:
    """The checked facts a PITR plan shows and its run acts on."""

    db: DatabaseConfig
    data: Path
    archive: Path
    target: datetime
    backup: BaseBackup
    backup_bytes: int
    live: LiveServer | None
    earlier_aside: Path | None
    timeline: int
    span: WalSpan
    wal_source: str
    free_bytes: int
    estimate_seconds: int
    warnings: list[str] = field(default_factory=list)


def _pretty(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def _tree_bytes(root: Path) -> int:
    total = 0
    for directory, _, files in os.walk(root):
        for name in files:
            try:
                total += (Path(directory) / name).lstat().st_size
            except OSError:
                continue
    return total


def _required(db: DatabaseConfig, name: str) -> None:
    fields = {
        "data_directory": db.data_directory,
        "server_control": db.server_control,
        "backup_dir": db.backup_dir,
        "wal_archive_dir": db.wal_archive_dir,
    }
    missing = [key for key, value in fields.items() if value is None]
    if missing:
        raise ActionError(
            f"database {name} ({db.where()}) cannot be restored to a point in time: "
            f"configure {', '.join(missing)} under databases.{name}"
        )


def _absolute(path: Path, ctx: ActionContext) -> Path:
    return path if path.is_absolute() else ctx.config.base_dir / path


def _same_server(db: DatabaseConfig, url: str) -> bool:
    """Tell whether a state store URL reaches the database's server, by TCP or Unix socket."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return False
    if not parsed.drivername.startswith("postgresql"):
        return False
    query_host = parsed.query.get("host")
    query_port = parsed.query.get("port")
    state_host = parsed.host or (query_host if isinstance(query_host, str) else None) or ""
    port_text = parsed.port or (query_port if isinstance(query_port, str) else None) or 5432
    try:
        state_port = int(port_text)
    except ValueError:
        return False

    def local(host: str) -> bool:
        # A socket directory and the loopback names all reach a server on this machine.
        return host in ("", "localhost", "127.0.0.1", "::1") or host.startswith("/")

    same_host = state_host == db.host or (local(state_host) and local(db.host))
    return same_host and state_port == db.port


def pitr_live(db: DatabaseConfig, ctx: ActionContext) -> LiveServer | None:
    """Query the running server; return None when it cannot be reached (taken to be down)."""
    try:
        with connect(db, ctx, timeout=min(ctx.timeout, 10.0)) as connection:
            row = connection.execute(
                "SELECT pg_is_in_recovery(), now(), "
                "(SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size'), "
                "current_setting('archive_mode')"
            ).fetchone()
            assert row is not None
            if row[0]:
                raise ActionError(
                    f"{db.where()} is a standby in recovery; run point-in-time recovery on the primary"
                )
            current = connection.execute("SELECT pg_walfile_name(pg_current_wal_lsn())").fetchone()
            assert current is not None
            replicas = [
                f"{name or 'unnamed'} from {address or 'a local socket'} ({state})"
                for name, address, state in connection.execute(
                    "SELECT application_name, client_addr::text, state FROM pg_stat_replication"
                ).fetchall()
            ]
            try:
                shown = connection.execute("SELECT current_setting('data_directory')").fetchone()
                directory = str(shown[0]) if shown else None
            except psycopg.Error:
                # Reading it needs pg_read_all_settings; without it the check is skipped.
                directory = None
            databases = [
                str(name)
                for (name,) in connection.execute(
                    "SELECT datname FROM pg_database WHERE NOT datistemplate ORDER BY datname"
                ).fetchall()
            ]
            archiver = connection.execute(
                "SELECT last_archived_wal, last_failed_wal, last_failed_time > "
                "coalesce(last_archived_time, '-infinity') FROM pg_stat_archiver"
            ).fetchone()
    except ActionError as e:
        if e.unreachable:
            return None
        raise
    failing = archiver[1] if archiver is not None and archiver[2] else None
    return LiveServer(
        timeline=int(str(current[0])[:8], 16),
        current_segment=str(current[0]),
        segment_bytes=int(row[2] or DEFAULT_SEGMENT_BYTES),
        replicas=replicas,
        server_now=row[1],
        data_directory=directory,
        archiving=str(row[3]),
        last_failed_wal=str(failing) if failing else None,
        databases=databases,
    )


def control_data(db: DatabaseConfig, data: Path, ctx: ActionContext) -> dict[str, str]:
    """Read pg_controldata of a stopped cluster, as its owner."""
    output = owner_check(
        db,
        [program(db, "pg_controldata"), str(data)],
        ctx,
        started=time.monotonic(),
        what=f"read the control file of {data}",
    )
    fields = {}
    for line in output.decode(errors="replace").splitlines():
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    return fields


def _owner_listing(db: DatabaseConfig, directory: Path, ctx: ActionContext) -> list[str]:
    output = owner_check(
        db,
        ["ls", "-1", str(directory)],
        ctx,
        started=time.monotonic(),
        what=f"list {directory}",
    )
    return output.decode(errors="replace").split()


def _check_server(
    db: DatabaseConfig, data: Path, live: LiveServer | None, warnings: list[str], ctx: ActionContext
) -> tuple[int, int]:
    """Check the server is the configured cluster; return its timeline and segment size."""
    if live is None:
        control = control_data(db, data, ctx)
        state = control.get("Database cluster state", "unknown")
        if state not in ("shut down", "shut down in recovery"):
            warnings.append(
                f"the server does not answer, but its control file says {state!r}: "
                "check that no postmaster is running before you approve"
            )
        return int(control.get("Latest checkpoint's TimeLineID", "1")), int(
            control.get("Bytes per WAL segment", DEFAULT_SEGMENT_BYTES)
        )
    if live.data_directory and Path(live.data_directory) != data:
        raise ActionError(
            f"{db.where()} runs from {live.data_directory}, but data_directory is {data}; "
            "fix the config so the restore replaces the right cluster"
        )
    if live.archiving == "off":
        raise ActionError(
            f"{db.where()} has archive_mode off, so the archive cannot hold the WAL up to the "
            "target; PITR needs a server that archives its WAL"
        )
    return live.timeline, live.segment_bytes


def survey(db_name: str, target_text: str, ctx: ActionContext) -> Survey:
    """Check every guardrail of a PITR and return what the plan and the run need.

    Raises ActionError naming the first guardrail that fails; nothing is changed.
    """
    db = database(ctx, db_name)
    _required(db, db_name)
    assert db.data_directory is not None and db.wal_archive_dir is not None
    data = _absolute(db.data_directory, ctx)
    archive = _absolute(db.wal_archive_dir, ctx)
    try:
        target = parse_instant(target_text)
    except ValueError as e:
        raise ActionError(f"target_time: {e}") from None
    url = state_url(ctx.config.model, ctx.config.base_dir)
    if _same_server(db, url):
        raise ActionError(
            f"{db.where()} contains breakglass's own state store (state_url); a point-in-time "
            "recovery would roll back the journal of this very run. Move the state store to "
            "another server first"
        )
    now = ctx.clock.now()
    if target > now:
        raise ActionError(
            f"recovery target {target.isoformat()} is in the future (now is "
            f"{now.isoformat(timespec='seconds')}); give a time that has passed"
        )
    warnings: list[str] = []
    earlier = earlier_aside(db, data, ctx)
    if earlier is not None:
        # A crash or failure interrupted an earlier attempt of this run after it moved the
        # original aside: what is in `data` now is that attempt's partial restore.
        live = None
        warnings.append(
            f"an earlier attempt of this run moved the original data directory to {earlier}; "
            f"this attempt restores from it and keeps whatever is in {data} aside"
        )
    else:
        if not _exists(db, data, ctx, time.monotonic()):
            raise ActionError(
                f"data directory {data} does not exist; if an earlier recovery moved it "
                f"aside, it is in {data.parent} under a name starting {data.name}.breakglass-"
            )
        live = pitr_live(db, ctx)
    original = earlier or data
    timeline, segment_bytes = _check_server(db, original, live, warnings, ctx)
    root = backup_root(db, ctx)
    backup = choose_backup(list_backups(root), target)
    chain = timeline_chain(archive, timeline)
    span = check_span(archive, backup, chain=chain, segment_bytes=segment_bytes)
    if span.missing:
        shown = ", ".join(span.missing[:5]) + (" ..." if len(span.missing) > 5 else "")
        raise ActionError(
            f"the WAL archive {archive} lacks {len(span.missing)} segment(s) between backup "
            f"{Path(backup.path).name} and the newest archived segment: {shown}; replay would stop at "
            "the first gap. Restore the missing files or choose a later target and backup"
        )
    wal_source = _wal_source(db, original, archive, target, span, live, timeline, ctx)
    backup_bytes = _tree_bytes(Path(backup.path))
    need = backup_bytes + 4 * segment_bytes
    probe = data.parent
    free = shutil.disk_usage(probe).free
    reserve = int(db.restore_free_space_reserve)
    if free - need < reserve:
        raise ActionError(
            f"not enough disk space on the file system of {probe}: the restore needs "
            f"{_pretty(need)}, {_pretty(free)} is free, and {_pretty(reserve)} must stay free "
            "(restore_free_space_reserve); free space or lower the reserve"
        )
    if live is not None and live.replicas:
        warnings.append(
            "streaming replicas will diverge and must be rebuilt from the restored server: "
            + "; ".join(live.replicas)
        )
    if live is not None and live.last_failed_wal:
        warnings.append(
            f"the archiver's last attempt failed (on {live.last_failed_wal}); the run waits for "
            "the current segment to be archived and stops if it never is"
        )
    replay_bytes = max(1, span.segments) * segment_bytes
    estimate = int(
        STOP_START_SECONDS
        + backup_bytes / COPY_BYTES_PER_SECOND
        + replay_bytes / REPLAY_BYTES_PER_SECOND
    )
    return Survey(
        db=db,
        data=data,
        archive=archive,
        target=target,
        backup=backup,
        backup_bytes=backup_bytes,
        live=live,
        earlier_aside=earlier,
        timeline=timeline,
        span=span,
        wal_source=wal_source,
        free_bytes=free,
        estimate_seconds=estimate,
        warnings=warnings,
    )


def _wal_source(
    db: DatabaseConfig,
    data: Path,
    archive: Path,
    target: datetime,
    span: WalSpan,
    live: LiveServer | None,
    timeline: int,
    ctx: ActionContext,
) -> str:
    """Name where the WAL up to and past the target comes from; raise when no source has it."""
    assert span.last is not None or span.missing
    if live is not None:
        return (
            f"the archive, from {span.first} to {span.last}, then the live server's current "
            f"segment {live.current_segment}, which the run's WAL switch sends to the archive"
        )
    assert span.last_archived_at is not None and span.last_number is not None
    if span.last_archived_at >= target:
        return f"the archive, from {span.first} to {span.last} (archived after the target)"
    # The server is down and the archive ends before the target: the newer segments can
    # only come from the pg_wal of the data directory the run moves aside.
    following = segment_name(
        timeline, (span.last_number + 1) * span.segment_bytes, span.segment_bytes
    )
    in_pg_wal = _owner_listing(db, data / "pg_wal", ctx)
    if following not in in_pg_wal:
        raise ActionError(
            f"the newest archived segment, {span.last}, was archived at "
            f"{span.last_archived_at.isoformat(timespec='seconds')}, before the target, and "
            f"the server is down with no later segment ({following}) in {data / 'pg_wal'}; "
            "the WAL past the target is not available"
        )
    newer = sorted(
        name
        for name in in_pg_wal
        if len(name) == 24
        and name >= following
        and segment_number(name, span.segment_bytes)[0] == timeline
    )
    return (
        f"the archive, from {span.first} to {span.last}, then the moved-aside pg_wal "
        f"({newer[0]} to {newer[-1]})"
    )


def describe(found: Survey) -> PlanResult:
    backup = found.backup
    data = found.data
    aside = (
        str(found.earlier_aside)
        if found.earlier_aside is not None
        else f"{data.with_name(data.name + '.breakglass-aside-RUN-TIME')} (named when it moves)"
    )
    if found.live is not None:
        everything = ", ".join(found.live.databases)
    else:
        everything = "every database of the cluster (the server is down, so they are not listed)"
    changes = [
        f"recovery target (UTC): {found.target.isoformat()}",
        f"the whole cluster returns to that time: {everything}",
        f"base backup: {Path(backup.path).name} in {Path(backup.path).parent} (stopped "
        f"{backup.stop_time}, timeline {backup.timeline}, start {backup.start_lsn})",
    ]
    if found.live is not None:
        changes.append(
            "force a WAL switch on the running server and wait until that segment is archived"
        )
    changes += [
        "stop the server" if found.live is not None else "the server is already down",
        f"move {data} aside to {aside}; it is kept, never deleted",
        f"restore the backup into {data} as the cluster's owner, mode 0700",
        f"write restore_command, recovery_target_time = '{found.target.isoformat()}', "
        f"recovery_target_action = 'promote' and recovery_target_timeline = '{found.timeline}' "
        "into postgresql.auto.conf, and create recovery.signal",
        "start the server and wait until recovery ends and it is promoted on a new timeline",
    ]
    details = [
        f"WAL span: {found.span.first} to {found.span.last or found.span.first} "
        f"({found.span.segments} segment(s), no gaps) on the history of timeline {found.timeline}",
        f"WAL source: {found.wal_source}",
        f"estimated duration: about {found.estimate_seconds} s to copy {_pretty(found.backup_bytes)} "
        "and replay the span (at a planning rate of ~200 MiB/s copy and ~100 MiB/s replay, "
        f"an estimate); {_pretty(found.free_bytes)} free on the file system",
    ]
    return PlanResult(
        summary=f"point-in-time recovery of the cluster behind {found.db.where()} to "
        f"{found.target.isoformat()} from backup {Path(backup.path).name}",
        target=f"database {found.db.where()}",
        changes=changes,
        details=details,
        warnings=found.warnings,
        mutating=True,
    )


class PitrParams(Params):
    database: str
    target_time: str


class PitrOutputs(Outputs):
    target_time: str
    backup: str
    data_directory: str
    moved_aside: str
    wal_source: str
    timeline: int
    last_replay_time: str | None
    duration: float


def aside_path(data: Path, ctx: ActionContext, kind: str) -> Path:
    """Name a new sibling of the data directory for `kind` (aside, failed, undone)."""
    stamp = ctx.clock.now().strftime("%Y%m%dT%H%M%SZ")
    tag = ctx.run_id or "manual"
    candidate = data.with_name(f"{data.name}.breakglass-{kind}-{tag}-{stamp}")
    number = 1
    while candidate.exists():
        number += 1
        candidate = data.with_name(f"{data.name}.breakglass-{kind}-{tag}-{stamp}-{number}")
    return candidate


class PgPitrRestore(Action[PitrParams, PitrOutputs]):
    name = "pg.pitr_restore"
    summary = (
        "Restore the cluster to a point in time from a base backup and the WAL archive, "
        "keeping the current data directory aside."
    )
    params_model: ClassVar[type[Params]] = PitrParams
    outputs_model: ClassVar[type[Outputs]] = PitrOutputs
    mutating = True
    destructive = True
    default_timeout = 3600.0
    enforces_timeout = True

    def plan(self, params: PitrParams, ctx: ActionContext) -> PlanResult:
        found = survey(params.database, params.target_time, ctx)
        return describe(found)

    def run(self, params: PitrParams, ctx: ActionContext) -> PitrOutputs:
        started = time.monotonic()
        found = survey(params.database, params.target_time, ctx)
        db, data = found.db, found.data
        ctx.note(
            f"PITR to {found.target.isoformat()} from backup {Path(found.backup.path).name}; "
            f"WAL source: {found.wal_source}",
            {"target_time": found.target.isoformat(), "backup": found.backup.path},
        )
        if found.earlier_aside is not None:
            aside = found.earlier_aside
            _clear_partial_restore(db, data, ctx, started)
        else:
            if found.live is not None:
                _switch_and_wait(found, ctx, started)
                control_server(db, "stop", ctx, started=started)
                ctx.note(f"stopped the server of {db.where()}", {})
            aside = aside_path(data, ctx, "aside")
            ctx.note(f"moving {data} aside to {aside}", {"aside": str(aside)})
            _move(db, data, aside, ctx, started)
            ctx.note(f"moved {data} aside to {aside}", {"aside": str(aside)})
        log_offset = _log_size(db, ctx, started)
        try:
            _restore(found, aside, ctx, started)
            ctx.note(f"restored backup {Path(found.backup.path).name} into {data}", {})
            try:
                control_server(db, "start", ctx, started=started)
            except ActionError as e:
                # pg_ctl gives up waiting after its own timeout while a long recovery goes
                # on; only a server that is gone means the recovery failed.
                if not postmaster_running(db, data, ctx, started):
                    raise
                ctx.note(f"the start command returned before recovery ended ({e.message})", {})
            timeline, replayed = wait_promoted(db, data, ctx, started)
        except ActionError as e:
            excerpt = log_excerpt(db, db.log_file(), log_offset, ctx)
            reason = f"recovery failed: {e.message}"
            if excerpt:
                reason += f"\nserver log:\n{excerpt}"
            raise ActionError(reason + "\n" + _put_back(db, data, aside, ctx)) from None
        ctx.note(
            f"promoted on timeline {timeline}; last replayed transaction at {replayed}",
            {"timeline": timeline},
        )
        _archive_new_timeline(found, ctx)
        return PitrOutputs(
            target_time=found.target.isoformat(),
            backup=found.backup.path,
            data_directory=str(data),
            moved_aside=str(aside),
            wal_source=found.wal_source,
            timeline=timeline,
            last_replay_time=replayed,
            duration=round(time.monotonic() - started, 3),
        )


def earlier_aside(db: DatabaseConfig, data: Path, ctx: ActionContext) -> Path | None:
    """Return the original data directory an earlier attempt of this run moved aside."""
    if ctx.run_id is None:
        return None
    prefix = f"{data.name}.breakglass-aside-{ctx.run_id}-"
    try:
        names = _owner_listing(db, data.parent, ctx)
    except ActionError:
        return None
    found = sorted(name for name in names if name.startswith(prefix))
    return data.parent / found[0] if found else None


def _clear_partial_restore(
    db: DatabaseConfig, data: Path, ctx: ActionContext, started: float
) -> None:
    """Stop and keep aside what an interrupted attempt left in the data directory."""
    if not _exists(db, data, ctx, started):
        return
    if postmaster_running(db, data, ctx, started):
        control_server(db, "stop", ctx, started=started)
    partial = aside_path(data, ctx, "failed")
    _move(db, data, partial, ctx, started)
    ctx.note(f"kept the interrupted attempt's data directory aside at {partial}", {})


def _switch_and_wait(found: Survey, ctx: ActionContext, started: float) -> None:
    """Close the current WAL segment and wait until the archive contains it.

    The transaction id taken first makes sure a commit record follows the target: recovery
    to a time stops at the first commit after it, and ends in failure without one.
    """
    db = found.db
    try:
        with connect(db, ctx, timeout=min(ctx.remaining(started), 30.0)) as connection:
            connection.execute("SELECT pg_current_xact_id()")
            row = connection.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()
    except ActionError as e:
        raise ActionError(
            f"cannot force a WAL switch on {db.where()}: {e.message}; the user needs "
            "EXECUTE on pg_switch_wal() (or superuser). Nothing was changed"
        ) from None
    assert row is not None
    segment = str(row[0])
    ctx.note(f"forced a WAL switch; waiting until {segment} is archived", {"segment": segment})
    while not (found.archive / segment).is_file():
        if ctx.remaining(started) <= 0 or ctx.cancelled.is_set():
            raise ActionError(
                f"{segment} did not reach the WAL archive {found.archive} in time; check "
                "archive_command and pg_stat_archiver. Nothing was changed"
            )
        ctx.clock.sleep(0.2)
    ctx.note(f"{segment} is archived", {"segment": segment})


def _archive_new_timeline(found: Survey, ctx: ActionContext) -> None:
    """Send the new timeline's first segment to the archive now.

    Until it is archived, a later restore that follows the new timeline finds only the
    old timeline's copy of that segment and replays the very changes this recovery
    removed.
    """
    try:
        with connect(found.db, ctx, timeout=10.0) as connection:
            connection.execute("SELECT pg_current_xact_id()")
            row = connection.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()
    except ActionError as e:
        ctx.note(
            f"could not switch WAL on the new timeline ({e.message}); run SELECT pg_switch_wal() "
            "and take a new base backup",
            {},
        )
        return
    segment = str(row[0]) if row else "?"
    deadline = time.monotonic() + 30
    while not (found.archive / segment).is_file() and time.monotonic() < deadline:
        ctx.clock.sleep(0.2)
    archived = (found.archive / segment).is_file()
    ctx.note(
        f"{segment}, the first segment of the new timeline, "
        + ("is archived" if archived else "is not archived yet; check archive_command")
        + "; take a new base backup soon",
        {"segment": segment},
    )


def _move(
    db: DatabaseConfig, source: Path, destination: Path, ctx: ActionContext, started: float
) -> None:
    owner_check(
        db,
        ["mv", "--no-target-directory", str(source), str(destination)],
        ctx,
        started=started,
        what=f"move {source} to {destination}",
    )


def _restore(found: Survey, aside: Path, ctx: ActionContext, started: float) -> None:
    """Copy the backup into an empty data directory as its owner, then the recovery settings."""
    restore_backup(
        found.db,
        Path(found.backup.path),
        found.data,
        RECOVERY_SETTINGS,
        _recovery_settings(found, aside, ctx),
        ctx,
        started,
    )


def restore_backup(
    db: DatabaseConfig,
    backup: Path,
    data: Path,
    replaced: tuple[str, ...],
    settings: list[str],
    ctx: ActionContext,
    started: float,
) -> None:
    """Restore a base backup into a new data directory, as its owner, ready to recover.

    The backup's postgresql.auto.conf is kept without the `replaced` settings, then
    `settings` are appended, and recovery.signal is created.
    """
    owner_check(db, ["mkdir", "-m", "700", str(data)], ctx, started=started, what=f"create {data}")
    copy_tree(db, backup, data, ctx, started)
    owner_check(db, ["chmod", "700", str(data)], ctx, started=started, what=f"chmod {data}")

    auto_conf = backup / "postgresql.auto.conf"
    lines = []
    if auto_conf.is_file():
        lines = [
            line
            for line in auto_conf.read_text(encoding="utf-8").splitlines()
            if line.split("=", 1)[0].strip() not in replaced
        ]
    lines += settings
    written = data / "postgresql.auto.conf"
    owner_write(db, written, "\n".join(lines) + "\n", ctx, started)
    owner_check(db, ["chmod", "600", str(written)], ctx, started=started, what=f"chmod {written}")
    owner_check(
        db,
        ["touch", str(data / "recovery.signal")],
        ctx,
        started=started,
        what="create recovery.signal",
    )


def owner_write(
    db: DatabaseConfig, path: Path, text: str, ctx: ActionContext, started: float
) -> None:
    """Write a file as the cluster's owner, so that it belongs to that user."""
    owner_check(
        db, ["tee", str(path)], ctx, started=started, what=f"write {path}", stdin=text.encode()
    )


def _recovery_settings(found: Survey, aside: Path, ctx: ActionContext) -> list[str]:
    copy_from = f"cp {shlex.quote(str(found.archive))}/%f %p"
    if found.live is None:
        # The server was down, so segments newer than the archive are in the old pg_wal.
        copy_from += f" || cp {shlex.quote(str(aside / 'pg_wal'))}/%f %p"

    def quoted(value: str) -> str:
        return "'" + value.replace("'", "''") + "'"

    return [
        f"# recovery settings written by breakglass run {ctx.run_id or 'outside a run'}",
        f"restore_command = {quoted(copy_from)}",
        f"recovery_target_time = {quoted(found.target.strftime('%Y-%m-%d %H:%M:%S.%f+00'))}",
        "recovery_target_action = 'promote'",
        f"recovery_target_timeline = {quoted(str(found.timeline))}",
    ]


def copy_tree(
    db: DatabaseConfig, source: Path, destination: Path, ctx: ActionContext, started: float
) -> None:
    """Stream the backup through tar into a tar run as the owner, so every file is the owner's."""
    tar = shutil.which("tar") or "/bin/tar"
    reader = subprocess.Popen(
        [tar, "-C", str(source), f"--exclude=./{SIDECAR}", "-cf", "-", "."],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    ctx.on_process(reader.pid)
    assert reader.stdout is not None
    writer = subprocess.Popen(
        as_owner([tar, "-C", str(destination), "-xpf", "-", "--no-same-owner"], db.os_user),
        stdin=reader.stdout,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    ctx.on_process(writer.pid)
    reader.stdout.close()
    deadline = started + ctx.timeout
    for child in (writer, reader):
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            for other in (reader, writer):
                other.kill()
            raise ActionError(
                f"copying {source} into {destination} did not finish in time"
            ) from None
    if reader.returncode != 0 or writer.returncode != 0:
        errors = b"".join(
            child.stderr.read() if child.stderr else b"" for child in (reader, writer)
        )
        raise ActionError(
            f"copying backup {source} into {destination} failed: "
            f"{errors.decode(errors='replace').strip()[-400:]}"
        )


def wait_promoted(
    db: DatabaseConfig, data: Path, ctx: ActionContext, started: float
) -> tuple[int, str | None]:
    """Wait until recovery has ended and the server accepts writes.

    Return the new timeline and the time of the last transaction replayed.
    """
    while True:
        if ctx.cancelled.is_set():
            raise ActionError("the run was aborted while the server was recovering")
        if ctx.remaining(started) <= 0:
            raise ActionError("recovery did not finish before the step's timeout")
        try:
            with connect(db, ctx, timeout=min(ctx.remaining(started), 5.0)) as connection:
                # pg_walfile_name raises during recovery, hence the CASE.
                row = connection.execute(
                    "SELECT pg_is_in_recovery(), CASE WHEN pg_is_in_recovery() THEN NULL "
                    "ELSE pg_walfile_name(pg_current_wal_lsn()) END, "
                    "pg_last_xact_replay_timestamp()"
                ).fetchone()
        except ActionError as e:
            if not postmaster_running(db, data, ctx, started):
                raise ActionError(f"the server stopped during recovery ({e.message})") from None
            row = None
        if row is not None and not row[0]:
            replayed = row[2].isoformat() if row[2] is not None else None
            return int(str(row[1])[:8], 16), replayed
        ctx.clock.sleep(0.5)


def postmaster_running(db: DatabaseConfig, data: Path, ctx: ActionContext, started: float) -> bool:
    done = owner_run(
        as_owner([program(db, "pg_ctl"), "status", "-D", str(data)], db.os_user),
        ctx,
        started=started,
        what="ask pg_ctl for the server's status",
    )
    return done.returncode == 0


def _log_size(db: DatabaseConfig, ctx: ActionContext, started: float) -> int:
    log = db.log_file()
    if log is None:
        return 0
    done = owner_run(
        as_owner(["stat", "-c", "%s", str(log)], db.os_user),
        ctx,
        started=started,
        what="read the log size",
    )
    text = done.stdout.decode().strip()
    return int(text) if done.returncode == 0 and text.isdigit() else 0


def log_excerpt(db: DatabaseConfig, log: Path | None, offset: int, ctx: ActionContext) -> str:
    """Return the last lines the server logged into `log` after byte `offset`."""
    if log is None:
        return ""
    done = owner_run(
        as_owner(["tail", "-c", f"+{offset + 1}", str(log)], db.os_user),
        fresh_context(ctx),
        started=time.monotonic(),
        what="read the server log",
    )
    lines = done.stdout.decode(errors="replace").strip().splitlines()
    return "\n".join(f"  {line}" for line in lines[-LOG_EXCERPT_LINES:])


def fresh_context(ctx: ActionContext, seconds: float = 120.0) -> ActionContext:
    """Return a context with its own deadline, for clean-up after the step's time ran out."""
    return ActionContext(
        config=ctx.config,
        run_id=ctx.run_id,
        step_id=ctx.step_id,
        actor=ctx.actor,
        timeout=seconds,
        clock=ctx.clock,
        on_process=ctx.on_process,
        note=ctx.note,
    )


def _put_back(db: DatabaseConfig, data: Path, aside: Path, ctx: ActionContext) -> str:
    """Undo a failed restore: keep it aside, put the original back and start it."""
    cleanup = fresh_context(ctx, 300.0)
    started = time.monotonic()
    failed = aside_path(data, ctx, "failed")
    try:
        if postmaster_running(db, data, cleanup, started):
            control_server(db, "stop", cleanup, started=started)
        if _exists(db, data, cleanup, started):
            _move(db, data, failed, cleanup, started)
            cleanup.note(f"moved the failed restore aside to {failed}", {"failed": str(failed)})
        _move(db, aside, data, cleanup, started)
        cleanup.note(f"moved the original data directory back to {data}", {})
        control_server(db, "start", cleanup, started=started)
    except ActionError as e:
        return (
            f"Putting the original back failed too: {e.message}. The original data directory "
            f"is at {aside}; move it back to {data} and start the server by hand"
        )
    kept = (
        f"; the failed restore is kept at {failed}" if _exists(db, failed, cleanup, started) else ""
    )
    return f"The original data directory is back at {data} and the server was started{kept}."


def _exists(db: DatabaseConfig, path: Path, ctx: ActionContext, started: float) -> bool:
    done = owner_run(
        as_owner(["test", "-e", str(path)], db.os_user),
        ctx,
        started=started,
        what=f"look for {path}",
    )
    return done.returncode == 0


class PitrUndoParams(Params):
    database: str
    moved_aside: str


class PitrUndoOutputs(Outputs):
    restored_from: str
    kept_at: str


class PgPitrUndo(Action[PitrUndoParams, PitrUndoOutputs]):
    name = "pg.pitr_undo"
    summary = (
        "Put back the data directory a point-in-time recovery moved aside, keeping the "
        "recovered one aside in turn."
    )
    params_model: ClassVar[type[Params]] = PitrUndoParams
    outputs_model: ClassVar[type[Outputs]] = PitrUndoOutputs
    mutating = True
    destructive = True
    default_timeout = 600.0
    enforces_timeout = True

    def _paths(
        self, params: PitrUndoParams, ctx: ActionContext
    ) -> tuple[DatabaseConfig, Path, Path]:
        db = database(ctx, params.database)
        _required(db, params.database)
        assert db.data_directory is not None
        data = _absolute(db.data_directory, ctx)
        aside = Path(params.moved_aside)
        if aside.parent != data.parent or not aside.name.startswith(f"{data.name}.breakglass-"):
            raise ActionError(
                f"moved_aside {aside} is not a directory pg.pitr_restore set aside beside {data}"
            )
        if not _exists(db, aside / "PG_VERSION", ctx, time.monotonic()):
            raise ActionError(
                f"{aside} contains no data directory (PG_VERSION is missing); nothing to put back"
            )
        return db, data, aside

    def plan(self, params: PitrUndoParams, ctx: ActionContext) -> PlanResult:
        db, data, aside = self._paths(params, ctx)
        return PlanResult(
            summary=f"put the pre-recovery data directory of {db.where()} back",
            target=f"database {db.where()}",
            changes=[
                "stop the server",
                f"move {data} aside to {data.name}.breakglass-undone-RUN-TIME beside it",
                f"move {aside} back to {data}",
                "start the server",
            ],
            warnings=["changes made since the recovery are set aside with the recovered cluster"],
            mutating=True,
        )

    def run(self, params: PitrUndoParams, ctx: ActionContext) -> PitrUndoOutputs:
        started = time.monotonic()
        db, data, aside = self._paths(params, ctx)
        if postmaster_running(db, data, ctx, started):
            control_server(db, "stop", ctx, started=started)
        undone = aside_path(data, ctx, "undone")
        ctx.note(f"moving {data} aside to {undone}", {"kept_at": str(undone)})
        _move(db, data, undone, ctx, started)
        _move(db, aside, data, ctx, started)
        ctx.note(f"moved {aside} back to {data}", {})
        control_server(db, "start", ctx, started=started)
        return PitrUndoOutputs(restored_from=str(aside), kept_at=str(undone))
