"""Point-in-time recovery against real PostgreSQL clusters that archive their WAL.

Each test that restores gets a cluster of its own, because a restore replaces it. The
refusal tests share one cluster and check that it is untouched afterwards.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from breakglass.actions import registry
from breakglass.actions.base import ActionContext, ActionError
from breakglass.config.loading import LoadedConfig
from breakglass.config.model import PlatformConfig
from tests.postgres import PostgresServer, find_bindir, free_port, start_server

pytestmark = pytest.mark.skipif(
    find_bindir() is None and not os.environ.get("CI"),
    reason="PostgreSQL server binaries not found",
)

OWNER = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name


@pytest.fixture
def cluster() -> Iterator[PostgresServer]:
    yield from start_server(archive=True)


def make_ctx(
    server: PostgresServer,
    tmp_path: Path,
    notes: list[str] | None = None,
    **overrides: Any,
) -> ActionContext:
    settings: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": server.port,
        "dbname": "postgres",
        "user": "postgres",
        "os_user": OWNER if os.geteuid() == 0 else None,
        "data_directory": str(server.data),
        "server_control": {"kind": "pg_ctl", "timeout": "60s"},
        "backup_dir": str(server.base / "backups"),
        "wal_archive_dir": str(server.archive),
        "restore_free_space_reserve": "1MiB",
    }
    state_url = overrides.pop("state_url", None)
    settings |= overrides
    raw: dict[str, Any] = {"state_dir": str(tmp_path / "state"), "databases": {"app": settings}}
    if state_url:
        raw["state_url"] = state_url
    model = PlatformConfig.model_validate(raw)
    recorded = notes if notes is not None else []
    return ActionContext(
        config=LoadedConfig(model, tmp_path / "breakglass.yaml", "digest"),
        run_id="RUN-TEST-001",
        timeout=300,
        note=lambda message, data: recorded.append(message),
    )


def sql(server: PostgresServer, statement: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(
        host="127.0.0.1",
        port=server.port,
        user="postgres",
        dbname="postgres",
        autocommit=True,
        connect_timeout=5,
    ) as connection:
        cursor = connection.execute(statement)
        return cursor.fetchall() if cursor.description else []


def accepts(server: PostgresServer) -> bool:
    try:
        sql(server, "SELECT 1")
    except psycopg.OperationalError:
        return False
    return True


def backup(ctx: ActionContext) -> Any:
    action = registry.get_action("pg.base_backup")
    return action.run(action.parse({"database": "app"}), ctx)


def pitr_plan(ctx: ActionContext, target: str) -> Any:
    action = registry.get_action("pg.pitr_restore")
    return action.plan(action.parse({"database": "app", "target_time": target}), ctx)


def pitr_run(ctx: ActionContext, target: str) -> Any:
    action = registry.get_action("pg.pitr_restore")
    return action.run(action.parse({"database": "app", "target_time": target}), ctx)


def moment() -> str:
    """Return now as an ISO time with zone, between two one-second pauses."""
    time.sleep(1.0)
    now = datetime.now(UTC).isoformat()
    time.sleep(1.0)
    return now


def stop(ctx: ActionContext) -> None:
    action = registry.get_action("pg.server_stop")
    action.run(action.parse({"database": "app"}), ctx)


def crash(server: PostgresServer) -> None:
    """Stop the server the way a crash does: no shutdown checkpoint and no last WAL switch."""
    pg_ctl = str(find_bindir() / "pg_ctl") if find_bindir() else "pg_ctl"
    argv = [pg_ctl, "-D", str(server.data), "-m", "immediate", "-w", "stop"]
    if os.geteuid() == 0:
        argv = ["runuser", "-u", OWNER, "--", *argv]
    subprocess.run(argv, check=True, capture_output=True, timeout=60)


def owned_by_owner(directory: Path) -> list[str]:
    """Return the files under `directory` that do not belong to the cluster's owner."""
    uid = pwd.getpwnam(OWNER).pw_uid
    strangers = []
    for root, dirs, files in os.walk(directory):
        for name in [*dirs, *files]:
            path = Path(root) / name
            if path.lstat().st_uid != uid:
                strangers.append(str(path))
    return strangers


