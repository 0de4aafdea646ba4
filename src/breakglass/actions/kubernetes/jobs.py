"""`k8s.run_job`: a one-off Job from a Deployment's current image and environment.

Migrations and other release-bound commands must run with the code of the release that
contains them. The Job copies the container's image, environment, environment sources,
service account and image pull secrets from the Deployment's live pod template, and runs
the given argv instead of the container's command.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any, ClassVar

from pydantic import Field

from breakglass.actions.base import Action, ActionContext, ActionError, Outputs, Params, PlanResult
from breakglass.actions.kubernetes.client import K8sError, Kube, kube
from breakglass.config.redaction import REDACTOR
from breakglass.durations import PositiveDuration

LOG_LIMIT_BYTES = 64 * 1024
MAX_NAME = 63


class JobParams(Params):
    deployment: str
    argv: list[str] = Field(
        min_length=1, description="Command run in the Job's container, as argv."
    )
    container: str | None = Field(
        default=None, description="Container to copy. Default: the first."
    )
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment variables.")
    name: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        description="Job name. Default: DEPLOYMENT-bg-RUN.",
    )
    interval: PositiveDuration = Field(
        default=1.0, description="Time between two reads of the Job."
    )


class JobOutputs(Outputs):
    job: str
    pod: str | None
    exit_code: int | None
    logs: str
    duration: float


def job_name(params: JobParams, ctx: ActionContext) -> str:
    if params.name:
        return params.name
    tag = (ctx.run_id or ctx.clock.now().strftime("%Y%m%d%H%M%S")).lower()
    step = (ctx.step_id or "job").lower()
    base = re.sub(r"[^a-z0-9-]+", "-", f"{params.deployment}-{step}-{tag}").strip("-")
    return base[:MAX_NAME].rstrip("-")


def job_manifest(
    deployment: dict[str, Any], params: JobParams, name: str, deadline: float
) -> dict[str, Any]:
    """Build the Job from the Deployment's pod template; raise if the container is unknown."""
    pod_spec = deployment["spec"]["template"]["spec"]
    containers = pod_spec.get("containers", [])
    wanted = params.container
    chosen = next((c for c in containers if wanted is None or c.get("name") == wanted), None)
    if chosen is None:
        names = ", ".join(c.get("name", "?") for c in containers) or "none"
        raise ActionError(
            f"Deployment {params.deployment} has no container {wanted!r}; its containers are {names}"
        )
    env = [item for item in chosen.get("env", []) if item.get("name") not in params.env]
    env += [{"name": key, "value": value} for key, value in sorted(params.env.items())]
    container = {
        "name": chosen.get("name", "job"),
        "image": chosen["image"],
        "command": list(params.argv),
        "env": env,
    }
    for copied in ("envFrom", "workingDir", "volumeMounts", "resources"):
        if copied in chosen:
            container[copied] = chosen[copied]
    spec: dict[str, Any] = {"restartPolicy": "Never", "containers": [container]}
    for copied in ("serviceAccountName", "imagePullSecrets", "volumes", "securityContext"):
        if copied in pod_spec:
            spec[copied] = pod_spec[copied]
    labels = {
        "app.kubernetes.io/managed-by": "breakglass",
        "breakglass.dev/deployment": params.deployment,
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": max(1, int(deadline)),
            "ttlSecondsAfterFinished": 86400,
            "template": {"metadata": {"labels": labels}, "spec": spec},
        },
    }


def job_state(job: dict[str, Any]) -> str | None:
    """Return "Complete" or "Failed" once the Job has finished, else None."""
    status = job.get("status") or {}
    for condition in status.get("conditions") or []:
        if condition.get("type") in ("Complete", "Failed") and condition.get("status") == "True":
            return str(condition["type"])
    if status.get("succeeded"):
        return "Complete"
    if status.get("failed"):
        return "Failed"
    return None


def pod_of(client: Kube, job: str) -> dict[str, Any] | None:
    listed = client.call(
        f"list the pods of Job {job}",
        client.core.list_namespaced_pod,
        client.namespace,
        label_selector=f"job-name={job}",
    )
    items = listed.get("items", [])
    return items[-1] if items else None


