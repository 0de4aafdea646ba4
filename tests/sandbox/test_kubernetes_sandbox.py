"""The Kubernetes sandbox, driven through the official client over HTTP on 127.0.0.1.

kmock runs no controllers and no pods: the sandbox plays the Deployment, ReplicaSet, Job
and HPA controllers, and plays the kubelet by running each Job's command as a local process
and serving its output as the pod log. The tests that create Jobs or read logs rely on that.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config, watch

from breakglass.sandbox.kubernetes import (
    CHANGE_CAUSE,
    NEVER_READY,
    POD_TEMPLATE_HASH,
    RESTARTS,
    REVISION,
    REVISION_HISTORY,
    ObjectNotFoundError,
    SandboxCluster,
    SandboxError,
)
from tests.fakeclock import ManualClock

NS = "default"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def start_cluster(clock: ManualClock) -> Iterator[Callable[..., SandboxCluster]]:
    """Start sandboxes on the test's fake clock; stop them all at teardown."""
    started: list[SandboxCluster] = []

    def start(**options: Any) -> SandboxCluster:
        options.setdefault("clock", clock.monotonic)
        started.append(SandboxCluster(**options).start())
        return started[-1]

    yield start
    for cluster in reversed(started):
        cluster.stop()


@pytest.fixture
def cluster(start_cluster: Callable[..., SandboxCluster]) -> SandboxCluster:
    return start_cluster()


@pytest.fixture
def api(cluster: SandboxCluster) -> Iterator[client.ApiClient]:
    api_client = cluster.api_client()
    yield api_client
    api_client.close()


@pytest.fixture
def apps(api: client.ApiClient) -> client.AppsV1Api:
    return client.AppsV1Api(api)


@pytest.fixture
def core(api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api)


@pytest.fixture
def batch(api: client.ApiClient) -> client.BatchV1Api:
    return client.BatchV1Api(api)


def deployment(
    name: str = "web",
    image: str = "example/web:1",
    *,
    replicas: int = 2,
    containers: list[dict[str, Any]] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": containers or [{"name": "app", "image": image}]},
            },
            **spec,
        },
    }


def set_image(apps: client.AppsV1Api, image: str, name: str = "web") -> None:
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}}}
    apps.patch_namespaced_deployment(name, NS, patch)


def replica_sets(apps: client.AppsV1Api, name: str = "web") -> list[dict[str, Any]]:
    """Return the Deployment's ReplicaSets as raw JSON, lowest revision first."""
    listed = apps.list_namespaced_replica_set(
        NS, label_selector=f"app={name}", _preload_content=False
    )
    items: list[dict[str, Any]] = json.loads(listed.data)["items"]
    return sorted(items, key=lambda rs: int(rs["metadata"]["annotations"][REVISION]))


def raw_deployment(apps: client.AppsV1Api, name: str = "web") -> dict[str, Any]:
    response = apps.read_namespaced_deployment(name, NS, _preload_content=False)
    return dict(json.loads(response.data))


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in obj["status"]["conditions"] if c["type"] == type_)


def api_error(call: Callable[[], Any]) -> tuple[int, dict[str, Any]]:
    """Call the client; return the HTTP status and the Status body of the error it raises."""
    with pytest.raises(client.ApiException) as raised:
        call()
    return int(raised.value.status), json.loads(raised.value.body)


def job(name: str, code: str, **spec: Any) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "main",
        "image": "python:3.11",
        "command": [sys.executable, "-c", code],
    }
    container.update(spec.pop("container", {}))
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {"spec": {"restartPolicy": "Never", "containers": [container]}},
            **spec,
        },
    }


def job_condition(batch: client.BatchV1Api, name: str) -> tuple[str, str | None] | None:
    status = batch.read_namespaced_job(name, NS).status
    for found in (status.conditions if status else None) or []:
        if found.status == "True":
            return found.type, found.reason
    return None


def pods_of_job(core: client.CoreV1Api, name: str) -> list[client.V1Pod]:
    return list(core.list_namespaced_pod(NS, label_selector=f"job-name={name}").items)


# -- metadata -----------------------------------------------------------------------------


def test_create_fills_in_metadata(apps: client.AppsV1Api, core: client.CoreV1Api) -> None:
    created = apps.create_namespaced_deployment(NS, deployment())
    uuid.UUID(created.metadata.uid)
    assert int(created.metadata.resource_version) > 0
    assert created.metadata.creation_timestamp is not None
    assert created.metadata.generation == 1
    assert created.metadata.namespace == NS

    config_map = core.create_namespaced_config_map(
        NS,
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "settings"},
            "data": {"a": "1"},
        },
    )
    assert config_map.metadata.generation is None
    assert int(config_map.metadata.resource_version) > int(created.metadata.resource_version)

    generated = core.create_namespaced_config_map(
        NS, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "run-"}}
    )
    assert generated.metadata.name.startswith("run-")
    assert len(generated.metadata.name) == len("run-") + 5


def test_generation_counts_spec_changes_only(apps: client.AppsV1Api) -> None:
    created = apps.create_namespaced_deployment(NS, deployment())
    labelled = apps.patch_namespaced_deployment("web", NS, {"metadata": {"labels": {"team": "a"}}})
    assert labelled.metadata.generation == 1
    assert int(labelled.metadata.resource_version) > int(created.metadata.resource_version)

    scaled = apps.patch_namespaced_deployment("web", NS, {"spec": {"replicas": 3}})
    assert scaled.metadata.generation == 2
    assert scaled.metadata.uid == created.metadata.uid
    assert scaled.metadata.creation_timestamp == created.metadata.creation_timestamp


