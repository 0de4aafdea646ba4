"""A local Kubernetes API server with the controllers rollbacks depend on.

`SandboxCluster` serves kmock's Kubernetes emulator over HTTP on 127.0.0.1 and adds what
kmock leaves out, so that the official `kubernetes` client and breakglass's providers can
be tested against real HTTP without a cluster:

- metadata (`uid`, increasing `resourceVersion`, `creationTimestamp`, `generation` bumped
  when `spec` changes), defaults and the common validation errors;
- label and field selectors on list and watch, PUT, JSON / merge / strategic merge patch,
  `status` and `scale` subresources, resource-version preconditions and dry runs;
- the Deployment and ReplicaSet controllers: revisions, `revision-history`, change-cause,
  pause, history limit, progress deadline and status conditions, with pods for each
  ReplicaSet;
- the kubelet's part for Jobs: the first container's `command` + `args` runs as a local
  process, and its output is the pod log (`container`, `previous`, `tailLines`,
  `limitBytes`);
- HorizontalPodAutoscaler min/max limits, the garbage collector and
  `ttlSecondsAfterFinished`.

Left out: authentication and RBAC, server-side apply, admission webhooks, Services and
networking, scheduling, and list pagination (every list is one page). A rolling update
does not surge step by step: the new ReplicaSet runs at full size next to the old ones
until it is available. autoscaling/v1 and autoscaling/v2 HorizontalPodAutoscalers are stored apart,
so an object created through one version is not served through the other.
"""

from breakglass.sandbox.kubernetes.cluster import HOST, SandboxCluster
from breakglass.sandbox.kubernetes.deployments import (
    CHANGE_CAUSE,
    POD_TEMPLATE_HASH,
    REVISION,
    REVISION_HISTORY,
)
from breakglass.sandbox.kubernetes.emulator import SandboxEmulator
from breakglass.sandbox.kubernetes.errors import ApiError, ObjectNotFoundError, SandboxError
from breakglass.sandbox.kubernetes.kubelet import NEVER_READY, RESTARTS

__all__ = [
    "CHANGE_CAUSE",
    "HOST",
    "NEVER_READY",
    "POD_TEMPLATE_HASH",
    "RESTARTS",
    "REVISION",
    "REVISION_HISTORY",
    "ApiError",
    "ObjectNotFoundError",
    "SandboxCluster",
    "SandboxEmulator",
    "SandboxError",
]
