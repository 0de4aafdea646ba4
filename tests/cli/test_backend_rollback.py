"""backend-rollback end to end: the sandbox cluster, a real PostgreSQL database, and migration
commands that run in Jobs from the current release's image.

The sandbox plays the kubelet, so each Job's command runs as a local process with the
Deployment's environment. The migration script keeps a real migration table in the test
database and prints npm-style noise, as the platform's own scripts do.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from breakglass.sandbox.kubernetes import SandboxCluster
from tests.conftest import Cli
from tests.postgres import PostgresServer

NAMESPACE = "shop"
MIGRATIONS = {
    "0001_init": "CREATE TABLE users (id int)",
    "0002_orders": "CREATE TABLE orders (id int)",
    "0003_flags": "CREATE TABLE flags (id int)",
    "0004_audit": "CREATE TABLE audit (id int)",
}

SCRIPT = """
import os, sys
import psycopg

MIGRATIONS = __MIGRATIONS__
ORDER = list(MIGRATIONS)
command = sys.argv[1]
print("\\x1b[36m> backend@1.1.0 migration:%s\\x1b[0m" % command)
print("npm WARN config production Use `--omit=dev` instead.")
with psycopg.connect(autocommit=True) as db:
    applied = [row[0] for row in db.execute("SELECT version FROM schema_migrations ORDER BY version")]
    if command == "current":
        print("Current version: %s" % (applied[-1] if applied else "none"))
    elif command == "history":
        for version in ORDER:
            print("[%s] %s" % ("X" if version in applied else " ", version))
    elif command == "down":
        if os.environ.get("FAIL_DOWN"):
            print("error: cannot revert %s: lock timeout" % applied[-1], file=sys.stderr)
            sys.exit(1)
        last = applied[-1]
        table = MIGRATIONS[last].split()[2]
        db.execute("DROP TABLE %s" % table)
        db.execute("DELETE FROM schema_migrations WHERE version = %s", (last,))
        print("reverted %s" % last)