def test_patch_changing_nothing_keeps_resource_version(core: client.CoreV1Api) -> None:
    body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "same"},
        "data": {"k": "v"},
    }
    created = core.create_namespaced_config_map(NS, body)
    patched = core.patch_namespaced_config_map("same", NS, {"data": {"k": "v"}})
    assert patched.metadata.resource_version == created.metadata.resource_version


def test_defaults_are_filled_in(apps: client.AppsV1Api) -> None:
    body = deployment()
    del body["spec"]["replicas"]
    stored = raw_deployment(apps) if apps.create_namespaced_deployment(NS, body) else {}
    assert stored["spec"]["replicas"] == 1
    assert stored["spec"]["revisionHistoryLimit"] == 10
    assert stored["spec"]["progressDeadlineSeconds"] == 600
    container = stored["spec"]["template"]["spec"]["containers"][0]
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert stored["spec"]["template"]["spec"]["restartPolicy"] == "Always"


# -- guards ---------------------------------------------------------------------------------


def test_create_existing_name_conflicts(core: client.CoreV1Api) -> None:
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "twice"}}
    core.create_namespaced_config_map(NS, body)
    status, error = api_error(lambda: core.create_namespaced_config_map(NS, body))
    assert status == 409
    assert error["reason"] == "AlreadyExists"
    assert error["message"] == 'configmaps "twice" already exists'


def test_create_in_missing_namespace_is_not_found(core: client.CoreV1Api) -> None:
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "lost"}}
    status, error = api_error(lambda: core.create_namespaced_config_map("nowhere", body))
    assert status == 404
    assert error["message"] == 'namespaces "nowhere" not found'


def test_body_without_kind_is_rejected(core: client.CoreV1Api) -> None:
    body = {"apiVersion": "v1", "metadata": {"name": "kindless"}}
    status, error = api_error(lambda: core.create_namespaced_config_map(NS, body))
    assert status == 400
    assert "Object 'Kind' is missing" in error["message"]


def test_invalid_names_and_labels_are_rejected(core: client.CoreV1Api) -> None:
    for name, labels in (("Upper_Case", {}), ("ok", {"app": "no spaces"}), ("ok", {"-bad": "x"})):
        body = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "labels": labels},
        }
        status, error = api_error(lambda body=body: core.create_namespaced_config_map(NS, body))
        assert status == 422, name
        assert error["reason"] == "Invalid"


def test_selector_must_match_template_labels(apps: client.AppsV1Api) -> None:
    body = deployment()
    body["spec"]["selector"] = {"matchLabels": {"app": "other"}}
    status, error = api_error(lambda: apps.create_namespaced_deployment(NS, body))
    assert status == 422
    assert "`selector` does not match template `labels`" in error["message"]


def test_deployment_selector_is_immutable(apps: client.AppsV1Api) -> None:
    apps.create_namespaced_deployment(NS, deployment())
    patch = {"spec": {"selector": {"matchLabels": {"app": "web", "tier": "x"}}}}
    status, error = api_error(lambda: apps.patch_namespaced_deployment("web", NS, patch))
    assert status == 422
    assert "field is immutable" in error["message"]


def test_replace_with_stale_resource_version_conflicts(core: client.CoreV1Api) -> None:
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"v": "1"}}
    first = core.create_namespaced_config_map(NS, body)
    core.patch_namespaced_config_map("cm", NS, {"data": {"v": "2"}})
    stale = {**body, "metadata": {"name": "cm", "resourceVersion": first.metadata.resource_version}}
    status, error = api_error(lambda: core.replace_namespaced_config_map("cm", NS, stale))
    assert status == 409
    assert error["reason"] == "Conflict"
    assert core.read_namespaced_config_map("cm", NS).data == {"v": "2"}


def test_failed_json_patch_test_changes_nothing(apps: client.AppsV1Api) -> None:
    apps.create_namespaced_deployment(NS, deployment())
    operations = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": "0"},
        {"op": "replace", "path": "/spec/replicas", "value": 5},
    ]
    status, _ = api_error(lambda: apps.patch_namespaced_deployment("web", NS, operations))
    assert status == 422
    assert apps.read_namespaced_deployment("web", NS).spec.replicas == 2


def test_dry_run_stores_nothing(core: client.CoreV1Api) -> None:
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "dry"}}
    answered = core.create_namespaced_config_map(NS, body, dry_run="All")
    assert answered.metadata.name == "dry"
    status, _ = api_error(lambda: core.read_namespaced_config_map("dry", NS))
    assert status == 404


# -- selectors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("tier=web", ["a", "c"]),
        ("tier==web", ["a", "c"]),
        ("tier!=web", ["b", "d"]),
        ("env in (prod, staging)", ["a", "b"]),
        ("env notin (prod)", ["c", "d"]),
        ("env", ["a", "b"]),
        ("!env", ["c", "d"]),
        ("tier=web,env=prod", ["a"]),
        ("tier in (web,db),!env", ["c"]),
        ("", ["a", "b", "c", "d"]),
    ],
)
def test_label_selector_filters_list(
    core: client.CoreV1Api, selector: str, expected: list[str]
) -> None:
    for name, labels in {
        "a": {"tier": "web", "env": "prod"},
        "b": {"tier": "db", "env": "prod"},
        "c": {"tier": "web"},
        "d": {},
    }.items():
        body = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "labels": labels},
        }
        core.create_namespaced_config_map(NS, body)
    listed = core.list_namespaced_config_map(NS, label_selector=selector)
    assert [item.metadata.name for item in listed.items] == expected


