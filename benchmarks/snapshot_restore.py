"""Rolling 50 Deployments back to a snapshot: default concurrency against one at a time.

The sandbox API server runs on 127.0.0.1 with a real clock, a background reconcile every
0.1 s, and pods that take 1 s to become Ready. Each Deployment's rollout then takes about a
second of wall time, where a small real rollout would take tens of seconds. Fifty Deployments
are created at version 1, snapshotted, moved to version 2, and `k8s.restore_snapshot`
returns them to the snapshot, first with the default concurrency (4), then with 1, moving
them to version 2 again in between. The figure is the ratio of the two wall times.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import BenchmarkResult, Figure
from breakglass.actions import registry
from breakglass.actions.base import ActionContext
from breakglass.actions.kubernetes.snapshots import take_snapshot
from breakglass.config.loading import LoadedConfig
from breakglass.config.model import PlatformConfig
from breakglass.sandbox.kubernetes import SandboxCluster
from breakglass.store import snapshots as snapshot_repo
from breakglass.store.db import open_store

NAME = "snapshot_restore"
SUMMARY = "k8s.restore_snapshot of 50 Deployments: one at a time / default concurrency"

COUNT = 50
NAMESPACE = "bench"
ROLLOUT_SECONDS = 1.0


def manifest(index: int, version: str) -> dict[str, Any]:
    name = f"service-{index:02d}"
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"app": name}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [{"name": "app", "image": f"registry.local/{name}:{version}"}]
                },
            },
        },
    }


def deploy_all(cluster: SandboxCluster, version: str) -> None:
    for index in range(COUNT):
        cluster.apply(manifest(index, version))
    cluster.settle(timeout=120)


def run() -> BenchmarkResult:
    result = BenchmarkResult(NAME, SUMMARY)
    with tempfile.TemporaryDirectory(prefix="breakglass-bench-") as scratch:
        root = Path(scratch)
        with SandboxCluster(
            rollout_seconds=ROLLOUT_SECONDS, tick_interval=0.1, workdir=root / "jobs"
        ) as cluster:
            kubeconfig = cluster.write_kubeconfig(root / "kubeconfig", namespace=NAMESPACE)
            model = PlatformConfig.model_validate(
                {
                    "state_dir": str(root / "state"),
                    "kubernetes": {
                        "kubeconfig": str(kubeconfig),
                        "context": "sandbox",
                        "namespace": NAMESPACE,
                    },
                }
            )
            store = open_store(f"sqlite:///{root / 'state.db'}")
            ctx = ActionContext(
                config=LoadedConfig(model, root / "breakglass.yaml", "bench"),
                timeout=900,
                store=store,
            )
            deploy_all(cluster, "1")
            data = take_snapshot(ctx)
            with store.write() as connection:
                snapshot_repo.save_snapshot(
                    connection,
                    name="good",
                    data=data,
                    note=None,
                    actor="bench",
                    now=ctx.clock.now(),
                )
            action = registry.get_action("k8s.restore_snapshot")
            timings: dict[int, float] = {}
            for concurrency in (4, 1):
                deploy_all(cluster, "2")
                params = action.parse(
                    {"snapshot": "good", "concurrency": concurrency, "interval": "200ms"}
                )
                started = time.perf_counter()
                restored = action.run(params, ctx)
                timings[concurrency] = time.perf_counter() - started
                if len(restored.changed) != COUNT:
                    raise RuntimeError(f"restored {len(restored.changed)} of {COUNT} Deployments")
    result.figures = [
        Figure.single("concurrency 4 (default)", "s", round(timings[4], 2)),
        Figure.single("one at a time", "s", round(timings[1], 2)),
        Figure.single(
            "speed-up", "x", round(timings[1] / timings[4], 2), "one at a time / default"
        ),
    ]
    result.notes.append(
        f"{COUNT} Deployments, pods Ready after {ROLLOUT_SECONDS:g} s on the sandbox's real clock; one run each"
    )
    return result
