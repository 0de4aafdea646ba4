"""The k8s.* actions against the sandbox API server over HTTP, through a real kubeconfig.

The sandbox plays the Deployment controller and the kubelet (the emulator runs neither),
so ReplicaSets, revisions, rollout status and Job processes behave as a cluster's would.
Its clock is the test's ManualClock, so waits cover minutes in milliseconds.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from breakglass.actions import registry
from breakglass.actions.base import ActionContext, ActionError
from breakglass.config.loading import LoadedConfig
from breakglass.config.model import PlatformConfig
from breakglass.sandbox.kubernetes import NEVER_READY, SandboxCluster
from tests.fakeclock import ManualClock

NAMESPACE = "shop"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def cluster(clock: ManualClock, tmp_path: Path) -> Iterator[SandboxCluster]:
    with SandboxCluster(
        clock=clock.monotonic, rollout_seconds=20.0, workdir=tmp_path / "jobs"
    ) as running:
        yield running


def context(
    cluster: SandboxCluster, clock: ManualClock, tmp_path: Path, **settings: Any
) -> ActionContext:
    kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig", namespace=NAMESPACE)
    raw = {
        "state_dir": str(tmp_path / "state"),
        "kubernetes": {
            "kubeconfig": str(kubeconfig),
            "context": "sandbox",
            "server": cluster.url,
            "namespace": NAMESPACE,
            "request_timeout": "5s",
            **settings,
        },
    }
    model = PlatformConfig.model_validate(raw)
    return ActionContext(
        config=LoadedConfig(model, tmp_path / "breakglass.yaml", "digest"),
        run_id="RUN-20261204-001",
        step_id="step",
        timeout=600,
        clock=clock,
        work_dir=tmp_path / "state",
    )


def container(name: str, image: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": image, **extra}


def deployment(
    name: str,
    containers: list[dict[str, Any]],
    *,
    replicas: int = 3,
    cause: str | None = None,
    **annotations: str,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": NAMESPACE, "labels": {"app": name}}
    if cause:
        metadata["annotations"] = {"kubernetes.io/change-cause": cause}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata,
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}, "annotations": dict(annotations)},
                "spec": {"containers": containers},
            },
        },
    }


def release(cluster: SandboxCluster, manifest: dict[str, Any]) -> None:
    cluster.apply(manifest)
    cluster.settle()


def live(cluster: SandboxCluster, name: str) -> dict[str, Any]:
    return cluster.get("apps/v1", "Deployment", NAMESPACE, name)


def act(name: str, raw: dict[str, Any], ctx: ActionContext, *, plan_only: bool = False) -> Any:
    action = registry.get_action(name)
    params = action.parse(raw)
    return action.plan(params, ctx) if plan_only else action.run(params, ctx)


def history(
    cluster: SandboxCluster, clock: ManualClock, *versions: tuple[str, list[dict[str, Any]]]
) -> None:
    for cause, containers in versions:
        release(cluster, deployment("web", containers, cause=cause))
        clock.advance(60)
        cluster.settle()


def test_default_target_skips_revisions_equal_to_current(
    cluster: SandboxCluster, clock: ManualClock, tmp_path: Path
) -> None:
    good = [container("web", "web:1.4.2")]
    bad = [container("web", "web:1.5.0"), container("debug", "busybox:1")]
    # Revision 3 re-applies revision 2's template with another cause, so the newest earlier
    # revision with a different template is 1, not the current one.
    history(cluster, clock, ("deploy 1.4.2", good), ("deploy 1.5.0", bad))
    release(cluster, deployment("web", copy.deepcopy(bad), cause="restart 1.5.0"))
    release(
        cluster,
        deployment(
            "web", [container("web", "web:1.5.0"), container("debug", "busybox:1")], replicas=3
        ),
    )
    ctx = context(cluster, clock, tmp_path)
    planned = act("k8s.rollout_undo", {"deployment": "web"}, ctx, plan_only=True)
    assert (
        planned.target
        == f"Deployment web (context sandbox, API server {cluster.url}, namespace {NAMESPACE})"
    )
    assert "current: revision 2, images web:1.5.0, busybox:1" in planned.changes[0]
    assert "target:  revision 1, images web:1.4.2, deploy 1.4.2" in planned.changes[1]

    done = act("k8s.rollout_undo", {"deployment": "web"}, ctx)
    assert done.changed
    assert done.to_revision == 1
    template = live(cluster, "web")["spec"]["template"]
    # Replaced as a whole: the debug container of the bad release is gone.
    assert [c["name"] for c in template["spec"]["containers"]] == ["web"]
    assert template["spec"]["containers"][0]["image"] == "web:1.4.2"
    waited = act("k8s.rollout_wait", {"deployment": "web", "interval": "5s"}, ctx)
    assert waited.replicas == 3
    assert waited.revision == 3


def test_to_revision_equal_to_current_is_reported(
    cluster: SandboxCluster, clock: ManualClock, tmp_path: Path
) -> None:
    history(
        cluster, clock, ("one", [container("web", "web:1")]), ("two", [container("web", "web:2")])
    )
    ctx = context(cluster, clock, tmp_path)
    planned = act("k8s.rollout_undo", {"deployment": "web", "to_revision": 2}, ctx, plan_only=True)
    assert "nothing to do" in planned.summary
    assert not planned.mutating
    before = live(cluster, "web")["metadata"]["resourceVersion"]
    assert not act("k8s.rollout_undo", {"deployment": "web", "to_revision": 2}, ctx).changed
    assert live(cluster, "web")["metadata"]["resourceVersion"] == before


def test_unknown_revision_and_single_revision_refused(
    cluster: SandboxCluster, clock: ManualClock, tmp_path: Path
) -> None:
    history(cluster, clock, ("one", [container("web", "web:1")]))
    ctx = context(cluster, clock, tmp_path)
    with pytest.raises(ActionError, match="no earlier revision with a different pod template"):
        act("k8s.rollout_undo", {"deployment": "web"}, ctx, plan_only=True)
    with pytest.raises(ActionError, match="has no revision 7; its revisions are 1"):
        act("k8s.rollout_undo", {"deployment": "web", "to_revision": 7}, ctx, plan_only=True)


def test_gitops_owner_warned(cluster: SandboxCluster, clock: ManualClock, tmp_path: Path) -> None:
    manifests = [deployment("web", [container("web", f"web:{n}")]) for n in (1, 2)]
    for manifest in manifests:
        manifest["metadata"]["annotations"] = {
            "argocd.argoproj.io/tracking-id": "shop:apps/Deployment:shop/web"
        }
        release(cluster, manifest)
    ctx = context(cluster, clock, tmp_path)
    planned = act("k8s.rollout_undo", {"deployment": "web"}, ctx, plan_only=True)
    assert any("managed by Argo CD" in warning for warning in planned.warnings)


def test_stalled_rollout_fails_with_reason(
    cluster: SandboxCluster, clock: ManualClock, tmp_path: Path
) -> None:
    history(cluster, clock, ("one", [container("web", "web:1")]))
    broken = deployment("web", [container("web", "web:2")], **{NEVER_READY: "true"})
    broken["spec"]["progressDeadlineSeconds"] = 120
    release(cluster, broken)
    ctx = context(cluster, clock, tmp_path)
    with pytest.raises(ActionError, match="exceeded its progress deadline"):
        act("k8s.rollout_wait", {"deployment": "web", "interval": "10s"}, ctx)


def test_wait_times_out_naming_what_is_missing(
    cluster: SandboxCluster, clock: ManualClock, tmp_path: Path
) -> None:
    history(cluster, clock, ("one", [container("web", "web:1")]))
    release(cluster, deployment("web", [container("web", "web:2")], **{NEVER_READY: "true"}))
    ctx = context(cluster, clock, tmp_path)
    ctx.timeout = 30
    with pytest.raises(ActionError, match=r"did not complete in 30 s: .*old replica"):
        act("k8s.rollout_wait", {"deployment": "web", "interval": "5s"}, ctx)


def test_scale_records_previous_and_restore_returns_it(
    cluster: SandboxCluster, clock: ManualClock, tmp_path: Path
) -> None:
    release(cluster, deployment("api", [container("api", "api:1")], replicas=7))
    ctx = context(cluster, clock, tmp_path)
    scaled = act("k8s.scale", {"deployment": "api", "replicas": 0}, ctx)
    assert scaled.previous == 7
    # A retry after a crash finds the count already at 0 and still reports 7.
    assert act("k8s.scale", {"deployment": "api", "replicas": 0}, ctx).previous == 7
    act("k8s.scale_restore", {"deployment": "api", "replicas": scaled.previous}, ctx)
    restored = live(cluster, "api")
    assert restored["spec"]["replicas"] == 7
    assert "breakglass.dev/replicas-before-scale" not in (
        restored["metadata"].get("annotations") or {}
    )


def test_scale_refuses_to_fight_an_autoscaler(
    cluster: SandboxCluster, clock: ManualClock, tmp_path: Path
) -> None:
    release(cluster, deployment("api", [container("api", "api:1")], replicas=4))
    cluster.apply(
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "api", "namespace": NAMESPACE},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "api"},
                "minReplicas": 2,
                "maxReplicas": 10,
            },
        }
    )
    ctx = context(cluster, clock, tmp_path)
    with pytest.raises(ActionError, match="HorizontalPodAutoscaler api manages api"):
        act("k8s.scale", {"deployment": "api", "replicas": 6}, ctx)
    assert act("k8s.scale", {"deployment": "api", "replicas": 0}, ctx).autoscaler == "api"
    bounds = act(
        "k8s.hpa_set_bounds", {"autoscaler": "api", "min_replicas": 3, "max_replicas": 5}, ctx
    )
    assert (bounds.previous_min, bounds.previous_max) == (2, 10)
    with pytest.raises(ActionError, match="min_replicas 6 is above max_replicas 5"):
        act("k8s.hpa_set_bounds", {"autoscaler": "api", "min_replicas": 6, "max_replicas": 5}, ctx)


def test_configmap_patch_records_previous_values(
    cluster: SandboxCluster, clock: ManualClock, tmp_path: Path
) -> None:
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "app-config", "namespace": NAMESPACE},
            "data": {"MAINTENANCE_MODE": "false", "CDN_NOTICE": "none"},
        }
    )
    ctx = context(cluster, clock, tmp_path)
    patched = act(
        "k8s.patch_configmap",
        {
            "configmap": "app-config",
            "data": {"MAINTENANCE_MODE": "true", "EMERGENCY_MESSAGE": "Back soon"},
        },
        ctx,
    )
    assert patched.previous == {"MAINTENANCE_MODE": "false", "EMERGENCY_MESSAGE": None}
    # Retried after a crash, the patch is already applied and still reports the old values.
    again = act(
        "k8s.patch_configmap",
        {
            "configmap": "app-config",
            "data": {"MAINTENANCE_MODE": "true", "EMERGENCY_MESSAGE": "Back soon"},
        },
        ctx,
    )
    assert again.previous == patched.previous
    act("k8s.patch_configmap", {"configmap": "app-config", "data": patched.previous}, ctx)
    data = cluster.get("v1", "ConfigMap", NAMESPACE, "app-config")["data"]
    assert data == {"MAINTENANCE_MODE": "false", "CDN_NOTICE": "none"}


def test_restart_sets_the_annotation(
    cluster: SandboxCluster, clock: ManualClock, tmp_path: Path
) -> None:
    release(cluster, deployment("api", [container("api", "api:1")]))
    ctx = context(cluster, clock, tmp_path)
    done = act("k8s.restart", {"deployment": "api"}, ctx)
    annotations = live(cluster, "api")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["kubectl.kubernetes.io/restartedAt"] == done.restarted_at


def test_run_job_uses_the_deployment_image_and_env(
    cluster: SandboxCluster, clock: ManualClock, tmp_path: Path
) -> None:
    release(
        cluster,
        deployment(
            "backend",
            [container("api", "backend:2.4.0", env=[{"name": "RELEASE", "value": "2.4.0"}])],
        ),
    )
    ctx = context(cluster, clock, tmp_path)
    script = (
        "import os; print('migration version 0007 on', os.environ['RELEASE'], os.environ['MODE'])"
    )
    done = act(
        "k8s.run_job",
        {"deployment": "backend", "argv": ["python3", "-c", script], "env": {"MODE": "job"}},
        ctx,
    )
    assert done.exit_code == 0
    assert "migration version 0007 on 2.4.0 job" in done.logs
    job = cluster.get("batch/v1", "Job", NAMESPACE, done.job)
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == "backend:2.4.0"


def test_failed_job_shows_its_log(
    cluster: SandboxCluster, clock: ManualClock, tmp_path: Path
) -> None:
    release(cluster, deployment("backend", [container("api", "backend:2.4.0")]))
    ctx = context(cluster, clock, tmp_path)
    script = "import sys; print('relation users does not exist'); sys.exit(3)"
    with pytest.raises(ActionError, match=r"failed \(exit 3\):\nrelation users does not exist"):
        act(
            "k8s.run_job",
            {"deployment": "backend", "argv": ["python3", "-c", script], "name": "fails"},
            ctx,
        )


def test_captured_logs_match_their_digests(
    cluster: SandboxCluster, clock: ManualClock, tmp_path: Path
) -> None:
    from breakglass.sandbox.kubernetes import RESTARTS

    release(
        cluster,
        deployment("worker", [container("worker", "worker:1")], replicas=2, **{RESTARTS: "1"}),
    )
    ctx = context(cluster, clock, tmp_path)
    captured = act("k8s.capture_logs", {"selector": "app=worker"}, ctx)
    assert len(captured.files) == 4  # two pods, each with current and previous logs
    manifest = json.loads(Path(captured.manifest).read_text())
    for item in captured.files:
        body = Path(item.path).read_bytes()
        assert hashlib.sha256(body).hexdigest() == item.sha256
        assert item.sha256 in {entry["sha256"] for entry in manifest["files"]}
    assert any(item.previous for item in captured.files)


def test_wrong_server_refused(cluster: SandboxCluster, clock: ManualClock, tmp_path: Path) -> None:
    ctx = context(cluster, clock, tmp_path, server="https://api.prod.example:6443")
    with pytest.raises(ActionError, match=r"points at http://127\.0\.0\.1"):
        act("k8s.restart", {"deployment": "api"}, ctx, plan_only=True)


def test_missing_deployment_named(
    cluster: SandboxCluster, clock: ManualClock, tmp_path: Path
) -> None:
    ctx = context(cluster, clock, tmp_path)
    with pytest.raises(
        ActionError, match=r"cannot read Deployment nope \(context sandbox.*\): 404"
    ):
        act("k8s.rollout_undo", {"deployment": "nope"}, ctx, plan_only=True)


def test_unreachable_server_is_temporary(clock: ManualClock, tmp_path: Path) -> None:
    with SandboxCluster(clock=clock.monotonic) as stopped:
        ctx = context(stopped, clock, tmp_path)
    with pytest.raises(ActionError) as raised:
        act("k8s.restart", {"deployment": "api"}, ctx, plan_only=True)
    assert raised.value.unreachable
    assert raised.value.temporary