def test_field_selector_matches_name(core: client.CoreV1Api) -> None:
    for name in ("one", "two"):
        core.create_namespaced_config_map(
            NS, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}
        )
    assert [
        i.metadata.name
        for i in core.list_namespaced_config_map(NS, field_selector="metadata.name=two").items
    ] == ["two"]
    assert [
        i.metadata.name
        for i in core.list_namespaced_config_map(NS, field_selector="metadata.name!=two").items
    ] == ["one"]


@pytest.mark.parametrize(
    ("label_selector", "field_selector", "message"),
    [
        ("env in ()", "", "values set can't be empty"),
        ("env in (a", "", "unbalanced parentheses"),
        ("a=b,,c=d", "", "empty requirement"),
        ("", "spec.replicas=1", 'field label not supported: "spec.replicas"'),
    ],
)
def test_bad_selector_is_bad_request(
    core: client.CoreV1Api, label_selector: str, field_selector: str, message: str
) -> None:
    status, error = api_error(
        lambda: core.list_namespaced_config_map(
            NS, label_selector=label_selector, field_selector=field_selector
        )
    )
    assert status == 400
    assert message in error["message"]


# -- Deployment controller ------------------------------------------------------------------


def test_rollouts_create_replica_set_revisions(apps: client.AppsV1Api) -> None:
    body = deployment()
    body["metadata"]["annotations"] = {CHANGE_CAUSE: "first"}
    created = apps.create_namespaced_deployment(NS, body)
    for version, cause in ((2, "second"), (3, "third")):
        # The cause goes in the same patch as the template, because the controller copies
        # the Deployment's annotations onto its current ReplicaSet on every sync.
        patch = {
            "metadata": {"annotations": {CHANGE_CAUSE: cause}},
            "spec": {
                "template": {
                    "spec": {"containers": [{"name": "app", "image": f"example/web:{version}"}]}
                }
            },
        }
        apps.patch_namespaced_deployment("web", NS, patch)

    sets = replica_sets(apps)
    assert [rs["metadata"]["annotations"][REVISION] for rs in sets] == ["1", "2", "3"]
    assert [rs["metadata"]["annotations"][CHANGE_CAUSE] for rs in sets] == [
        "first",
        "second",
        "third",
    ]
    assert [rs["spec"]["template"]["spec"]["containers"][0]["image"] for rs in sets] == [
        "example/web:1",
        "example/web:2",
        "example/web:3",
    ]
    assert [rs["spec"]["replicas"] for rs in sets] == [0, 0, 2]
    for rs in sets:
        pod_hash = rs["metadata"]["labels"][POD_TEMPLATE_HASH]
        assert rs["metadata"]["name"] == f"web-{pod_hash}"
        assert rs["spec"]["selector"]["matchLabels"][POD_TEMPLATE_HASH] == pod_hash
        assert rs["spec"]["template"]["metadata"]["labels"][POD_TEMPLATE_HASH] == pod_hash
        (owner,) = rs["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["uid"], owner["controller"]) == (
            "Deployment",
            created.metadata.uid,
            True,
        )

    current = raw_deployment(apps)
    assert current["metadata"]["annotations"][REVISION] == "3"
    assert current["status"]["observedGeneration"] == current["metadata"]["generation"] == 3
    assert current["status"]["updatedReplicas"] == current["status"]["availableReplicas"] == 2
    assert condition(current, "Progressing")["reason"] == "NewReplicaSetAvailable"
    assert condition(current, "Available")["status"] == "True"


def test_rollback_reuses_old_replica_set(apps: client.AppsV1Api, core: client.CoreV1Api) -> None:
    apps.create_namespaced_deployment(NS, deployment())
    set_image(apps, "example/web:2")
    set_image(apps, "example/web:3")
    first = replica_sets(apps)[0]
    template = json.loads(json.dumps(first["spec"]["template"]))
    del template["metadata"]["labels"][POD_TEMPLATE_HASH]
    current = raw_deployment(apps)

    apps.patch_namespaced_deployment(
        "web",
        NS,
        [
            {
                "op": "test",
                "path": "/metadata/resourceVersion",
                "value": current["metadata"]["resourceVersion"],
            },
            {"op": "replace", "path": "/spec/template", "value": template},
        ],
    )

    sets = replica_sets(apps)
    assert len(sets) == 3
    reused = sets[-1]
    assert reused["metadata"]["name"] == first["metadata"]["name"]
    assert reused["metadata"]["annotations"][REVISION] == "4"
    assert reused["metadata"]["annotations"][REVISION_HISTORY] == "1"
    assert reused["spec"]["replicas"] == 2
    assert raw_deployment(apps)["metadata"]["annotations"][REVISION] == "4"
    pod_hash = first["metadata"]["labels"][POD_TEMPLATE_HASH]
    pods = core.list_namespaced_pod(NS, label_selector="app=web").items
    assert {pod.metadata.labels[POD_TEMPLATE_HASH] for pod in pods} == {pod_hash}


def test_second_rollback_extends_revision_history(apps: client.AppsV1Api) -> None:
    apps.create_namespaced_deployment(NS, deployment())
    set_image(apps, "example/web:2")
    set_image(apps, "example/web:1")
    set_image(apps, "example/web:2")
    set_image(apps, "example/web:1")
    first = replica_sets(apps)[-1]
    assert first["metadata"]["annotations"][REVISION] == "5"
    assert first["metadata"]["annotations"][REVISION_HISTORY] == "1,3"