def test_dropped_table_recovered_on_a_new_timeline(cluster: PostgresServer, tmp_path: Path) -> None:
    notes: list[str] = []
    ctx = make_ctx(cluster, tmp_path, notes)
    sql(cluster, "CREATE TABLE orders (id int PRIMARY KEY)")
    sql(cluster, "INSERT INTO orders SELECT generate_series(1, 100)")
    made = backup(ctx)
    # Written after the backup, in a segment the archive does not hold yet: only the
    # run's WAL switch brings it there.
    sql(cluster, "INSERT INTO orders VALUES (101)")
    target = moment()
    sql(cluster, "DROP TABLE orders")

    planned = pitr_plan(ctx, target)
    text = "\n".join([*planned.changes, *planned.details])
    assert planned.target == f"database 127.0.0.1:{cluster.port}/postgres"
    assert f"base backup: {Path(made.path).name}" in text
    assert "WAL switch sends to the archive" in text
    assert "recovery_target_action = 'promote'" in text
    assert "estimated duration: about" in text
    assert list(cluster.base.glob("data.breakglass-*")) == []

    restored = pitr_run(ctx, target)
    assert sql(cluster, "SELECT count(*) FROM orders") == [(101,)]
    assert restored.timeline == 2
    assert restored.target_time == datetime.fromisoformat(target).isoformat()
    assert restored.last_replay_time is not None
    assert datetime.fromisoformat(restored.last_replay_time) <= datetime.fromisoformat(target)
    aside = Path(restored.moved_aside)
    assert (aside / "PG_VERSION").is_file()
    assert not (cluster.data / "recovery.conf").exists()
    assert not (aside / "recovery.conf").exists()
    auto_conf = (cluster.data / "postgresql.auto.conf").read_text()
    assert "recovery_target_action = 'promote'" in auto_conf
    assert "recovery_target_timeline = '1'" in auto_conf
    assert owned_by_owner(cluster.data) == []
    assert (cluster.data.stat().st_mode & 0o777) == 0o700
    assert any("moved" in note and "aside" in note for note in notes)
    assert any("promoted on timeline 2" in note for note in notes)

    # The undo puts the pre-recovery cluster back, the dropped table with it.
    undo = registry.get_action("pg.pitr_undo")
    undone = undo.run(undo.parse({"database": "app", "moved_aside": restored.moved_aside}), ctx)
    assert sql(cluster, "SELECT to_regclass('orders') IS NULL") == [(True,)]
    assert (Path(undone.kept_at) / "PG_VERSION").is_file()


def test_down_server_pg_wal_supplies_target(cluster: PostgresServer, tmp_path: Path) -> None:
    ctx = make_ctx(cluster, tmp_path)
    sql(cluster, "CREATE TABLE notes (id int)")
    backup(ctx)
    sql(cluster, "INSERT INTO notes VALUES (1), (2)")
    target = moment()
    sql(cluster, "DELETE FROM notes")
    # A crashed server never archived its last segment; only its pg_wal contains the target.
    crash(cluster)

    planned = pitr_plan(ctx, target)
    assert any("then the moved-aside pg_wal" in line for line in planned.details)
    assert "the server is already down" in planned.changes
    assert any("control file says 'in production'" in line for line in planned.warnings)

    restored = pitr_run(ctx, target)
    assert sql(cluster, "SELECT count(*) FROM notes") == [(2,)]
    assert restored.timeline == 2
    assert "moved-aside pg_wal" in restored.wal_source


def test_unreachable_target_puts_the_original_back(cluster: PostgresServer, tmp_path: Path) -> None:
    ctx = make_ctx(cluster, tmp_path)
    sql(cluster, "CREATE TABLE keep (id int)")
    backup(ctx)
    sql(cluster, "INSERT INTO keep VALUES (7)")
    stop(ctx)
    # No transaction commits after this instant, so replay ends before reaching it.
    target = moment()

    with pytest.raises(ActionError) as failed:
        pitr_run(ctx, target)
    message = failed.value.message
    assert "recovery ended before configured recovery target was reached" in message
    assert f"The original data directory is back at {cluster.data}" in message
    assert sql(cluster, "SELECT id FROM keep") == [(7,)]
    assert len(list(cluster.base.glob("data.breakglass-failed-*"))) == 1
    assert list(cluster.base.glob("data.breakglass-aside-*")) == []


@pytest.fixture(scope="module")
def shared() -> Iterator[PostgresServer]:
    """One cluster with a backup and several archived segments, for the refusals."""
    if find_bindir() is None:
        pytest.skip("PostgreSQL server binaries not found")
    yield from start_server(archive=True)


