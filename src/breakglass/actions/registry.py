"""Finding actions by name: the built-ins, then third-party ones from entry points.

A third-party package registers an Action subclass under the entry point group
`breakglass.actions`; the entry point's name must equal the action's `name`.
"""

from __future__ import annotations

import difflib
import importlib
import logging
from functools import cache
from importlib.metadata import entry_points
from typing import Any

from breakglass.actions.base import Action
from breakglass.errors import RunbookError

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "breakglass.actions"

# Built-in actions by name, as "module:class", imported only when used so that
# heavy provider clients stay out of commands that do not need them.
BUILTIN: dict[str, str] = {
    "shell.run": "breakglass.actions.shell:ShellRun",
    "http.request": "breakglass.actions.http:HttpRequest",
    "http.check": "breakglass.actions.http:HttpCheck",
    "notify.webhook": "breakglass.actions.http:NotifyWebhook",
    "wait.until": "breakglass.actions.waiting:WaitUntil",
    "log.message": "breakglass.actions.messages:LogMessage",
    "manual": "breakglass.actions.messages:Manual",
    "health.run": "breakglass.actions.health:HealthRun",
    "pg.query": "breakglass.actions.postgres.queries:PgQuery",
    "pg.consistency_check": "breakglass.actions.postgres.queries:PgConsistencyCheck",
    "pg.terminate_connections": "breakglass.actions.postgres.queries:PgTerminateConnections",
    "pg.verify": "breakglass.actions.postgres.queries:PgVerify",
    "aws.cloudfront_invalidate": "breakglass.actions.aws.cloudfront:AwsCloudFrontInvalidate",
    "k8s.rollout_undo": "breakglass.actions.kubernetes.rollout:K8sRolloutUndo",
    "k8s.rollout_wait": "breakglass.actions.kubernetes.rollout:K8sRolloutWait",
    "k8s.restart": "breakglass.actions.kubernetes.rollout:K8sRestart",
    "k8s.scale": "breakglass.actions.kubernetes.scaling:K8sScale",
    "k8s.scale_restore": "breakglass.actions.kubernetes.scaling:K8sScaleRestore",
    "k8s.scale_many": "breakglass.actions.kubernetes.scaling:K8sScaleMany",
    "k8s.scale_restore_many": "breakglass.actions.kubernetes.scaling:K8sScaleRestoreMany",
    "k8s.hpa_set_bounds": "breakglass.actions.kubernetes.scaling:K8sHpaSetBounds",
    "k8s.patch_configmap": "breakglass.actions.kubernetes.configmaps:K8sPatchConfigMap",
    "k8s.run_job": "breakglass.actions.kubernetes.jobs:K8sRunJob",
    "k8s.restore_snapshot": "breakglass.actions.kubernetes.snapshots:K8sRestoreSnapshot",
    "k8s.snapshot_read": "breakglass.actions.kubernetes.snapshots:K8sSnapshotRead",
    "k8s.capture_logs": "breakglass.actions.kubernetes.logs:K8sCaptureLogs",
    "pg.dump": "breakglass.actions.postgres.dump:PgDump",
    "pg.base_backup": "breakglass.actions.postgres.basebackup:PgBaseBackup",
    "pg.server_stop": "breakglass.actions.postgres.server:PgServerStop",
    "pg.server_start": "breakglass.actions.postgres.server:PgServerStart",
    "pg.migrations.current": "breakglass.actions.postgres.migrations:PgMigrationsCurrent",
    "pg.migrations.rollback_to": "breakglass.actions.postgres.migrations:PgMigrationsRollbackTo",
    "pg.migrations.validate": "breakglass.actions.postgres.migrations:PgMigrationsValidate",
    "pg.pitr_restore": "breakglass.actions.postgres.pitr:PgPitrRestore",
    "pg.pitr_undo": "breakglass.actions.postgres.pitr:PgPitrUndo",
    "pg.restore_drill": "breakglass.actions.postgres.drill:PgRestoreDrill",
}


class UnknownActionError(RunbookError):
    pass


@cache
def _third_party() -> dict[str, Any]:
    found: dict[str, Any] = {}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.name in BUILTIN:
            log.warning("ignoring entry point %s: a built-in action has that name", entry.value)
            continue
        found[entry.name] = entry
    return found


def names() -> list[str]:
    return sorted({*BUILTIN, *_third_party()})


@cache
def get_action(name: str) -> Action[Any, Any]:
    """Return the action registered as `name`, or raise naming the closest matches."""
    if name in BUILTIN:
        module_name, _, class_name = BUILTIN[name].partition(":")
        cls = getattr(importlib.import_module(module_name), class_name)
    elif name in _third_party():
        entry = _third_party()[name]
        try:
            cls = entry.load()
        # A third-party package can fail in any way while importing; the runbook must get
        # a finding naming the package, not a traceback.
        except Exception as e:
            raise UnknownActionError(
                f"action {name!r} cannot be loaded from {entry.value}: {type(e).__name__}: {e}",
                hint="check that the package providing it is installed in this environment",
            ) from e
    else:
        close = difflib.get_close_matches(name, names(), n=3)
        hint = f"did you mean {', '.join(close)}?" if close else "`breakglass actions` lists them"
        raise UnknownActionError(f"unknown action {name!r}", hint=hint)
    if not (isinstance(cls, type) and issubclass(cls, Action)) or cls.name != name:
        raise UnknownActionError(
            f"action {name!r} is not registered correctly: the entry point must name an "
            "Action subclass whose `name` is the entry point's name"
        )
    return cls()
