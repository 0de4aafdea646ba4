"""The sandbox's background process: Kubernetes API emulator, moto and health endpoints.

`breakglass sandbox up` starts it as `python -m breakglass.sandbox.daemon --dir DIR
--pg-port PORT` in its own session. It seeds the cluster with the platform's release
history, writes `DIR/services.json` with its URLs once everything serves, and runs until
SIGTERM or SIGINT. Every server binds to 127.0.0.1.

The health endpoints (`/NAME/healthz`) report the cluster's live state: the release a
Deployment runs once its rollout is complete. The backend is also checked against the
database, whose schema head must be the one the release was built for and whose
`orders` table must be readable.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import botocore.config
import psycopg
from moto.server import ThreadedMotoServer

from breakglass.sandbox import catalog
from breakglass.sandbox.cloudfront import create_distribution
from breakglass.sandbox.kubernetes import SandboxCluster
from breakglass.sandbox.kubernetes.errors import ObjectNotFoundError
from breakglass.sandbox.platform import SERVICES_FILE
from breakglass.sandbox.postgres import connect

logger = logging.getLogger("breakglass.sandbox")

ROLLOUT_SECONDS = 2.0
TICK_SECONDS = 0.2
_DB_TIMEOUT_SECONDS = 2


class SkippableClock:
    """Monotonic time that can jump ahead, so seeding history needs no real waiting."""

    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return time.monotonic() + self._offset

    def skip(self, seconds: float) -> None:
        with self._lock:
            self._offset += seconds


def seed(cluster: SandboxCluster, clock: SkippableClock, pg_port: int) -> None:
    """Create the ConfigMaps and roll each Deployment through its releases, oldest first."""
    for name, data in catalog.CONFIGMAPS.items():
        cluster.apply(catalog.configmap(name, data))
    for app in catalog.APPLICATIONS:
        for release in app.releases:
            cluster.apply(catalog.deployment(app, release, pg_port))
            clock.skip(ROLLOUT_SECONDS * 2)
            cluster.settle()


class HealthState:
    """Health responses, computed from the cluster and the database on each request."""

    def __init__(self, cluster: SandboxCluster, pg_port: int) -> None:
        self.cluster = cluster
        self.pg_port = pg_port

    def check(self, name: str) -> tuple[int, dict[str, Any]]:
        try:
            deployment = self.cluster.get("apps/v1", "Deployment", catalog.NAMESPACE, name)
        except ObjectNotFoundError:
            return 404, {"status": "unknown", "error": f"no Deployment {name}"}
        release = catalog.release_of(deployment)
        spec, status = deployment["spec"], deployment.get("status") or {}
        wanted = int(spec.get("replicas", 1))
        available = int(status.get("availableReplicas") or 0)
        updated = int(status.get("updatedReplicas") or 0)
        if wanted == 0 or available < wanted or updated < wanted:
            return 503, {
                "status": "unavailable",
                "version": release,
                "error": f"{available} of {wanted} replicas of {release} available",
            }
        if catalog.BROKEN_RELEASES.get(name) == release:
            return 503, {
                "status": "degraded",
                "version": release,
                "error_rate": 0.41,
                "error": "checkout returns 500 for 41% of requests",
            }
        if name != "backend":
            return 200, {"status": "ok", "version": release}
        return self._backend(release)

    def _backend(self, release: str) -> tuple[int, dict[str, Any]]:
        try:
            with connect(self.pg_port, catalog.DATABASE, timeout=_DB_TIMEOUT_SECONDS) as db:
                row = db.execute("SELECT version_num FROM alembic_version").fetchone()
                schema = str(row[0]) if row else "none"
                counted = db.execute("SELECT count(*) FROM orders").fetchone()
                orders = int(counted[0]) if counted else 0
        except psycopg.Error as e:
            message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            return 503, {"status": "error", "version": release, "error": message}
        expected = catalog.BACKEND_SCHEMA.get(release)
        if schema != expected:
            return 503, {
                "status": "error",
                "version": release,
                "schema": schema,
                "error": f"release {release} runs with schema {expected}, the database is at {schema}",
            }
        return 200, {"status": "ok", "version": release, "schema": schema, "orders": orders}


def health_server(state: HealthState, chat_log: Path) -> ThreadingHTTPServer:
    """Serve /NAME/healthz, and /hooks/NAME, which appends each posted JSON to `chat_log`."""
    chat_lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            if not self.path.startswith("/hooks/"):
                self._reply(404, {"error": "not found; post to /hooks/NAME"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(min(length, 1_000_000))
            try:
                message = json.loads(body or b"{}")
            except ValueError:
                self._reply(400, {"error": "the body is not JSON"})
                return
            line = json.dumps({"hook": self.path.removeprefix("/hooks/"), "message": message})
            with chat_lock, chat_log.open("a", encoding="utf-8") as log:
                log.write(line + "\n")
            self._reply(202, {"accepted": True})

        def do_GET(self) -> None:
            parts = self.path.strip("/").split("/")
            if len(parts) != 2 or parts[1] != "healthz":
                self._reply(404, {"error": "not found; try /NAME/healthz"})
                return
            self._reply(*state.check(parts[0]))

        def _reply(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="sandbox-health", daemon=True).start()
    return server


def cloudfront_distribution(moto_url: str) -> str:
    client = boto3.client(
        "cloudfront",
        endpoint_url=moto_url,
        region_name="us-east-1",
        aws_access_key_id="sandbox",
        aws_secret_access_key="sandbox",  # noqa: S106 - moto on 127.0.0.1 takes any key
        config=botocore.config.Config(connect_timeout=5, read_timeout=10),
    )
    return create_distribution(client, "frontend")


def serve(directory: Path, pg_port: int, stop: threading.Event) -> None:
    clock = SkippableClock()
    cluster = SandboxCluster(
        clock=clock,
        rollout_seconds=ROLLOUT_SECONDS,
        tick_interval=TICK_SECONDS,
        instant_jobs=False,
        job_timeout=600,
        workdir=directory / "jobs",
    )
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    health: ThreadingHTTPServer | None = None
    cluster.start()
    try:
        seed(cluster, clock, pg_port)
        moto.start()
        host, port = moto.get_host_and_port()
        moto_url = f"http://{host}:{port}"
        distribution = cloudfront_distribution(moto_url)
        health = health_server(HealthState(cluster, pg_port), directory / "chat.jsonl")
        health_host, health_port = health.server_address[:2]
        cluster.write_kubeconfig(directory / "kubeconfig", namespace=catalog.NAMESPACE)
        services = {
            "pid": os.getpid(),
            "kubernetes": cluster.url,
            "moto": moto_url,
            "health": f"http://{health_host!s}:{health_port}",
            "distributions": {"frontend": distribution},
        }
        partial = directory / (SERVICES_FILE + ".tmp")
        partial.write_text(json.dumps(services, indent=2), encoding="utf-8")
        partial.replace(directory / SERVICES_FILE)
        logger.info("sandbox services ready: %s", services)
        stop.wait()
    finally:
        if health is not None:
            health.shutdown()
            health.server_close()
        moto.stop()
        cluster.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m breakglass.sandbox.daemon")
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--pg-port", type=int, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        logger.info("signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        serve(args.dir, args.pg_port, stop)
    except Exception:
        logger.exception("the sandbox services failed")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