@pytest.fixture(scope="module")
def prepared(shared: PostgresServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    ctx = make_ctx(shared, tmp_path_factory.mktemp("prepared"))
    sql(shared, "CREATE TABLE t (id int)")
    first = backup(ctx)
    between = moment()
    second = backup(ctx)
    for round_number in range(3):
        sql(shared, f"INSERT INTO t VALUES ({round_number})")
        [(segment,)] = sql(shared, "SELECT pg_walfile_name(pg_switch_wal())")
        deadline = time.monotonic() + 30
        while not (shared.archive / segment).exists() and time.monotonic() < deadline:
            time.sleep(0.1)
    return {"first": first, "second": second, "between": between, "after": moment()}


def untouched(server: PostgresServer) -> None:
    assert accepts(server)
    assert (server.data / "PG_VERSION").is_file()
    assert list(server.base.glob("data.breakglass-*")) == []


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("2026-12-04T10:30:00", "has no time zone, so it is ambiguous"),
        ("2026-13-04T10:30:00Z", "invalid time"),
        ((datetime.now(UTC) + timedelta(hours=1)).isoformat(), "is in the future"),
        ("2001-01-01T00:00:00Z", "the earliest recoverable time is"),
    ],
)
def test_bad_targets_refused_before_anything_changes(
    shared: PostgresServer, prepared: dict[str, Any], tmp_path: Path, target: str, message: str
) -> None:
    ctx = make_ctx(shared, tmp_path)
    with pytest.raises(ActionError, match=message):
        pitr_plan(ctx, target)
    with pytest.raises(ActionError, match=message):
        pitr_run(ctx, target)
    untouched(shared)


def test_gap_in_archive_named(
    shared: PostgresServer, prepared: dict[str, Any], tmp_path: Path
) -> None:
    copy = tmp_path / "archive"
    shutil.copytree(shared.archive, copy)
    segments = sorted(path.name for path in copy.iterdir() if len(path.name) == 24)
    hole = segments[-2]
    (copy / hole).unlink()
    ctx = make_ctx(shared, tmp_path, wal_archive_dir=str(copy))
    with pytest.raises(ActionError, match=f"lacks 1 segment.*{hole}"):
        pitr_run(ctx, prepared["after"])
    untouched(shared)


def test_too_little_disk_refused(
    shared: PostgresServer, prepared: dict[str, Any], tmp_path: Path
) -> None:
    ctx = make_ctx(shared, tmp_path, restore_free_space_reserve="1PiB")
    with pytest.raises(ActionError, match=r"not enough disk space .* must stay free"):
        pitr_run(ctx, prepared["after"])
    untouched(shared)


def test_state_store_server_refused(
    shared: PostgresServer, prepared: dict[str, Any], tmp_path: Path
) -> None:
    url = f"postgresql+psycopg://postgres@localhost:{shared.port}/breakglass"
    ctx = make_ctx(shared, tmp_path, state_url=url)
    with pytest.raises(ActionError, match="contains breakglass's own state store"):
        pitr_run(ctx, prepared["after"])
    untouched(shared)


def test_missing_settings_named(shared: PostgresServer, tmp_path: Path) -> None:
    ctx = make_ctx(shared, tmp_path, wal_archive_dir=None, backup_dir=None)
    with pytest.raises(
        ActionError, match=r"configure backup_dir, wal_archive_dir under databases\.app"
    ):
        pitr_plan(ctx, datetime.now(UTC).isoformat())


def test_newest_backup_stopped_before_target_chosen(
    shared: PostgresServer, prepared: dict[str, Any], tmp_path: Path
) -> None:
    ctx = make_ctx(shared, tmp_path)
    first, second = Path(prepared["first"].path).name, Path(prepared["second"].path).name
    # The second backup's window contains its own start time, so the first is chosen.
    during_second = pitr_plan(ctx, prepared["second"].start_time)
    assert any(f"base backup: {first}" in line for line in during_second.changes)
    assert any(
        f"base backup: {first}" in line for line in pitr_plan(ctx, prepared["between"]).changes
    )
    assert any(
        f"base backup: {second}" in line for line in pitr_plan(ctx, prepared["after"]).changes
    )
    untouched(shared)


class Crash(BaseException):
    """Stands for the breakglass process dying at a journaled milestone."""


