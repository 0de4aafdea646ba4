"""`k8s.capture_logs`: every pod and container of a selector into the evidence store.

Each log is written to its own file with its SHA-256, and a manifest lists them all, so a
post-mortem can show that the evidence is what the cluster served at the time.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, Field

from breakglass.actions.base import Action, ActionContext, Outputs, Params, PlanResult
from breakglass.actions.kubernetes.client import K8sError, Kube, kube
from breakglass.actions.kubernetes.jobs import read_log
from breakglass.config.paths import state_dir
from breakglass.config.redaction import REDACTOR


class CaptureParams(Params):
    selector: str = Field(
        min_length=1, description="Label selector of the pods, as in app=backend."
    )
    previous: bool = Field(
        default=True, description="Also capture restarted containers' previous logs."
    )


class EvidenceFile(BaseModel):
    pod: str
    container: str
    previous: bool
    path: str
    sha256: str
    size: int


class CaptureOutputs(Outputs):
    directory: str
    manifest: str
    files: list[EvidenceFile]


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def evidence_directory(ctx: ActionContext) -> Path:
    root = ctx.work_dir or state_dir(ctx.config.model, ctx.config.base_dir)
    run = ctx.run_id or ctx.clock.now().strftime("manual-%Y%m%dT%H%M%SZ")
    return root / "evidence" / _safe(run) / _safe(ctx.step_id or "logs")


def _pods(client: Kube, selector: str) -> list[dict[str, Any]]:
    listed = client.call(
        f"list pods matching {selector}",
        client.core.list_namespaced_pod,
        client.namespace,
        label_selector=selector,
    )
    return list(listed.get("items", []))


class K8sCaptureLogs(Action[CaptureParams, CaptureOutputs]):
    name = "k8s.capture_logs"
    summary = (
        "Save the logs of every pod and container of a selector as evidence, with SHA-256 digests."
    )
    params_model: ClassVar[type[Params]] = CaptureParams
    outputs_model: ClassVar[type[Outputs]] = CaptureOutputs
    mutating = False
    idempotent = True
    default_timeout = 300.0

    def plan(self, params: CaptureParams, ctx: ActionContext) -> PlanResult:
        client = kube(ctx)
        pods = _pods(client, params.selector)
        containers = sum(len(pod["spec"].get("containers", [])) for pod in pods)
        return PlanResult(
            summary=f"capture the logs of {len(pods)} pod(s), {containers} container(s), matching {params.selector}",
            target=f"pods {params.selector} ({client.where()})",
            changes=[
                f"write them under {evidence_directory(ctx)} with a manifest of SHA-256 digests"
            ],
        )

    def run(self, params: CaptureParams, ctx: ActionContext) -> CaptureOutputs:
        client = kube(ctx)
        directory = evidence_directory(ctx)
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        files: list[EvidenceFile] = []
        for pod in _pods(client, params.selector):
            pod_name = pod["metadata"]["name"]
            restarts = {
                status.get("name"): int(status.get("restartCount", 0))
                for status in (pod.get("status") or {}).get("containerStatuses") or []
            }
            for container in pod["spec"].get("containers", []):
                name = container["name"]
                wanted = [False] + ([True] if params.previous and restarts.get(name, 0) > 0 else [])
                for previous in wanted:
                    try:
                        text = read_log(client, pod_name, name, previous=previous)
                    except K8sError as e:
                        text = f"(log not available: {e.message})\n"
                    body = REDACTOR.redact(text).encode()
                    suffix = ".previous.log" if previous else ".log"
                    path = directory / f"{_safe(pod_name)}.{_safe(name)}{suffix}"
                    path.write_bytes(body)
                    files.append(
                        EvidenceFile(
                            pod=pod_name,
                            container=name,
                            previous=previous,
                            path=str(path),
                            sha256=hashlib.sha256(body).hexdigest(),
                            size=len(body),
                        )
                    )
        manifest = directory / "manifest.json"
        manifest.write_text(
            json.dumps(
                {
                    "selector": params.selector,
                    "where": client.where(),
                    "captured_at": ctx.clock.now().isoformat(),
                    "files": [item.model_dump() for item in files],
                },
                indent=2,
            ),
            encoding="utf-8",
        )
        return CaptureOutputs(directory=str(directory), manifest=str(manifest), files=files)