def test_paused_deployment_creates_no_replica_set(apps: client.AppsV1Api) -> None:
    apps.create_namespaced_deployment(NS, deployment())
    apps.patch_namespaced_deployment("web", NS, {"spec": {"paused": True}})
    set_image(apps, "example/web:2")

    assert len(replica_sets(apps)) == 1
    paused = raw_deployment(apps)
    assert paused["metadata"]["annotations"][REVISION] == "1"
    assert condition(paused, "Progressing")["reason"] == "DeploymentPaused"

    apps.patch_namespaced_deployment("web", NS, {"spec": {"paused": False}})
    sets = replica_sets(apps)
    assert [rs["metadata"]["annotations"][REVISION] for rs in sets] == ["1", "2"]
    assert sets[-1]["spec"]["template"]["spec"]["containers"][0]["image"] == "example/web:2"


def test_paused_deployment_still_scales(apps: client.AppsV1Api) -> None:
    apps.create_namespaced_deployment(NS, deployment())
    apps.patch_namespaced_deployment("web", NS, {"spec": {"paused": True}})
    apps.patch_namespaced_deployment("web", NS, {"spec": {"replicas": 4}})
    assert [rs["spec"]["replicas"] for rs in replica_sets(apps)] == [4]


def test_created_paused_has_no_replica_set(apps: client.AppsV1Api) -> None:
    apps.create_namespaced_deployment(NS, deployment(paused=True))
    assert replica_sets(apps) == []
    assert condition(raw_deployment(apps), "Progressing")["reason"] == "DeploymentPaused"


def test_history_limit_deletes_oldest_replica_sets(
    apps: client.AppsV1Api, core: client.CoreV1Api
) -> None:
    apps.create_namespaced_deployment(NS, deployment(revisionHistoryLimit=1))
    for version in (2, 3, 4):
        set_image(apps, f"example/web:{version}")

    sets = replica_sets(apps)
    assert [rs["metadata"]["annotations"][REVISION] for rs in sets] == ["3", "4"]
    hashes = {pod.metadata.labels[POD_TEMPLATE_HASH] for pod in core.list_namespaced_pod(NS).items}
    assert hashes == {sets[-1]["metadata"]["labels"][POD_TEMPLATE_HASH]}


def test_never_ready_rollout_exceeds_deadline(apps: client.AppsV1Api, clock: ManualClock) -> None:
    apps.create_namespaced_deployment(NS, deployment(progressDeadlineSeconds=60))
    apps.patch_namespaced_deployment(
        "web", NS, {"spec": {"template": {"metadata": {"annotations": {NEVER_READY: "true"}}}}}
    )
    stuck = raw_deployment(apps)
    assert condition(stuck, "Progressing")["reason"] == "ReplicaSetUpdated"

    clock.advance(59)
    assert condition(raw_deployment(apps), "Progressing")["status"] == "True"

    clock.advance(2)
    failed = raw_deployment(apps)
    progressing = condition(failed, "Progressing")
    assert (progressing["status"], progressing["reason"]) == ("False", "ProgressDeadlineExceeded")
    new_name = replica_sets(apps)[-1]["metadata"]["name"]
    assert progressing["message"] == f'ReplicaSet "{new_name}" has timed out progressing.'
    assert condition(failed, "Available")["status"] == "True"
    assert [rs["spec"]["replicas"] for rs in replica_sets(apps)] == [2, 2]
    assert failed["status"]["updatedReplicas"] == 2
    assert failed["status"]["availableReplicas"] == 2


def test_rollout_takes_configured_time(
    start_cluster: Callable[..., SandboxCluster], clock: ManualClock
) -> None:
    cluster = start_cluster(rollout_seconds=30)
    cluster.apply(deployment())
    rolling = cluster.get("apps/v1", "Deployment", NS, "web")
    assert rolling["status"].get("availableReplicas", 0) == 0
    assert condition(rolling, "Available")["status"] == "False"
    assert condition(rolling, "Progressing")["reason"] == "ReplicaSetUpdated"

    clock.advance(30)
    cluster.settle()
    done = cluster.get("apps/v1", "Deployment", NS, "web")
    assert done["status"]["availableReplicas"] == 2
    assert condition(done, "Progressing")["reason"] == "NewReplicaSetAvailable"


def test_scale_down_removes_unready_pods_first(
    start_cluster: Callable[..., SandboxCluster], clock: ManualClock
) -> None:
    cluster = start_cluster(rollout_seconds=30)
    cluster.apply(deployment())
    clock.advance(30)
    ready = {pod["metadata"]["name"] for pod in cluster.list_objects("v1", "Pod", NS)}

    scaled_up = deployment(replicas=3)
    cluster.apply(scaled_up)
    assert len(cluster.list_objects("v1", "Pod", NS)) == 3
    cluster.apply(deployment(replicas=2))

    assert {pod["metadata"]["name"] for pod in cluster.list_objects("v1", "Pod", NS)} == ready


def test_recreate_strategy_drops_old_pods_first(apps: client.AppsV1Api) -> None:
    apps.create_namespaced_deployment(NS, deployment(strategy={"type": "Recreate"}))
    set_image(apps, "example/web:2")
    assert [rs["spec"]["replicas"] for rs in replica_sets(apps)] == [0, 2]


def test_json_patch_replaces_template_whole(apps: client.AppsV1Api) -> None:
    containers = [
        {"name": "app", "image": "example/web:1"},
        {"name": "sidecar", "image": "example/proxy:1"},
    ]
    apps.create_namespaced_deployment(NS, deployment(containers=containers))
    template = {
        "metadata": {"labels": {"app": "web"}},
        "spec": {"containers": [{"name": "app", "image": "example/web:0"}]},
    }
    apps.patch_namespaced_deployment(
        "web", NS, [{"op": "replace", "path": "/spec/template", "value": template}]
    )

    names = [c["name"] for c in raw_deployment(apps)["spec"]["template"]["spec"]["containers"]]
    assert names == ["app"]


