"""The Kubernetes cluster in the platform config: how to reach it and what a snapshot covers."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from breakglass.durations import PositiveDuration


class SnapshotScope(BaseModel):
    """The objects `breakglass snapshot create` records besides the database migration head."""

    model_config = ConfigDict(extra="forbid")

    deployments: list[str] = Field(
        default_factory=list,
        description="Deployments whose pod template and replicas are recorded.",
    )
    configmaps: list[str] = Field(
        default_factory=list, description="ConfigMaps whose data is recorded."
    )
    database: str | None = Field(
        default=None, description="A database under `databases:` whose migration head is recorded."
    )


class KubernetesConfig(BaseModel):
    """One cluster breakglass acts on, through a kubeconfig context or from inside a pod."""

    model_config = ConfigDict(extra="forbid")

    kubeconfig: Path | None = Field(
        default=None,
        description="The kubeconfig file. Default: $KUBECONFIG, else ~/.kube/config. Ignored with in_cluster.",
    )
    context: str | None = Field(
        default=None, description="The kubeconfig context. Default: the file's current context."
    )
    in_cluster: bool = Field(
        default=False, description="Use the pod's service account instead of a kubeconfig."
    )
    server: str | None = Field(
        default=None,
        description=(
            "The API server URL the context must point at. A run refuses when the kubeconfig "
            "resolves to another server, so a stale context never acts on the wrong cluster."
        ),
    )
    namespace: str = Field(default="default", description="Namespace of the platform's objects.")
    request_timeout: PositiveDuration = Field(
        default=15.0, description="Deadline of each API request."
    )
    snapshot: SnapshotScope = Field(default_factory=SnapshotScope)

    @model_validator(mode="after")
    def _one_source(self) -> KubernetesConfig:
        if self.in_cluster and (self.kubeconfig or self.context):
            raise ValueError("kubernetes: give in_cluster or kubeconfig/context, not both")
        return self
