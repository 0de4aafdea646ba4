"""Known-good snapshots and `k8s.restore_snapshot`.

A snapshot records each configured Deployment's pod template and replica count, the
named ConfigMaps, and the database migration head, after a deploy was verified. Rolling
back to it changes only the Deployments whose live template or count differs; the others
get no new revision. Those that differ are restored in parallel, up to a bound, and each
is waited for and reported on its own.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import Field

from breakglass.actions.base import Action, ActionContext, ActionError, Outputs, Params, PlanResult
from breakglass.actions.kubernetes.client import K8sError, K8sNotFoundError, Kube, kube, revision_of
from breakglass.actions.kubernetes.rollout import comparable, images, rollout_state, undo_patch
from breakglass.durations import PositiveDuration
from breakglass.store import snapshots as snapshot_repo


def take_snapshot(ctx: ActionContext) -> dict[str, Any]:
    """Read what the config's snapshot scope names from the cluster (and the database)."""
    client = kube(ctx)
    scope = client.settings.snapshot
    names = scope.deployments
    if not names:
        listed = client.call(
            "list Deployments", client.apps.list_namespaced_deployment, client.namespace
        )
        names = sorted(item["metadata"]["name"] for item in listed.get("items", []))
    deployments = {}
    for name in names:
        live = client.deployment(name)
        deployments[name] = {
            "revision": revision_of(live),
            "replicas": int(live["spec"].get("replicas", 1)),
            "template": comparable(live["spec"]["template"]),
            "images": images(live["spec"]["template"]),
        }
    configmaps = {}
    for name in scope.configmaps:
        found = client.call(
            f"read ConfigMap {name}", client.core.read_namespaced_config_map, name, client.namespace
        )
        configmaps[name] = dict(found.get("data") or {})
    migration = None
    if scope.database is not None:
        migration = {"database": scope.database, "version": live_migration(ctx, scope.database)}
    return {
        "where": client.where(),
        "namespace": client.namespace,
        "deployments": deployments,
        "configmaps": configmaps,
        "migration": migration,
    }


@dataclass
class Difference:
    """The differences between one live Deployment and its snapshot."""

    name: str
    template: bool
    replicas: tuple[int, int] | None
    images: tuple[list[str], list[str]]
    missing: bool = False
    revisions: tuple[int, int] = (0, 0)

    @property
    def changed(self) -> bool:
        return self.missing or self.template or self.replicas is not None

    def describe(self) -> str:
        if self.missing:
            return f"{self.name}: not found in the cluster"
        parts = []
        if self.template:
            parts.append(
                f"revision {self.revisions[0]} -> the snapshot's revision {self.revisions[1]} template, "
                f"images {', '.join(self.images[0])} -> {', '.join(self.images[1])}"
            )
        if self.replicas is not None:
            parts.append(f"replicas {self.replicas[0]} -> {self.replicas[1]}")
        if not parts:
            return f"{self.name}: revision {self.revisions[0]} matches the snapshot"
        return f"{self.name}: " + "; ".join(parts)


def live_migration(ctx: ActionContext, database: str) -> str | None:
    """Read the database's current migration version with its configured tooling."""
    from breakglass.actions.postgres.migrations import CurrentParams, PgMigrationsCurrent

    return PgMigrationsCurrent().run(CurrentParams(database=database), ctx).version


def compare(client: Kube, data: dict[str, Any], *, with_replicas: bool) -> list[Difference]:
    """Compare each Deployment of a snapshot with the live one."""
    found = []
    for name, saved in sorted(data.get("deployments", {}).items()):
        try:
            live = client.deployment(name)
        except K8sNotFoundError:
            found.append(Difference(name, False, None, ([], saved["images"]), missing=True))
            continue
        template_differs = comparable(live["spec"]["template"]) != saved["template"]
        live_replicas = int(live["spec"].get("replicas", 1))
        replicas = None
        if (
            with_replicas
            and live_replicas != saved["replicas"]
            and not client.autoscalers_for(name)
        ):
            replicas = (live_replicas, int(saved["replicas"]))
        found.append(
            Difference(
                name,
                template_differs,
                replicas,
                (images(live["spec"]["template"]), list(saved["images"])),
                revisions=(revision_of(live), int(saved["revision"])),
            )
        )
    return found


def load(ctx: ActionContext, name: str) -> dict[str, Any]:
    if ctx.store is None:
        raise ActionError("snapshots are read from the state store, which this context lacks")
    with ctx.store.read() as connection:
        record = snapshot_repo.get_snapshot(connection, name)
    if record is None:
        raise ActionError(f"no snapshot named {name!r}; list them with `breakglass snapshot list`")
    return record.data


class RestoreParams(Params):
    snapshot: str
    concurrency: int = Field(default=4, ge=1, le=32, description="Deployments restored at once.")
    replicas: bool = Field(
        default=True,
        description="Also restore replica counts (never for a Deployment an autoscaler manages).",
    )
    interval: PositiveDuration = Field(default=2.0, description="Time between two status reads.")


class RestoreOutputs(Outputs):
    changed: list[str]
    unchanged: list[str]
    results: dict[str, str]