def test_strategic_merge_matches_containers_by_name(apps: client.AppsV1Api) -> None:
    containers = [
        {
            "name": "app",
            "image": "example/web:1",
            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
        },
        {"name": "sidecar", "image": "example/proxy:1"},
    ]
    apps.create_namespaced_deployment(NS, deployment(containers=containers))
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": "example/web:2",
                            "env": [{"name": "B", "value": "3"}],
                        },
                    ]
                }
            }
        }
    }
    apps.patch_namespaced_deployment("web", NS, patch)

    stored = raw_deployment(apps)["spec"]["template"]["spec"]["containers"]
    assert [(c["name"], c["image"]) for c in stored] == [
        ("app", "example/web:2"),
        ("sidecar", "example/proxy:1"),
    ]
    assert stored[0]["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "3"}]


def test_merge_patch_replaces_lists(apps: client.AppsV1Api) -> None:
    containers = [
        {"name": "app", "image": "example/web:1"},
        {"name": "sidecar", "image": "example/proxy:1"},
    ]
    apps.create_namespaced_deployment(NS, deployment(containers=containers))
    patch = {
        "spec": {"template": {"spec": {"containers": [{"name": "app", "image": "example/web:2"}]}}}
    }
    apps.patch_namespaced_deployment("web", NS, patch, _content_type="application/merge-patch+json")
    stored = raw_deployment(apps)["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in stored] == ["app"]


def test_scale_subresource_sets_replicas(apps: client.AppsV1Api, core: client.CoreV1Api) -> None:
    apps.create_namespaced_deployment(NS, deployment())
    apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": 5}})
    scale = apps.read_namespaced_deployment_scale("web", NS)
    assert scale.spec.replicas == 5
    assert scale.status.replicas == 5
    assert scale.status.selector == "app=web"
    assert len(core.list_namespaced_pod(NS, label_selector="app=web").items) == 5


def test_status_subresource_changes_status_only(apps: client.AppsV1Api) -> None:
    apps.create_namespaced_deployment(NS, deployment())
    apps.patch_namespaced_deployment("web", NS, {"status": {"replicas": 99}})
    assert apps.read_namespaced_deployment("web", NS).status.replicas == 2
    patched = apps.patch_namespaced_deployment_status(
        "web", NS, {"spec": {"replicas": 7}, "status": {"collisionCount": 1}}
    )
    assert patched.spec.replicas == 2
    assert patched.status.collision_count == 1


def test_autoscaler_keeps_replicas_within_limits(
    api: client.ApiClient, apps: client.AppsV1Api
) -> None:
    autoscaling = client.AutoscalingV2Api(api)
    apps.create_namespaced_deployment(NS, deployment(replicas=1))
    autoscaling.create_namespaced_horizontal_pod_autoscaler(
        NS,
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web"},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "minReplicas": 3,
                "maxReplicas": 5,
            },
        },
    )
    assert apps.read_namespaced_deployment("web", NS).spec.replicas == 3

    apps.patch_namespaced_deployment("web", NS, {"spec": {"replicas": 10}})
    assert apps.read_namespaced_deployment("web", NS).spec.replicas == 5
    autoscaler = autoscaling.read_namespaced_horizontal_pod_autoscaler("web", NS)
    assert autoscaler.status.desired_replicas == 5
    limited = next(c for c in autoscaler.status.conditions if c.type == "ScalingLimited")
    assert (limited.status, limited.reason) == ("True", "TooManyReplicas")


def test_deleting_deployment_collects_dependents(
    apps: client.AppsV1Api, core: client.CoreV1Api
) -> None:
    apps.create_namespaced_deployment(NS, deployment())
    set_image(apps, "example/web:2")
    apps.delete_namespaced_deployment("web", NS)
    assert apps.list_namespaced_replica_set(NS).items == []
    assert core.list_namespaced_pod(NS).items == []


def test_orphan_deletion_keeps_replica_sets(apps: client.AppsV1Api) -> None:
    apps.create_namespaced_deployment(NS, deployment())
    apps.delete_namespaced_deployment("web", NS, propagation_policy="Orphan")
    (rs,) = replica_sets(apps)
    assert rs["metadata"].get("ownerReferences") == []


# -- watch ----------------------------------------------------------------------------------


def test_watch_streams_changes_after_resource_version(apps: client.AppsV1Api) -> None:
    apps.create_namespaced_deployment(NS, deployment("web"))
    apps.create_namespaced_deployment(NS, deployment("api"))
    since = apps.list_namespaced_deployment(NS).metadata.resource_version
    seen: list[tuple[str, str, int]] = []

    def follow() -> None:
        stream = watch.Watch().stream(
            apps.list_namespaced_deployment,
            NS,
            label_selector="app=web",
            resource_version=since,
            timeout_seconds=2,
        )
        for event in stream:
            seen.append(
                (event["type"], event["object"].metadata.name, event["object"].spec.replicas)
            )
            if event["object"].spec.replicas == 4:
                break

    watcher = threading.Thread(target=follow)
    watcher.start()
    time.sleep(0.2)  # lets the watch connect before the change it waits for
    apps.patch_namespaced_deployment("api", NS, {"spec": {"replicas": 3}})
    apps.patch_namespaced_deployment("web", NS, {"spec": {"replicas": 4}})
    watcher.join(10)

    assert not watcher.is_alive()
    assert ("MODIFIED", "web", 4) in seen
    assert all(name == "web" for _, name, _ in seen)


