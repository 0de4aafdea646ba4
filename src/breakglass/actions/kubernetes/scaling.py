"""`k8s.scale`, `k8s.scale_restore` and `k8s.hpa_set_bounds`: capacity, recorded for undo.

A HorizontalPodAutoscaler owns the replica count of its target, so setting a count by
hand fights it. The one exception is zero: an autoscaler leaves a target at zero alone,
which is how maintenance stops a Deployment, and `k8s.scale_restore` gives the count back
for the autoscaler to manage again.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from breakglass.actions.base import Action, ActionContext, ActionError, Outputs, Params, PlanResult
from breakglass.actions.kubernetes.client import Kube, kube

# The count before k8s.scale changed it, kept on the Deployment itself in the same patch,
# so that a scale retried after a crash still has the count to restore.
PREVIOUS_ANNOTATION = "breakglass.dev/replicas-before-scale"


class ScaleParams(Params):
    deployment: str
    replicas: int = Field(ge=0)


class ScaleOutputs(Outputs):
    previous: int
    replicas: int
    autoscaler: str | None


def _autoscaler(client: Kube, deployment: str) -> dict[str, Any] | None:
    found = client.autoscalers_for(deployment)
    return found[0] if found else None


class K8sScale(Action[ScaleParams, ScaleOutputs]):
    name = "k8s.scale"
    summary = (
        "Set a Deployment's replica count, recording the previous count for k8s.scale_restore."
    )
    params_model: ClassVar[type[Params]] = ScaleParams
    outputs_model: ClassVar[type[Outputs]] = ScaleOutputs
    mutating = True
    idempotent = True
    restoring: ClassVar[bool] = False

    def _check(self, client: Kube, params: ScaleParams) -> tuple[int, int, dict[str, Any] | None]:
        """Return the current count, the count to record as previous, and the autoscaler."""
        deployment = client.deployment(params.deployment)
        current = int(deployment["spec"].get("replicas", 1))
        recorded = (deployment["metadata"].get("annotations") or {}).get(PREVIOUS_ANNOTATION)
        previous = current
        if recorded is not None and current == params.replicas and not self.restoring:
            # An earlier attempt of this scale already applied it, so its record contains the count.
            previous = int(recorded)
        autoscaler = _autoscaler(client, params.deployment)
        if autoscaler is not None and params.replicas > 0 and not self.restoring:
            name = autoscaler["metadata"]["name"]
            raise ActionError(
                f"HorizontalPodAutoscaler {name} manages {params.deployment}; setting "
                f"{params.replicas} replicas by hand would fight it. Change its bounds with "
                "k8s.hpa_set_bounds, or scale to 0, which the autoscaler leaves alone"
            )
        return current, previous, autoscaler

    def plan(self, params: ScaleParams, ctx: ActionContext) -> PlanResult:
        client = kube(ctx)
        current, previous, autoscaler = self._check(client, params)
        changes = [f"replicas {current} -> {params.replicas}"]
        if previous != current:
            changes.append(
                f"an earlier attempt recorded {previous} replicas as the count to restore"
            )
        if autoscaler is not None:
            bounds = autoscaler["spec"]
            changes.append(
                f"HorizontalPodAutoscaler {autoscaler['metadata']['name']} "
                f"(min {bounds.get('minReplicas', 1)}, max {bounds.get('maxReplicas')}) "
                + (
                    "manages the count again"
                    if params.replicas
                    else "leaves a Deployment at 0 alone"
                )
            )
        verb = "restore" if self.restoring else "scale"
        return PlanResult(
            summary=f"{verb} {params.deployment} to {params.replicas} replica(s)"
            + (" (no change)" if current == params.replicas else ""),
            target=f"Deployment {params.deployment} ({client.where()})",
            changes=changes,
            mutating=current != params.replicas,
        )

    def run(self, params: ScaleParams, ctx: ActionContext) -> ScaleOutputs:
        client = kube(ctx)
        current, previous, autoscaler = self._check(client, params)
        annotation: str | None = None if self.restoring else str(previous)
        if current != params.replicas or self.restoring:
            client.patch_deployment(
                params.deployment,
                {
                    "metadata": {"annotations": {PREVIOUS_ANNOTATION: annotation}},
                    "spec": {"replicas": params.replicas},
                },
            )
        return ScaleOutputs(
            previous=previous,
            replicas=params.replicas,
            autoscaler=autoscaler["metadata"]["name"] if autoscaler else None,
        )


class K8sScaleRestore(K8sScale):
    name = "k8s.scale_restore"
    summary = (
        "Give a Deployment back the replica count k8s.scale recorded; an autoscaler, if any, "
        "manages it from there."
    )
    restoring = True


class BoundsParams(Params):
    autoscaler: str
    min_replicas: int = Field(ge=1)
    max_replicas: int = Field(ge=1)


class BoundsOutputs(Outputs):
    previous_min: int
    previous_max: int


class K8sHpaSetBounds(Action[BoundsParams, BoundsOutputs]):
    name = "k8s.hpa_set_bounds"
    summary = (
        "Set a HorizontalPodAutoscaler's min and max replicas, recording the old bounds for undo."
    )
    params_model: ClassVar[type[Params]] = BoundsParams
    outputs_model: ClassVar[type[Outputs]] = BoundsOutputs
    mutating = True
    idempotent = True

    def _read(self, client: Kube, params: BoundsParams) -> dict[str, Any]:
        if params.min_replicas > params.max_replicas:
            raise ActionError(
                f"min_replicas {params.min_replicas} is above max_replicas {params.max_replicas}"
            )
        return dict(
            client.call(
                f"read HorizontalPodAutoscaler {params.autoscaler}",
                client.autoscaling.read_namespaced_horizontal_pod_autoscaler,
                params.autoscaler,
                client.namespace,
            )
        )

    def plan(self, params: BoundsParams, ctx: ActionContext) -> PlanResult:
        client = kube(ctx)
        spec = self._read(client, params)["spec"]
        return PlanResult(
            summary=f"set the bounds of HorizontalPodAutoscaler {params.autoscaler}",
            target=f"HorizontalPodAutoscaler {params.autoscaler} ({client.where()})",
            changes=[
                f"minReplicas {spec.get('minReplicas', 1)} -> {params.min_replicas}",
                f"maxReplicas {spec.get('maxReplicas')} -> {params.max_replicas}",
            ],
            mutating=True,
        )

    def run(self, params: BoundsParams, ctx: ActionContext) -> BoundsOutputs:
        client = kube(ctx)
        spec = self._read(client, params)["spec"]
        client.call(
            f"patch HorizontalPodAutoscaler {params.autoscaler}",
            client.autoscaling.patch_namespaced_horizontal_pod_autoscaler,
            params.autoscaler,
            client.namespace,
            {"spec": {"minReplicas": params.min_replicas, "maxReplicas": params.max_replicas}},
        )
        return BoundsOutputs(
            previous_min=int(spec.get("minReplicas", 1)), previous_max=int(spec["maxReplicas"])
        )


class ScaleManyParams(Params):
    deployments: list[str] = Field(
        description="Deployments to scale, for example a database's writers."
    )
    replicas: int = Field(default=0, ge=0)


class ScaleManyOutputs(Outputs):
    previous: dict[str, int]


class K8sScaleMany(Action[ScaleManyParams, ScaleManyOutputs]):
    name = "k8s.scale_many"
    summary = (
        "Scale several Deployments (a database's writers, say), recording each previous count."
    )
    params_model: ClassVar[type[Params]] = ScaleManyParams
    outputs_model: ClassVar[type[Outputs]] = ScaleManyOutputs
    mutating = True
    idempotent = True

    def plan(self, params: ScaleManyParams, ctx: ActionContext) -> PlanResult:
        single = K8sScale()
        changes = []
        for name in params.deployments:
            planned = single.plan(ScaleParams(deployment=name, replicas=params.replicas), ctx)
            changes.append(f"{name}: {planned.changes[0]}")
        return PlanResult(
            summary=f"scale {len(params.deployments)} Deployment(s) to {params.replicas}",
            target=f"Deployments {', '.join(params.deployments)} ({kube(ctx).where()})",
            changes=changes,
            mutating=True,
        )

    def run(self, params: ScaleManyParams, ctx: ActionContext) -> ScaleManyOutputs:
        single = K8sScale()
        previous = {}
        for name in params.deployments:
            done = single.run(ScaleParams(deployment=name, replicas=params.replicas), ctx)
            previous[name] = done.previous
            ctx.note(
                f"scaled {name} from {done.previous} to {params.replicas}", {"deployment": name}
            )
        return ScaleManyOutputs(previous=previous)


class RestoreManyParams(Params):
    replicas: dict[str, int] = Field(
        description="Counts by Deployment, as k8s.scale_many recorded them."
    )


class K8sScaleRestoreMany(Action[RestoreManyParams, ScaleManyOutputs]):
    name = "k8s.scale_restore_many"
    summary = "Give several Deployments back the counts k8s.scale_many recorded."
    params_model: ClassVar[type[Params]] = RestoreManyParams
    outputs_model: ClassVar[type[Outputs]] = ScaleManyOutputs
    mutating = True
    idempotent = True

    def plan(self, params: RestoreManyParams, ctx: ActionContext) -> PlanResult:
        return PlanResult(
            summary=f"restore the replica counts of {len(params.replicas)} Deployment(s)",
            target=f"Deployments {', '.join(params.replicas)} ({kube(ctx).where()})",
            changes=[f"{name}: {count} replica(s)" for name, count in params.replicas.items()],
            mutating=True,
        )

    def run(self, params: RestoreManyParams, ctx: ActionContext) -> ScaleManyOutputs:
        single = K8sScaleRestore()
        previous = {}
        for name, count in params.replicas.items():
            done = single.run(ScaleParams(deployment=name, replicas=count), ctx)
            previous[name] = done.previous
        return ScaleManyOutputs(previous=previous)
