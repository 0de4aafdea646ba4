"""The restore drill on a real cluster: a scratch copy that leaves the live one untouched."""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from pathlib import Path

import pytest

from breakglass.actions import registry
from breakglass.actions.base import ActionError
from tests.actions.test_postgres_pitr import OWNER, backup, cluster, make_ctx, sql
from tests.postgres import PostgresServer

__all__ = ["cluster"]


def scratch_under(server: PostgresServer) -> Path:
    """A directory the cluster's owner can write, since the drill's cluster runs as that user."""
    parent = server.base / "scratch"
    parent.mkdir()
    if os.geteuid() == 0:
        shutil.chown(parent, OWNER, OWNER)
    return parent


def fingerprint(directory: Path) -> dict[str, str]:
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.iterdir())
        if path.is_file()
    }


def test_drill_leaves_live_cluster_alone(cluster: PostgresServer, tmp_path: Path) -> None:
    checks = [
        {
            "name": "orders present",
            "sql": "SELECT count(*) AS n FROM orders",
            "expect": [{"path": "rows[0].n", "equals": 3}],
        }
    ]
    ctx = make_ctx(cluster, tmp_path, checks=checks)
    sql(cluster, "CREATE TABLE orders (id int)")
    backup(ctx)
    sql(cluster, "INSERT INTO orders VALUES (1), (2), (3)")
    [(segment,)] = sql(cluster, "SELECT pg_walfile_name(pg_switch_wal())")
    deadline = time.monotonic() + 30
    while not (cluster.archive / segment).exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    archive_before = fingerprint(cluster.archive)
    scratch_parent = scratch_under(cluster)

    drill = registry.get_action("pg.restore_drill")
    params = drill.parse({"database": "app", "scratch_parent": str(scratch_parent)})
    planned = drill.plan(params, ctx)
    assert "never the live one" in "\n".join(planned.changes)
    result = drill.run(params, ctx)

    assert result.checks_passed == ["orders present"]
    assert result.scratch_port != cluster.port
    assert result.rto_seconds > 0
    assert result.rpo_seconds >= 0
    assert result.last_transaction is not None
    assert fingerprint(cluster.archive) == archive_before
    assert list(scratch_parent.iterdir()) == []
    assert sql(cluster, "SELECT count(*) FROM orders") == [(3,)]
    assert sql(cluster, "SELECT pg_is_in_recovery()") == [(False,)]


def test_drill_fails_on_a_failing_check(cluster: PostgresServer, tmp_path: Path) -> None:
    checks = [{"name": "ledger exists", "sql": "SELECT 1 FROM ledger", "expect_rows": 1}]
    ctx = make_ctx(cluster, tmp_path, checks=checks)
    backup(ctx)
    drill = registry.get_action("pg.restore_drill")
    scratch_parent = scratch_under(cluster)
    params = drill.parse({"database": "app", "scratch_parent": str(scratch_parent)})
    with pytest.raises(ActionError, match=r"failed 1 check\(s\): ledger exists: .*ledger"):
        drill.run(params, ctx)
    assert list(scratch_parent.iterdir()) == []


def test_drill_needs_a_backup(cluster: PostgresServer, tmp_path: Path) -> None:
    ctx = make_ctx(cluster, tmp_path)
    drill = registry.get_action("pg.restore_drill")
    with pytest.raises(ActionError, match=r"no verified base backup .* `breakglass db backup`"):
        drill.plan(drill.parse({"database": "app"}), ctx)