def test_watch_replays_changes_since_resource_version(core: client.CoreV1Api) -> None:
    since = core.list_namespaced_config_map(NS).metadata.resource_version
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"v": "1"}}
    core.create_namespaced_config_map(NS, body)
    core.patch_namespaced_config_map("cm", NS, {"data": {"v": "2"}})
    core.delete_namespaced_config_map("cm", NS)

    events = watch.Watch().stream(
        core.list_namespaced_config_map, NS, resource_version=since, timeout_seconds=1
    )
    seen = [(event["type"], event["object"].data) for event in events]
    assert seen == [("ADDED", {"v": "1"}), ("MODIFIED", {"v": "2"}), ("DELETED", {"v": "2"})]


def test_watch_without_resource_version_lists_first(apps: client.AppsV1Api) -> None:
    apps.create_namespaced_deployment(NS, deployment())
    events = list(watch.Watch().stream(apps.list_namespaced_deployment, NS, timeout_seconds=1))
    assert [(e["type"], e["object"].metadata.name) for e in events] == [("ADDED", "web")]


def test_ticker_reconciles_without_requests(
    start_cluster: Callable[..., SandboxCluster], clock: ManualClock
) -> None:
    cluster = start_cluster(tick_interval=0.02)
    cluster.apply(deployment(progressDeadlineSeconds=10))
    api_client = cluster.api_client()
    apps = client.AppsV1Api(api_client)
    apps.patch_namespaced_deployment(
        "web", NS, {"spec": {"template": {"metadata": {"annotations": {NEVER_READY: "true"}}}}}
    )
    since = apps.list_namespaced_deployment(NS).metadata.resource_version
    clock.advance(11)
    reasons: list[str] = []
    for event in watch.Watch().stream(
        apps.list_namespaced_deployment, NS, resource_version=since, timeout_seconds=5
    ):
        reasons += [
            c.reason for c in event["object"].status.conditions or [] if c.type == "Progressing"
        ]
        if "ProgressDeadlineExceeded" in reasons:
            break
    api_client.close()
    assert "ProgressDeadlineExceeded" in reasons


# -- Jobs: the sandbox plays the kubelet and runs the command locally -----------------------


def test_job_runs_command_as_local_process(
    cluster: SandboxCluster,
    batch: client.BatchV1Api,
    core: client.CoreV1Api,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SANDBOX_HOST_ONLY", "must not leak")
    core.create_namespaced_secret(
        NS,
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "db"},
            "stringData": {"password": "s3cret"},
        },
    )
    core.create_namespaced_config_map(
        NS,
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "app"},
            "data": {"mode": "repair"},
        },
    )
    code = (
        "import os; print('greeting', os.environ['GREETING']); print('password', os.environ['PASSWORD']);"
        "print('mode', os.environ['MODE']); print('leak', os.environ.get('SANDBOX_HOST_ONLY'));"
        "print('pod', os.environ['POD']); print('cwd', os.getcwd())"
    )
    env = [
        {"name": "GREETING", "value": "hello"},
        {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
        {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "app", "key": "mode"}}},
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    ]
    batch.create_namespaced_job(NS, job("repair", code, container={"env": env}))

    assert job_condition(batch, "repair") == ("Complete", None)
    assert batch.read_namespaced_job("repair", NS).status.succeeded == 1
    (pod,) = pods_of_job(core, "repair")
    assert pod.status.phase == "Succeeded"
    assert pod.status.container_statuses[0].state.terminated.exit_code == 0
    log = core.read_namespaced_pod_log(pod.metadata.name, NS)
    lines = log.splitlines()
    assert lines[:5] == [
        "greeting hello",
        "password s3cret",
        "mode repair",
        "leak None",
        f"pod {pod.metadata.name}",
    ]
    assert Path(lines[5].removeprefix("cwd ")).name == f"{NS}.{pod.metadata.name}"


def test_failing_job_reports_exit_code(batch: client.BatchV1Api, core: client.CoreV1Api) -> None:
    code = "import sys; print('migration failed: table locked'); sys.exit(3)"
    batch.create_namespaced_job(NS, job("migrate", code, backoffLimit=1))

    assert job_condition(batch, "migrate") == ("Failed", "BackoffLimitExceeded")
    assert batch.read_namespaced_job("migrate", NS).status.failed == 2
    pods = pods_of_job(core, "migrate")
    assert [p.status.phase for p in pods] == ["Failed", "Failed"]
    assert {p.status.container_statuses[0].state.terminated.exit_code for p in pods} == {3}
    assert (
        core.read_namespaced_pod_log(pods[0].metadata.name, NS)
        == "migration failed: table locked\n"
    )


def test_job_past_deadline_is_killed(batch: client.BatchV1Api, core: client.CoreV1Api) -> None:
    batch.create_namespaced_job(
        NS,
        job(
            "hang",
            "import time; print('started', flush=True); time.sleep(60)",
            activeDeadlineSeconds=1,
        ),
    )

    assert job_condition(batch, "hang") == ("Failed", "DeadlineExceeded")
    (pod,) = pods_of_job(core, "hang")
    assert pod.status.reason == "DeadlineExceeded"
    assert pod.status.container_statuses[0].state.terminated.exit_code == 137
    assert core.read_namespaced_pod_log(pod.metadata.name, NS) == "started\n"


def test_job_with_missing_secret_waits_for_it(
    batch: client.BatchV1Api, core: client.CoreV1Api
) -> None:
    env = [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "later", "key": "token"}}}]
    batch.create_namespaced_job(
        NS, job("wait", "import os; print(os.environ['TOKEN'])", container={"env": env})
    )

    (pod,) = pods_of_job(core, "wait")
    waiting = pod.status.container_statuses[0].state.waiting
    assert (pod.status.phase, waiting.reason) == ("Pending", "CreateContainerConfigError")
    assert waiting.message == 'secret "later" not found'
    status, error = api_error(lambda: core.read_namespaced_pod_log(pod.metadata.name, NS))
    assert status == 400
    assert "is waiting to start: CreateContainerConfigError" in error["message"]

    core.create_namespaced_secret(
        NS,
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "later"},
            "stringData": {"token": "t0k"},
        },
    )
    assert job_condition(batch, "wait") == ("Complete", None)
    assert core.read_namespaced_pod_log(pod.metadata.name, NS) == "t0k\n"