class K8sRestoreSnapshot(Action[RestoreParams, RestoreOutputs]):
    name = "k8s.restore_snapshot"
    summary = (
        "Roll back to a known-good snapshot only the Deployments that differ from it, in parallel."
    )
    params_model: ClassVar[type[Params]] = RestoreParams
    outputs_model: ClassVar[type[Outputs]] = RestoreOutputs
    mutating = True
    idempotent = True
    default_timeout = 900.0
    enforces_timeout = True

    def plan(self, params: RestoreParams, ctx: ActionContext) -> PlanResult:
        client = kube(ctx)
        data = load(ctx, params.snapshot)
        differences = compare(client, data, with_replicas=params.replicas)
        changing = [item for item in differences if item.changed]
        warnings = []
        missing = [item.name for item in differences if item.missing]
        if missing:
            raise ActionError(
                f"Deployment(s) {', '.join(missing)} of snapshot {params.snapshot} do not exist in "
                f"namespace {client.namespace}; check kubernetes.namespace"
            )
        if data.get("namespace") != client.namespace:
            warnings.append(
                f"snapshot {params.snapshot} was taken in namespace {data.get('namespace')}, "
                f"not {client.namespace}"
            )
        return PlanResult(
            summary=f"restore {len(changing)} of {len(differences)} Deployment(s) to snapshot "
            f"{params.snapshot}, {params.concurrency} at a time",
            target=f"Deployments of snapshot {params.snapshot} ({client.where()})",
            changes=[item.describe() for item in differences],
            warnings=warnings,
            mutating=bool(changing),
        )

    def run(self, params: RestoreParams, ctx: ActionContext) -> RestoreOutputs:
        client = kube(ctx)
        data = load(ctx, params.snapshot)
        differences = compare(client, data, with_replicas=params.replicas)
        missing = [item.name for item in differences if item.missing]
        if missing:
            raise ActionError(
                f"Deployment(s) {', '.join(missing)} of snapshot {params.snapshot} do not exist; "
                "nothing was changed"
            )
        changing = [item for item in differences if item.changed]
        started = ctx.clock.monotonic()
        lock = threading.Lock()
        results: dict[str, str] = {}
        failures: dict[str, str] = {}

        def restore(item: Difference) -> None:
            saved = data["deployments"][item.name]
            try:
                live = client.deployment(item.name)
                operations: list[dict[str, Any]] = []
                if item.template:
                    operations += undo_patch(
                        saved["template"], live["metadata"].get("resourceVersion")
                    )
                if item.replicas is not None:
                    operations.append(
                        {"op": "replace", "path": "/spec/replicas", "value": saved["replicas"]}
                    )
                client.patch_deployment(item.name, operations)
                self._wait(client, item.name, ctx, started, params)
                outcome = item.describe()
            except (ActionError, K8sError) as e:
                with lock:
                    failures[item.name] = e.message
                    ctx.note(f"{item.name}: restore failed: {e.message}", {"deployment": item.name})
                return
            with lock:
                results[item.name] = outcome
                ctx.note(f"{item.name}: restored ({outcome})", {"deployment": item.name})

        with ThreadPoolExecutor(max_workers=params.concurrency) as pool:
            list(pool.map(restore, changing))
        unchanged = [item.name for item in differences if not item.changed]
        if failures:
            shown = "; ".join(f"{name}: {reason}" for name, reason in sorted(failures.items()))
            raise ActionError(
                f"{len(failures)} of {len(changing)} Deployment(s) failed to restore: {shown}",
                outputs={"changed": sorted(results), "unchanged": unchanged, "results": results},
            )
        return RestoreOutputs(changed=sorted(results), unchanged=unchanged, results=results)

    def _wait(
        self, client: Kube, name: str, ctx: ActionContext, started: float, params: RestoreParams
    ) -> None:
        while True:
            done, missing = rollout_state(client.deployment(name))
            if done:
                return
            if ctx.cancelled.is_set():
                raise ActionError("the run was aborted")
            if ctx.remaining(started) <= 0:
                raise ActionError(f"rollout did not complete in time: {missing}")
            ctx.clock.sleep(min(float(params.interval), max(0.05, ctx.remaining(started))))


class ReadParams(Params):
    snapshot: str


class ReadOutputs(Outputs):
    migration_version: str | None
    revisions: dict[str, int]
    replicas: dict[str, int]
    images: dict[str, list[str]]


class K8sSnapshotRead(Action[ReadParams, ReadOutputs]):
    name = "k8s.snapshot_read"
    summary = "Read a known-good snapshot: its migration version and each Deployment's revision and images."
    params_model: ClassVar[type[Params]] = ReadParams
    outputs_model: ClassVar[type[Outputs]] = ReadOutputs
    mutating = False
    idempotent = True

    def plan(self, params: ReadParams, ctx: ActionContext) -> PlanResult:
        data = load(ctx, params.snapshot)
        migration = data.get("migration") or {}
        return PlanResult(
            summary=f"read snapshot {params.snapshot}",
            target=f"snapshot {params.snapshot} ({data.get('where', 'unknown cluster')})",
            changes=[f"migration version: {migration.get('version', 'not recorded')}"],
        )

    def run(self, params: ReadParams, ctx: ActionContext) -> ReadOutputs:
        data = load(ctx, params.snapshot)
        deployments = data.get("deployments", {})
        return ReadOutputs(
            migration_version=(data.get("migration") or {}).get("version"),
            revisions={name: int(item["revision"]) for name, item in deployments.items()},
            replicas={name: int(item["replicas"]) for name, item in deployments.items()},
            images={name: list(item["images"]) for name, item in deployments.items()},
        )