def test_retry_after_crash_restores_from_the_first_aside(
    cluster: PostgresServer, tmp_path: Path
) -> None:
    sql(cluster, "CREATE TABLE ledger (id int)")
    sql(cluster, "INSERT INTO ledger VALUES (1)")
    backup(make_ctx(cluster, tmp_path))
    sql(cluster, "INSERT INTO ledger VALUES (2)")
    target = moment()
    sql(cluster, "DELETE FROM ledger")

    def crash_after_move(message: str, data: dict[str, Any]) -> None:
        if message.startswith("moved ") and "aside" in message:
            raise Crash

    crashing = make_ctx(cluster, tmp_path)
    crashing.note = crash_after_move
    with pytest.raises(Crash):
        pitr_run(crashing, target)
    [first_aside] = cluster.base.glob("data.breakglass-aside-*")
    assert not cluster.data.exists()

    notes: list[str] = []
    retry = make_ctx(cluster, tmp_path, notes)
    planned = pitr_plan(retry, target)
    assert any(str(first_aside) in warning for warning in planned.warnings)
    restored = pitr_run(retry, target)
    assert restored.moved_aside == str(first_aside)
    assert sql(cluster, "SELECT id FROM ledger ORDER BY id") == [(1,), (2,)]
    assert list(cluster.base.glob("data.breakglass-aside-*")) == [first_aside]


def test_replicas_named_in_the_plan(
    shared: PostgresServer, prepared: dict[str, Any], tmp_path: Path
) -> None:
    bindir = find_bindir()
    assert bindir is not None
    standby = shared.base / "standby"
    port = free_port()

    def as_owner(argv: list[str]) -> list[str]:
        return ["runuser", "-u", OWNER, "--", *argv] if os.geteuid() == 0 else argv

    subprocess.run(
        as_owner(
            [
                str(bindir / "pg_basebackup"),
                "-h",
                "127.0.0.1",
                "-p",
                str(shared.port),
                "-U",
                "postgres",
                "-D",
                str(standby),
                "-R",
                "--checkpoint=fast",
                "--wal-method=stream",
            ]
        ),
        check=True,
        capture_output=True,
        timeout=120,
    )
    with (standby / "postgresql.auto.conf").open("a") as conf:
        conf.write(f"port = {port}\narchive_mode = off\ncluster_name = 'reporting'\n")
    pg_ctl = str(bindir / "pg_ctl")
    subprocess.run(
        as_owner(
            [pg_ctl, "-D", str(standby), "-l", str(shared.base / "standby.log"), "-w", "start"]
        ),
        check=True,
        capture_output=True,
        timeout=120,
    )
    try:
        deadline = time.monotonic() + 30
        while not sql(shared, "SELECT 1 FROM pg_stat_replication") and time.monotonic() < deadline:
            time.sleep(0.2)
        planned = pitr_plan(make_ctx(shared, tmp_path), prepared["after"])
        [warning] = [line for line in planned.warnings if "replicas will diverge" in line]
        assert "reporting from 127.0.0.1" in warning
    finally:
        subprocess.run(
            as_owner([pg_ctl, "-D", str(standby), "-m", "immediate", "-w", "stop"]),
            capture_output=True,
            timeout=60,
            check=False,
        )
        shutil.rmtree(standby, ignore_errors=True)
    untouched(shared)


def test_plan_fingerprint_stable_while_wal_moves(
    shared: PostgresServer, prepared: dict[str, Any], tmp_path: Path
) -> None:
    ctx = make_ctx(shared, tmp_path)
    first = pitr_plan(ctx, prepared["after"])
    sql(shared, "INSERT INTO t VALUES (99)")
    sql(shared, "SELECT pg_switch_wal()")
    time.sleep(1.1)
    second = pitr_plan(ctx, prepared["after"])
    assert (first.summary, first.target, first.changes) == (
        second.summary,
        second.target,
        second.changes,
    )


def test_state_store_on_a_socket_refused(
    shared: PostgresServer, prepared: dict[str, Any], tmp_path: Path
) -> None:
    url = f"postgresql+psycopg://postgres@/breakglass?host={shared.base}&port={shared.port}"
    ctx = make_ctx(shared, tmp_path, state_url=url)
    with pytest.raises(ActionError, match="contains breakglass's own state store"):
        pitr_plan(ctx, prepared["after"])