def test_job_without_command_fails_to_start(
    batch: client.BatchV1Api, core: client.CoreV1Api
) -> None:
    body = job("entrypoint", "")
    del body["spec"]["template"]["spec"]["containers"][0]["command"]
    batch.create_namespaced_job(NS, body)
    assert job_condition(batch, "entrypoint") == ("Failed", "BackoffLimitExceeded")
    (pod,) = pods_of_job(core, "entrypoint")
    terminated = pod.status.container_statuses[0].state.terminated
    assert (terminated.exit_code, terminated.reason) == (128, "StartError")


def test_on_failure_job_restarts_in_place(batch: client.BatchV1Api, core: client.CoreV1Api) -> None:
    # The scratch directory outlives a container restart, so the process can count attempts.
    code = (
        "import pathlib; p = pathlib.Path('attempts'); n = int(p.read_text()) + 1 if p.exists() else 1;"
        "p.write_text(str(n)); print('attempt', n); raise SystemExit(0 if n == 3 else 1)"
    )
    body = job("flaky", code, backoffLimit=5)
    body["spec"]["template"]["spec"]["restartPolicy"] = "OnFailure"
    batch.create_namespaced_job(NS, body)

    assert job_condition(batch, "flaky") == ("Complete", None)
    (pod,) = pods_of_job(core, "flaky")
    assert pod.status.container_statuses[0].restart_count == 2
    assert core.read_namespaced_pod_log(pod.metadata.name, NS) == "attempt 3\n"
    assert core.read_namespaced_pod_log(pod.metadata.name, NS, previous=True) == "attempt 2\n"


def test_on_failure_restarts_count_as_failures(
    batch: client.BatchV1Api, core: client.CoreV1Api
) -> None:
    body = job("broken", "raise SystemExit(1)", backoffLimit=2)
    body["spec"]["template"]["spec"]["restartPolicy"] = "OnFailure"
    batch.create_namespaced_job(NS, body)

    assert job_condition(batch, "broken") == ("Failed", "BackoffLimitExceeded")
    (pod,) = pods_of_job(core, "broken")
    assert pod.status.phase == "Failed"
    assert pod.status.container_statuses[0].restart_count == 2


def test_job_restart_policy_must_not_be_always(batch: client.BatchV1Api) -> None:
    body = job("bad", "print(1)")
    body["spec"]["template"]["spec"]["restartPolicy"] = "Always"
    status, error = api_error(lambda: batch.create_namespaced_job(NS, body))
    assert status == 422
    assert 'restartPolicy: Unsupported value: "Always"' in error["message"]


def test_direct_get_sees_finished_job(cluster: SandboxCluster) -> None:
    cluster.apply(job("quick", "print('ok')"))
    finished = cluster.get("batch/v1", "Job", NS, "quick")
    assert finished["status"]["succeeded"] == 1
    assert finished["status"]["conditions"][0]["type"] == "Complete"


def test_background_jobs_finish_on_settle(
    start_cluster: Callable[..., SandboxCluster],
) -> None:
    cluster = start_cluster(instant_jobs=False)
    cluster.apply(job("slow", "import time; time.sleep(0.3); print('done')"))
    running = cluster.get("batch/v1", "Job", NS, "slow")
    assert running["status"]["active"] == 1

    cluster.settle()
    done = cluster.get("batch/v1", "Job", NS, "slow")
    assert done["status"]["succeeded"] == 1
    (pod,) = cluster.list_objects("v1", "Pod", NS, label_selector="job-name=slow")
    assert cluster.pod_log(NS, pod["metadata"]["name"]) == "done\n"


def test_finished_job_expires_after_ttl(cluster: SandboxCluster, clock: ManualClock) -> None:
    cluster.apply(job("once", "print('x')", ttlSecondsAfterFinished=100))
    cluster.settle()
    clock.advance(99)
    cluster.settle()
    assert cluster.get("batch/v1", "Job", NS, "once")["metadata"]["name"] == "once"
    clock.advance(1)
    cluster.settle()
    with pytest.raises(ObjectNotFoundError):
        cluster.get("batch/v1", "Job", NS, "once")
    assert cluster.list_objects("v1", "Pod", NS) == []


# -- pod logs --------------------------------------------------------------------------------


def test_pod_logs_with_previous(cluster: SandboxCluster, core: client.CoreV1Api) -> None:
    body = deployment(replicas=1)
    body["spec"]["template"]["metadata"]["annotations"] = {RESTARTS: "2"}
    cluster.apply(body)
    (pod,) = core.list_namespaced_pod(NS, label_selector="app=web").items
    name = pod.metadata.name
    assert pod.status.container_statuses[0].restart_count == 2

    assert "started from image example/web:1" in core.read_namespaced_pod_log(name, NS)
    assert "before restart 2" in core.read_namespaced_pod_log(
        name, NS, container="app", previous=True
    )

    cluster.set_pod_log(NS, name, "app", "panic: nil map\nexit\n", previous=True)
    assert core.read_namespaced_pod_log(name, NS, previous=True, tail_lines=1) == "exit\n"
    assert cluster.pod_log(NS, name, "app", previous=True) == "panic: nil map\nexit\n"