""".replace("__MIGRATIONS__", repr(MIGRATIONS))


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[SandboxCluster]:
    with SandboxCluster(workdir=tmp_path / "jobs") as running:
        yield running


def connect(server: PostgresServer, dbname: str) -> psycopg.Connection:
    return psycopg.connect(
        host="127.0.0.1", port=server.port, user="postgres", dbname=dbname, autocommit=True
    )


def backend(version: str, env: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "backend",
            "namespace": NAMESPACE,
            "labels": {"app": "backend"},
            "annotations": {"kubernetes.io/change-cause": f"deploy backend {version}"},
        },
        "spec": {
            "replicas": 7,
            "selector": {"matchLabels": {"app": "backend"}},
            "template": {
                "metadata": {"labels": {"app": "backend"}},
                "spec": {
                    "containers": [
                        {"name": "api", "image": f"registry.local/backend:{version}", "env": env}
                    ]
                },
            },
        },
    }


def platform(
    cluster: SandboxCluster,
    server: PostgresServer,
    tmp_path: Path,
    *,
    fail_down: bool = False,
    versions: tuple[str, ...] = ("1.0.0", "1.1.0"),
    snapshot: Cli | None = None,
) -> tuple[str, str]:
    """Set up the database at 0004, two backend releases, an HPA and the config."""
    dbname = server.create_database()
    with connect(server, dbname) as db:
        db.execute("CREATE TABLE schema_migrations (version text PRIMARY KEY)")
        for version, statement in MIGRATIONS.items():
            db.execute(statement)
            db.execute("INSERT INTO schema_migrations VALUES (%s)", (version,))
    env = [
        {"name": "PGHOST", "value": "127.0.0.1"},
        {"name": "PGPORT", "value": str(server.port)},
        {"name": "PGUSER", "value": "postgres"},
        {"name": "PGDATABASE", "value": dbname},
    ]
    if fail_down:
        env.append({"name": "FAIL_DOWN", "value": "1"})
    for number, version in enumerate(versions):
        cluster.apply(backend(version, env))
        cluster.settle()
        if number == 0 and snapshot is not None:
            write_config(cluster, server, dbname, tmp_path)
            assert snapshot("snapshot", "create", "good").code == 0
    cluster.apply(
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "backend", "namespace": NAMESPACE},
            "spec": {
                "scaleTargetRef": {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "name": "backend",
                },
                "minReplicas": 3,
                "maxReplicas": 10,
            },
        }
    )
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "app-config", "namespace": NAMESPACE},
            "data": {"MAINTENANCE_MODE": "false"},
        }
    )
    write_config(cluster, server, dbname, tmp_path)
    return dbname, f"database 127.0.0.1:{server.port}/{dbname}"


def write_config(
    cluster: SandboxCluster, server: PostgresServer, dbname: str, tmp_path: Path
) -> None:
    script = tmp_path / "migrate.py"
    script.write_text(SCRIPT)
    kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig", namespace=NAMESPACE)
    command = [sys.executable, str(script)]
    config = {
        "kubernetes": {
            "kubeconfig": str(kubeconfig),
            "context": "sandbox",
            "server": cluster.url,
            "namespace": NAMESPACE,
        },
        "databases": {
            "app": {
                "host": "127.0.0.1",
                "port": server.port,
                "dbname": dbname,
                "user": "postgres",
                "migrations": {
                    "kind": "command",
                    "current": [*command, "current"],
                    "history": [*command, "history"],
                    "down": [*command, "down"],
                    "version_pattern": r"(?P<version>\d{4}_\w+)",
                    "job": {"deployment": "backend"},
                },
            }
        },
    }
    (tmp_path / "breakglass.yaml").write_text(yaml.safe_dump(config))


def tables(server: PostgresServer, dbname: str) -> list[str]:
    with connect(server, dbname) as db:
        rows = db.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
        ).fetchall()
    return [row[0] for row in rows]


def test_backend_rollback_in_database_safe_order(
    cli: Cli, tmp_path: Path, cluster: SandboxCluster, postgres_server: PostgresServer
) -> None:
    dbname, gate = platform(cluster, postgres_server, tmp_path)
    inputs = ["-i", "database=app", "-i", "migration_version=0002_orders"]
    planned = cli("plan", "backend-rollback", *inputs)
    assert planned.code == 0, planned.output
    assert "downgrade" in planned.stdout

    ran = cli("run", "backend-rollback", *inputs, "--yes", "--yes-destructive", gate, timeout=300)
    assert ran.code == 0, ran.output
    assert tables(postgres_server, dbname) == ["orders", "schema_migrations", "users"]
    deployment = cluster.get("apps/v1", "Deployment", NAMESPACE, "backend")
    assert (
        deployment["spec"]["template"]["spec"]["containers"][0]["image"]
        == "registry.local/backend:1.0.0"
    )
    # Capacity returns to what it was, and the autoscaler is still there to manage it.
    assert deployment["spec"]["replicas"] == 7
    assert cluster.get("autoscaling/v2", "HorizontalPodAutoscaler", NAMESPACE, "backend")
    assert (
        cluster.get("v1", "ConfigMap", NAMESPACE, "app-config")["data"]["MAINTENANCE_MODE"]
        == "false"
    )
    # Every migration command ran in a Job of the release that knows the migrations.
    jobs = cluster.list_objects("batch/v1", "Job", NAMESPACE)
    assert jobs
    assert {job["spec"]["template"]["spec"]["containers"][0]["image"] for job in jobs} == {
        "registry.local/backend:1.1.0"
    }
    assert "backend rolled back and verified; maintenance mode is off" in ran.stdout


def test_failure_midway_leaves_maintenance_on_and_says_so(
    cli: Cli, tmp_path: Path, cluster: SandboxCluster, postgres_server: PostgresServer
) -> None:
    dbname, gate = platform(cluster, postgres_server, tmp_path, fail_down=True)
    inputs = ["-i", "database=app", "-i", "migration_version=0002_orders"]
    ran = cli("run", "backend-rollback", *inputs, "--yes", "--yes-destructive", gate, timeout=300)
    assert ran.code == 1, ran.output
    assert "MAINTENANCE MODE IS STILL ON" in ran.stdout
    assert "lock timeout" in ran.stdout
    assert (
        cluster.get("v1", "ConfigMap", NAMESPACE, "app-config")["data"]["MAINTENANCE_MODE"]
        == "true"
    )
    deployment = cluster.get("apps/v1", "Deployment", NAMESPACE, "backend")
    assert (
        deployment["spec"]["template"]["spec"]["containers"][0]["image"]
        == "registry.local/backend:1.1.0"
    )
    [run] = json.loads(cli("runs", "--output", "json").stdout)
    assert run["state"] == "halted"
    assert "flags" in tables(postgres_server, dbname)


def test_snapshot_sets_both_the_template_and_the_schema(
    cli: Cli, tmp_path: Path, cluster: SandboxCluster, postgres_server: PostgresServer
) -> None:
    _, gate = platform(
        cluster, postgres_server, tmp_path, versions=("1.0.0", "1.1.0", "1.2.0"), snapshot=cli
    )
    inputs = ["-i", "database=app", "-i", "snapshot=good", "-i", "migration_version=0002_orders"]
    ran = cli("run", "backend-rollback", *inputs, "--yes", "--yes-destructive", gate, timeout=300)
    assert ran.code == 0, ran.output
    deployment = cluster.get("apps/v1", "Deployment", NAMESPACE, "backend")
    # The snapshot's release, not the newest earlier revision (1.1.0).
    assert (
        deployment["spec"]["template"]["spec"]["containers"][0]["image"]
        == "registry.local/backend:1.0.0"
    )
    assert (
        deployment["metadata"]["annotations"]["kubernetes.io/change-cause"]
        == "deploy backend 1.0.0"
    )
    assert cli("snapshot", "diff", "good").code == 0