def read_log(client: Kube, pod: str, container: str | None = None, previous: bool = False) -> str:
    kwargs: dict[str, Any] = {"previous": previous}
    if container:
        kwargs["container"] = container
    try:
        response: Any = client.core.read_namespaced_pod_log(
            pod, client.namespace, _preload_content=False, _request_timeout=client.timeout, **kwargs
        )
    except Exception as e:  # the client raises ApiException or urllib3 errors
        raise K8sError(f"cannot read the log of pod {pod} ({client.where()}): {e}") from None
    return bytes(response.data).decode(errors="replace")


def exit_code(pod: dict[str, Any] | None) -> int | None:
    if pod is None:
        return None
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        terminated = (status.get("state") or {}).get("terminated")
        if terminated is not None:
            return int(terminated.get("exitCode", 0))
    return None


class K8sRunJob(Action[JobParams, JobOutputs]):
    name = "k8s.run_job"
    summary = (
        "Run argv in a one-off Job from a Deployment's current image and environment; wait for it."
    )
    params_model: ClassVar[type[Params]] = JobParams
    outputs_model: ClassVar[type[Outputs]] = JobOutputs
    mutating = True
    idempotent = False
    default_timeout = 900.0
    enforces_timeout = True

    def plan(self, params: JobParams, ctx: ActionContext) -> PlanResult:
        client = kube(ctx)
        deployment = client.deployment(params.deployment)
        manifest = job_manifest(deployment, params, job_name(params, ctx), ctx.timeout)
        container = manifest["spec"]["template"]["spec"]["containers"][0]
        return PlanResult(
            summary=f"run {params.argv} in Job {manifest['metadata']['name']} with {params.deployment}'s image",
            target=f"Deployment {params.deployment} ({client.where()})",
            changes=[
                f"image {container['image']} (container {container['name']})",
                f"environment: {len(container['env'])} variable(s)"
                + (", plus envFrom sources" if "envFrom" in container else ""),
                f"wait up to {ctx.timeout:g} s for it to finish, then read its log",
            ],
            mutating=True,
        )

    def run(self, params: JobParams, ctx: ActionContext) -> JobOutputs:
        return run_job(kube(ctx), params, ctx)


def run_job(client: Kube, params: JobParams, ctx: ActionContext) -> JobOutputs:
    """Create the Job, wait until it finishes, and return its exit code and log."""
    started = ctx.clock.monotonic()
    deployment = client.deployment(params.deployment)
    name = job_name(params, ctx)
    manifest = job_manifest(deployment, params, name, ctx.timeout)
    client.call(
        f"create Job {name}", client.batch.create_namespaced_job, client.namespace, manifest
    )
    ctx.note(f"created Job {name} from {params.deployment}'s image", {"job": name})
    while True:
        job = client.call(
            f"read Job {name}", client.batch.read_namespaced_job, name, client.namespace
        )
        state = job_state(job)
        if state is not None:
            break
        if ctx.cancelled.is_set() or ctx.remaining(started) <= 0:
            why = (
                "the run was aborted"
                if ctx.cancelled.is_set()
                else f"it did not finish in {ctx.timeout:g} s"
            )
            _delete(client, name)
            raise ActionError(f"Job {name} was deleted: {why}")
        ctx.clock.sleep(min(float(params.interval), max(0.05, ctx.remaining(started))))
    pod = pod_of(client, name)
    logs = read_log(client, pod["metadata"]["name"]) if pod else ""
    logs = REDACTOR.redact(logs[-LOG_LIMIT_BYTES:])
    code = exit_code(pod)
    outputs = JobOutputs(
        job=name,
        pod=pod["metadata"]["name"] if pod else None,
        exit_code=code,
        logs=logs,
        duration=round(ctx.clock.monotonic() - started, 3),
    )
    if state != "Complete":
        tail = "\n".join(logs.strip().splitlines()[-15:])
        raise ActionError(
            f"Job {name} failed (exit {code if code is not None else 'unknown'}):\n{tail}",
            outputs=outputs.model_dump(),
        )
    return outputs


def _delete(client: Kube, name: str) -> None:
    with contextlib.suppress(K8sError):
        client.call(
            f"delete Job {name}",
            client.batch.delete_namespaced_job,
            name,
            client.namespace,
            propagation_policy="Background",
        )