def test_pod_log_tail_and_limit(cluster: SandboxCluster, core: client.CoreV1Api) -> None:
    cluster.apply(deployment(replicas=1))
    (pod,) = core.list_namespaced_pod(NS, label_selector="app=web").items
    cluster.set_pod_log(NS, pod.metadata.name, "app", "one\ntwo\nthree\n")

    assert core.read_namespaced_pod_log(pod.metadata.name, NS, tail_lines=2) == "two\nthree\n"
    assert core.read_namespaced_pod_log(pod.metadata.name, NS, tail_lines=0) == ""
    assert core.read_namespaced_pod_log(pod.metadata.name, NS, tail_lines=9) == "one\ntwo\nthree\n"
    assert core.read_namespaced_pod_log(pod.metadata.name, NS, limit_bytes=5) == "one\nt"
    status, error = api_error(
        lambda: core.read_namespaced_pod_log(pod.metadata.name, NS, tail_lines=-1)
    )
    assert status == 400
    assert "tailLines must be a non-negative integer" in error["message"]


def test_pod_log_errors(cluster: SandboxCluster, core: client.CoreV1Api) -> None:
    containers = [
        {"name": "app", "image": "example/web:1"},
        {"name": "proxy", "image": "example/proxy:1"},
    ]
    cluster.apply(deployment(replicas=1, containers=containers))
    (pod,) = core.list_namespaced_pod(NS, label_selector="app=web").items
    name = pod.metadata.name

    cases = [
        (lambda: core.read_namespaced_pod_log("missing", NS), 404, 'pods "missing" not found'),
        (
            lambda: core.read_namespaced_pod_log(name, NS),
            400,
            f"a container name must be specified for pod {name}, choose one of: [app proxy]",
        ),
        (
            lambda: core.read_namespaced_pod_log(name, NS, container="db"),
            400,
            f"container db is not valid for pod {name}",
        ),
        (
            lambda: core.read_namespaced_pod_log(name, NS, container="app", previous=True),
            400,
            f'previous terminated container "app" in pod "{name}" not found',
        ),
    ]
    for call, expected_status, message in cases:
        status, error = api_error(call)
        assert (status, error["message"]) == (expected_status, message)


# -- direct helpers and lifecycle -------------------------------------------------------------


def test_apply_seeds_status_and_namespace(cluster: SandboxCluster) -> None:
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "seeded", "namespace": "ops"},
            "spec": {"containers": [{"name": "app", "image": "example/web:1"}]},
            "status": {"phase": "Failed", "reason": "Evicted"},
        }
    )
    assert cluster.get("v1", "Namespace", None, "ops")["metadata"]["name"] == "ops"
    assert cluster.get("v1", "Pod", "ops", "seeded")["status"] == {
        "phase": "Failed",
        "reason": "Evicted",
    }
    with pytest.raises(ObjectNotFoundError, match="Pod absent in namespace ops not found"):
        cluster.get("v1", "Pod", "ops", "absent")

    replaced = cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": "ops"},
            "data": {"a": "1"},
        }
    )
    again = cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": "ops"},
            "data": {"b": "2"},
        }
    )
    assert again["data"] == {"b": "2"}
    assert again["metadata"]["uid"] == replaced["metadata"]["uid"]
    cluster.delete("v1", "ConfigMap", "ops", "c")
    assert [obj["metadata"]["name"] for obj in cluster.list_objects("v1", "ConfigMap", "ops")] == []


def test_kubeconfig_reaches_sandbox(cluster: SandboxCluster, tmp_path: Path) -> None:
    cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ops"}})
    path = cluster.write_kubeconfig(tmp_path / "kube" / "config", context="drill", namespace="ops")
    assert path.stat().st_mode & 0o777 == 0o600
    contexts, active = config.list_kube_config_contexts(config_file=str(path))
    assert [found["name"] for found in contexts] == ["drill"]
    assert active["name"] == "drill"
    assert active["context"]["namespace"] == "ops"

    api_client = config.new_client_from_config(config_file=str(path), context="drill")
    api_client.configuration.proxy = None
    try:
        assert api_client.configuration.host == cluster.url
        names = [n.metadata.name for n in client.CoreV1Api(api_client).list_namespace().items]
        assert names == ["default", "ops"]
    finally:
        api_client.close()


def test_url_is_loopback(cluster: SandboxCluster) -> None:
    assert cluster.url.startswith("http://127.0.0.1:")


def test_stop_leaves_no_thread_or_process(
    start_cluster: Callable[..., SandboxCluster], tmp_path: Path
) -> None:
    before = set(threading.enumerate())
    cluster = start_cluster(instant_jobs=False)
    pid_file = tmp_path / "pid"
    cluster.apply(
        job(
            "forever",
            f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(60)",
        )
    )
    deadline = time.monotonic() + 20
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline, "the Job process did not start"
        time.sleep(0.02)
    pid = int(pid_file.read_text())

    cluster.stop()
    cluster.stop()

    assert set(threading.enumerate()) <= before
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(SandboxError, match="not running"):
        cluster.get("v1", "Namespace", None, "default")
    with pytest.raises(SandboxError, match="starts once"):
        cluster.start()


def test_concurrent_stops_are_safe(start_cluster: Callable[..., SandboxCluster]) -> None:
    cluster = start_cluster()
    threads = [threading.Thread(target=cluster.stop) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not any(thread.is_alive() for thread in threads)
    assert not any(t.name == "breakglass-sandbox-k8s" for t in threading.enumerate())


def test_invalid_options_are_rejected() -> None:
    with pytest.raises(ValueError, match="tick_interval"):
        SandboxCluster(tick_interval=0)
    with pytest.raises(ValueError, match="rollout_seconds"):
        SandboxCluster(rollout_seconds=-1)
