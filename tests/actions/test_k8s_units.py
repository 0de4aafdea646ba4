"""The Kubernetes actions' pure parts: patch bodies, template comparison, rollout state.

The API emulator replaces lists on any merge, so only a test of the patch body itself can
catch a rollback sent as a merge patch, which a real API server would merge into the bad
release's template.
"""

from __future__ import annotations

from typing import Any

import pytest

from breakglass.actions.base import ActionContext, ActionError
from breakglass.actions.kubernetes.configmaps import patch_operations
from breakglass.actions.kubernetes.jobs import JobParams, job_manifest, job_state
from breakglass.actions.kubernetes.rollout import (
    comparable,
    gitops_owner,
    rollout_state,
    undo_patch,
)
from breakglass.config.loading import LoadedConfig
from breakglass.config.model import PlatformConfig


def template(*containers: str, hash_label: str | None = None) -> dict[str, Any]:
    labels = {"app": "web"}
    if hash_label:
        labels["pod-template-hash"] = hash_label
    return {
        "metadata": {"labels": labels},
        "spec": {"containers": [{"name": name, "image": f"{name}:1"} for name in containers]},
    }


def test_undo_patch_replaces_the_template_whole() -> None:
    target = template("web", hash_label="abc123")
    operations = undo_patch(target, "42")
    assert isinstance(operations, list)
    assert operations[0] == {"op": "test", "path": "/metadata/resourceVersion", "value": "42"}
    [replace] = operations[1:]
    assert replace["op"] == "replace"
    assert replace["path"] == "/spec/template"
    assert replace["value"]["spec"]["containers"] == [{"name": "web", "image": "web:1"}]
    assert "pod-template-hash" not in replace["value"]["metadata"]["labels"]


def test_comparable_ignores_only_the_hash_label() -> None:
    assert comparable(template("web", hash_label="x")) == comparable(template("web"))
    assert comparable(template("web", "sidecar")) != comparable(template("web"))


@pytest.mark.parametrize(
    ("metadata", "owner"),
    [
        (
            {"annotations": {"argocd.argoproj.io/tracking-id": "shop:apps/Deployment:web/web"}},
            "Argo CD",
        ),
        ({"labels": {"app.kubernetes.io/instance": "shop"}}, "Argo CD"),
        ({"labels": {"kustomize.toolkit.fluxcd.io/name": "apps"}}, "Flux"),
        ({"labels": {"helm.toolkit.fluxcd.io/name": "web"}}, "Flux"),
        ({"labels": {"app": "web"}}, None),
    ],
)
def test_gitops_owner_named(metadata: dict[str, Any], owner: str | None) -> None:
    found = gitops_owner({"metadata": metadata})
    if owner is None:
        assert found is None
    else:
        assert found is not None
        assert found.startswith(owner)


def deployment_with(
    status: dict[str, Any], *, generation: int = 2, replicas: int = 3
) -> dict[str, Any]:
    return {
        "metadata": {"name": "web", "generation": generation},
        "spec": {"replicas": replicas},
        "status": status,
    }


def test_rollout_complete() -> None:
    done, missing = rollout_state(
        deployment_with(
            {"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3}
        )
    )
    assert done
    assert missing == ""


def test_rollout_waits_for_generation_and_old_replicas() -> None:
    done, missing = rollout_state(
        deployment_with(
            {"observedGeneration": 1, "replicas": 4, "updatedReplicas": 3, "availableReplicas": 3}
        )
    )
    assert not done
    assert "observedGeneration 1 < generation 2" in missing
    assert "1 old replica(s) still running" in missing


def test_progress_deadline_fails_with_reason() -> None:
    stalled = deployment_with(
        {
            "observedGeneration": 2,
            "conditions": [
                {
                    "type": "Progressing",
                    "status": "False",
                    "reason": "ProgressDeadlineExceeded",
                    "message": 'ReplicaSet "web-7d" has timed out progressing.',
                }
            ],
        }
    )
    with pytest.raises(ActionError, match="exceeded its progress deadline: ReplicaSet"):
        rollout_state(stalled)


def test_configmap_patch_sets_and_removes_keys() -> None:
    operations = patch_operations(
        {"MAINTENANCE_MODE": "false", "CDN_NOTICE": "x", "a/b": "1"},
        {"MAINTENANCE_MODE": "true", "CDN_NOTICE": None, "MISSING": None, "a/b": "2"},
    )
    assert operations == [
        {"op": "add", "path": "/data/MAINTENANCE_MODE", "value": "true"},
        {"op": "remove", "path": "/data/CDN_NOTICE"},
        {"op": "add", "path": "/data/a~1b", "value": "2"},
    ]


def test_configmap_without_data_gets_a_data_map() -> None:
    assert patch_operations(None, {"K": "v"})[0] == {"op": "add", "path": "/data", "value": {}}


def job_context() -> ActionContext:
    model = PlatformConfig.model_validate({})
    return ActionContext(
        config=LoadedConfig(model, None, "digest"), run_id="RUN-20261204-007", step_id="migrate"
    )


def test_job_copies_image_and_environment() -> None:
    deployment = {
        "spec": {
            "template": {
                "spec": {
                    "serviceAccountName": "backend",
                    "containers": [
                        {
                            "name": "api",
                            "image": "registry.local/backend:2.4.0",
                            "command": ["node", "server.js"],
                            "env": [
                                {"name": "NODE_ENV", "value": "production"},
                                {"name": "MODE", "value": "web"},
                            ],
                            "envFrom": [{"secretRef": {"name": "backend-db"}}],
                        }
                    ],
                }
            }
        }
    }
    params = JobParams(
        deployment="backend", argv=["npm", "run", "migration:current"], env={"MODE": "job"}
    )
    manifest = job_manifest(deployment, params, "backend-migrate-run-20261204-007", 300)
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.local/backend:2.4.0"
    assert container["command"] == ["npm", "run", "migration:current"]
    assert {"name": "MODE", "value": "job"} in container["env"]
    assert {"name": "MODE", "value": "web"} not in container["env"]
    assert container["envFrom"] == [{"secretRef": {"name": "backend-db"}}]
    assert manifest["spec"]["template"]["spec"]["serviceAccountName"] == "backend"
    assert manifest["spec"]["backoffLimit"] == 0
    assert manifest["spec"]["activeDeadlineSeconds"] == 300


def test_job_for_unknown_container_names_the_known_ones() -> None:
    deployment = {"spec": {"template": {"spec": {"containers": [{"name": "api", "image": "x"}]}}}}
    params = JobParams(deployment="backend", argv=["true"], container="worker")
    with pytest.raises(ActionError, match="no container 'worker'; its containers are api"):
        job_manifest(deployment, params, "job", 60)


def test_job_state_from_conditions() -> None:
    assert job_state({"status": {}}) is None
    assert (
        job_state({"status": {"conditions": [{"type": "Complete", "status": "True"}]}})
        == "Complete"
    )
    assert job_state({"status": {"failed": 1}}) == "Failed"


def test_job_name_from_run_and_step() -> None:
    from breakglass.actions.kubernetes.jobs import job_name

    name = job_name(JobParams(deployment="backend", argv=["true"]), job_context())
    assert name == "backend-migrate-run-20261204-007"
