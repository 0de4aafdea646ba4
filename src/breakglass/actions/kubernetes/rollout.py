"""`k8s.rollout_undo`, `k8s.rollout_wait` and `k8s.restart`.

A rollback restores the target ReplicaSet's pod template as a whole with a JSON patch
that replaces `/spec/template`, as `kubectl rollout undo` does. A strategic-merge patch
would keep the containers and volumes that only the bad release has.
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

from pydantic import Field

from breakglass.actions.base import Action, ActionContext, ActionError, Outputs, Params, PlanResult
from breakglass.actions.kubernetes.client import Kube, kube, revision_of
from breakglass.durations import PositiveDuration

HASH_LABEL = "pod-template-hash"
CHANGE_CAUSE = "kubernetes.io/change-cause"
# Markers of a GitOps controller whose self-heal would put the rolled-back release back.
ARGO_ANNOTATION = "argocd.argoproj.io/tracking-id"
ARGO_LABEL = "app.kubernetes.io/instance"
FLUX_LABEL_PREFIXES = ("kustomize.toolkit.fluxcd.io/", "helm.toolkit.fluxcd.io/")


def comparable(template: dict[str, Any]) -> dict[str, Any]:
    """Return a pod template without the label the controller adds to its ReplicaSet copy."""
    stripped = copy.deepcopy(template)
    labels = stripped.get("metadata", {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(HASH_LABEL, None)
    return stripped


def images(template: dict[str, Any]) -> list[str]:
    return [
        container.get("image", "?") for container in template.get("spec", {}).get("containers", [])
    ]


def change_cause(obj: dict[str, Any]) -> str:
    return str(obj["metadata"].get("annotations", {}).get(CHANGE_CAUSE) or "no change-cause")


def gitops_owner(deployment: dict[str, Any]) -> str | None:
    """Name the GitOps controller that manages the Deployment, if any."""
    annotations = deployment["metadata"].get("annotations", {}) or {}
    labels = deployment["metadata"].get("labels", {}) or {}
    if ARGO_ANNOTATION in annotations:
        return f"Argo CD (tracking id {annotations[ARGO_ANNOTATION]})"
    for key, value in labels.items():
        if key.startswith(FLUX_LABEL_PREFIXES):
            return f"Flux ({key}={value})"
    if ARGO_LABEL in labels:
        return (
            f"Argo CD, by its tracking label {ARGO_LABEL}={labels[ARGO_LABEL]} (Helm sets the same "
            "label, so check which tool applied it)"
        )
    return None


def undo_patch(
    target_template: dict[str, Any],
    resource_version: str | None,
    cause: str | None = None,
    has_annotations: bool = True,
) -> list[dict[str, Any]]:
    """Return the JSON patch that replaces the Deployment's pod template with the target's.

    The `test` operation makes the API server reject the patch when the Deployment changed
    since it was read, so a concurrent deploy is not silently overwritten.
    """
    operations: list[dict[str, Any]] = []
    if resource_version:
        operations.append(
            {"op": "test", "path": "/metadata/resourceVersion", "value": resource_version}
        )
    operations.append(
        {"op": "replace", "path": "/spec/template", "value": comparable(target_template)}
    )
    if cause:
        # As kubectl's undo does, the Deployment takes the target's change-cause, so that the
        # next plan does not describe the restored revision with the bad release's cause.
        if has_annotations:
            operations.append(
                {
                    "op": "add",
                    "path": "/metadata/annotations/kubernetes.io~1change-cause",
                    "value": cause,
                }
            )
        else:
            operations.append(
                {"op": "add", "path": "/metadata/annotations", "value": {CHANGE_CAUSE: cause}}
            )
    return operations


class UndoParams(Params):
    deployment: str
    to_revision: int | None = Field(
        default=None,
        ge=1,
        description="Revision to return to. Default: the newest earlier one that differs.",
    )
    snapshot: str | None = Field(
        default=None,
        description="Return to the template this known-good snapshot recorded for the Deployment.",
    )


class UndoOutputs(Outputs):
    changed: bool
    from_revision: int
    to_revision: int
    images_before: list[str]
    images_after: list[str]


class Choice:
    """The current revision of a Deployment and the ReplicaSet chosen as the rollback target."""

    def __init__(self, client: Kube, params: UndoParams, ctx: ActionContext) -> None:
        self.deployment = client.deployment(params.deployment)
        self.replica_sets = client.replica_sets_of(self.deployment)
        self.current_revision = revision_of(self.deployment)
        self.current = comparable(self.deployment["spec"]["template"])
        self.target = self._from_snapshot(params, ctx) if params.snapshot else self._choose(params)
        self.target_revision = revision_of(self.target)
        self.noop = comparable(self.target["spec"]["template"]) == self.current

    def _from_snapshot(self, params: UndoParams, ctx: ActionContext) -> dict[str, Any]:
        """Return the owned ReplicaSet whose template the snapshot recorded, or a stand-in."""
        from breakglass.actions.kubernetes.snapshots import load

        assert params.snapshot is not None
        saved = load(ctx, params.snapshot).get("deployments", {}).get(params.deployment)
        if saved is None:
            raise ActionError(
                f"snapshot {params.snapshot} recorded no Deployment {params.deployment}"
            )
        for replica_set in reversed(self.replica_sets):
            if comparable(replica_set["spec"]["template"]) == saved["template"]:
                return dict(replica_set)
        # The ReplicaSet is gone (history limit); the recorded template still restores it.
        return {
            "metadata": {
                "name": f"(snapshot {params.snapshot})",
                "annotations": {"deployment.kubernetes.io/revision": str(saved["revision"])},
            },
            "spec": {"template": saved["template"]},
        }

    def _choose(self, params: UndoParams) -> dict[str, Any]:
        name = params.deployment
        known = ", ".join(str(revision_of(rs)) for rs in self.replica_sets) or "none"
        if params.to_revision is not None:
            for replica_set in self.replica_sets:
                if revision_of(replica_set) == params.to_revision:
                    return replica_set
            raise ActionError(
                f"Deployment {name} has no revision {params.to_revision}; its revisions are {known}"
            )
        earlier = [
            replica_set
            for replica_set in self.replica_sets
            if revision_of(replica_set) < self.current_revision
            and comparable(replica_set["spec"]["template"]) != self.current
        ]
        if not earlier:
            raise ActionError(
                f"Deployment {name} has no earlier revision with a different pod template "
                f"(current revision {self.current_revision}; revisions kept: {known}); "
                "give to_revision or raise revisionHistoryLimit"
            )
        return earlier[-1]

    def describe(self, name: str) -> list[str]:
        target_template = self.target["spec"]["template"]
        return [
            f"current: revision {self.current_revision}, images {', '.join(images(self.current))}, "
            f"{change_cause(self.deployment)}",
            f"target:  revision {self.target_revision}, images {', '.join(images(target_template))}, "
            f"{change_cause(self.target)} (ReplicaSet {self.target['metadata']['name']})",
            f"replace /spec/template of {name} as a whole with revision {self.target_revision}'s "
            "(JSON patch, not a merge)",
        ]


class K8sRolloutUndo(Action[UndoParams, UndoOutputs]):
    name = "k8s.rollout_undo"
    summary = "Roll a Deployment back to an earlier revision's pod template, replaced as a whole."
    params_model: ClassVar[type[Params]] = UndoParams
    outputs_model: ClassVar[type[Outputs]] = UndoOutputs
    mutating = True
    idempotent = True
    default_timeout = 60.0

    def plan(self, params: UndoParams, ctx: ActionContext) -> PlanResult:
        client = kube(ctx)
        choice = Choice(client, params, ctx)
        target = f"Deployment {params.deployment} ({client.where()})"
        warnings = []
        owner = gitops_owner(choice.deployment)
        if owner is not None:
            warnings.append(
                f"{params.deployment} is managed by {owner}: its self-heal will put the bad "
                "release back unless the sync is paused; the lasting fix is a revert in Git"
            )
        if choice.deployment["spec"].get("paused"):
            warnings.append(
                f"{params.deployment} is paused: the rollback takes effect only once it is resumed"
            )
        if choice.noop:
            return PlanResult(
                summary=f"{params.deployment} already runs revision {choice.target_revision}'s template; "
                "nothing to do",
                target=target,
                changes=choice.describe(params.deployment)[:2],
                warnings=warnings,
            )
        return PlanResult(
            summary=f"roll {params.deployment} back from revision {choice.current_revision} "
            f"to revision {choice.target_revision}",
            target=target,
            changes=choice.describe(params.deployment),
            warnings=warnings,
            mutating=True,
        )

    def run(self, params: UndoParams, ctx: ActionContext) -> UndoOutputs:
        client = kube(ctx)
        choice = Choice(client, params, ctx)
        before = images(choice.current)
        target_template = choice.target["spec"]["template"]
        if choice.noop:
            return UndoOutputs(
                changed=False,
                from_revision=choice.current_revision,
                to_revision=choice.target_revision,
                images_before=before,
                images_after=before,
            )
        cause = (choice.target["metadata"].get("annotations") or {}).get(CHANGE_CAUSE)
        client.patch_deployment(
            params.deployment,
            undo_patch(
                target_template,
                choice.deployment["metadata"].get("resourceVersion"),
                cause,
                has_annotations=bool(choice.deployment["metadata"].get("annotations")),
            ),
        )
        live = client.deployment(params.deployment)
        if comparable(live["spec"]["template"]) != comparable(target_template):
            raise ActionError(
                f"after the patch, the pod template of {params.deployment} differs from revision "
                f"{choice.target_revision}'s; inspect it with kubectl get deployment -o yaml"
            )
        return UndoOutputs(
            changed=True,
            from_revision=choice.current_revision,
            to_revision=choice.target_revision,
            images_before=before,
            images_after=images(target_template),
        )


class WaitParams(Params):
    deployment: str
    interval: PositiveDuration = Field(
        default=2.0, description="Time between two reads of the status."
    )


class WaitOutputs(Outputs):
    revision: int
    replicas: int
    duration: float


def rollout_state(deployment: dict[str, Any]) -> tuple[bool, str]:
    """Return whether the rollout is complete, and what is still missing or what failed."""
    spec, status = deployment.get("spec", {}), deployment.get("status", {}) or {}
    desired = int(spec.get("replicas", 1))
    generation = int(deployment["metadata"].get("generation", 0))
    observed = int(status.get("observedGeneration", 0))
    for condition in status.get("conditions", []) or []:
        if (
            condition.get("type") == "Progressing"
            and condition.get("reason") == "ProgressDeadlineExceeded"
        ):
            raise ActionError(
                f"rollout of {deployment['metadata']['name']} exceeded its progress deadline: "
                f"{condition.get('message') or 'no message'}"
            )
    missing = []
    if observed < generation:
        missing.append(f"observedGeneration {observed} < generation {generation}")
    updated = int(status.get("updatedReplicas", 0) or 0)
    available = int(status.get("availableReplicas", 0) or 0)
    total = int(status.get("replicas", 0) or 0)
    if updated != desired:
        missing.append(f"updated {updated}/{desired}")
    if available != desired:
        missing.append(f"available {available}/{desired}")
    if total != desired:
        missing.append(
            f"{total - updated} old replica(s) still running"
            if total > desired
            else f"replicas {total}/{desired}"
        )
    return not missing, "; ".join(missing)


class K8sRolloutWait(Action[WaitParams, WaitOutputs]):
    name = "k8s.rollout_wait"
    summary = (
        "Wait until a Deployment's rollout is complete: caught up, updated = available = desired."
    )
    params_model: ClassVar[type[Params]] = WaitParams
    outputs_model: ClassVar[type[Outputs]] = WaitOutputs
    mutating = False
    idempotent = True
    default_timeout = 600.0
    enforces_timeout = True

    def plan(self, params: WaitParams, ctx: ActionContext) -> PlanResult:
        client = kube(ctx)
        return PlanResult(
            summary=f"wait up to {ctx.timeout:g} s for the rollout of {params.deployment}",
            target=f"Deployment {params.deployment} ({client.where()})",
            changes=[
                "observedGeneration caught up, updated = available = desired, no ProgressDeadlineExceeded"
            ],
        )

    def run(self, params: WaitParams, ctx: ActionContext) -> WaitOutputs:
        client = kube(ctx)
        started = ctx.clock.monotonic()
        while True:
            deployment = client.deployment(params.deployment)
            done, missing = rollout_state(deployment)
            if done:
                return WaitOutputs(
                    revision=revision_of(deployment),
                    replicas=int(deployment["spec"].get("replicas", 1)),
                    duration=round(ctx.clock.monotonic() - started, 3),
                )
            if ctx.cancelled.is_set():
                raise ActionError(f"stopped waiting for {params.deployment}: the run was aborted")
            if ctx.remaining(started) <= 0:
                raise ActionError(
                    f"rollout of {params.deployment} did not complete in {ctx.timeout:g} s: {missing}",
                    outputs={"missing": missing},
                )
            ctx.progress(f"{params.deployment}: {missing}")
            ctx.clock.sleep(min(float(params.interval), max(0.05, ctx.remaining(started))))


class RestartParams(Params):
    deployment: str


class RestartOutputs(Outputs):
    restarted_at: str


class K8sRestart(Action[RestartParams, RestartOutputs]):
    name = "k8s.restart"
    summary = "Restart a Deployment's pods with a rolling update, as kubectl rollout restart does."
    params_model: ClassVar[type[Params]] = RestartParams
    outputs_model: ClassVar[type[Outputs]] = RestartOutputs
    mutating = True
    idempotent = True

    def plan(self, params: RestartParams, ctx: ActionContext) -> PlanResult:
        client = kube(ctx)
        deployment = client.deployment(params.deployment)
        return PlanResult(
            summary=f"rolling restart of {params.deployment} "
            f"({deployment['spec'].get('replicas', 1)} replica(s))",
            target=f"Deployment {params.deployment} ({client.where()})",
            changes=["set the pod template annotation kubectl.kubernetes.io/restartedAt to now"],
            mutating=True,
        )

    def run(self, params: RestartParams, ctx: ActionContext) -> RestartOutputs:
        client = kube(ctx)
        now = ctx.clock.now().isoformat(timespec="seconds")
        client.patch_deployment(
            params.deployment,
            {
                "spec": {
                    "template": {
                        "metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": now}}
                    }
                }
            },
        )
        return RestartOutputs(restarted_at=now)
