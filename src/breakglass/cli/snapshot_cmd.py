"""`breakglass snapshot ...`: known-good snapshots of the platform to roll back to."""

from __future__ import annotations

import re
from typing import Annotated, Any

import typer

from breakglass.cli import state as cli_state
from breakglass.cli.options import OutputOption
from breakglass.cli.output import OutputFormat, print_json
from breakglass.errors import ExitCode, NotFoundError, TargetUnreachableError, UserInputError

app = typer.Typer(help="Record and compare known-good snapshots.", no_args_is_help=True)

NameArgument = Annotated[str, typer.Argument(help="The snapshot's name, as in release-2.4.0.")]


def _context() -> Any:
    from breakglass.actions.base import ActionContext

    workspace = cli_state.STATE.workspace()
    return workspace, ActionContext(
        config=workspace.config,
        actor=workspace.actor,
        clock=workspace.clock,
        store=workspace.store,
        timeout=120.0,
    )


def _action_error(error: Exception) -> Exception:
    from breakglass.actions.base import ActionError

    if isinstance(error, ActionError):
        if error.unreachable:
            return TargetUnreachableError(error.message)
        return UserInputError(error.message)
    return error


@app.command()
def create(
    name: NameArgument,
    note: Annotated[
        str | None, typer.Option("--note", help="Why this state is known good.")
    ] = None,
    replace: Annotated[
        bool, typer.Option("--replace", help="Overwrite a snapshot of that name.")
    ] = False,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Record every configured Deployment's template and replicas, ConfigMaps and migration head."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", name):
        raise UserInputError(
            f"invalid snapshot name {name!r}: use letters, digits, '.', '_' and '-', as in release-2.4.0"
        )
    from breakglass.actions.base import ActionError
    from breakglass.actions.kubernetes.snapshots import take_snapshot
    from breakglass.store import snapshots as snapshot_repo

    workspace, ctx = _context()
    try:
        data = take_snapshot(ctx)
    except ActionError as e:
        raise _action_error(e) from None
    with workspace.store.write() as connection:
        saved = snapshot_repo.save_snapshot(
            connection,
            name=name,
            data=data,
            note=note,
            actor=workspace.actor,
            now=workspace.clock.now(),
            replace=replace,
        )
    if not saved:
        raise UserInputError(
            f"a snapshot named {name!r} exists; choose another name or pass --replace"
        )
    if output == OutputFormat.JSON:
        print_json({"name": name, **data})
        return
    typer.echo(
        f"snapshot {name}: {len(data['deployments'])} Deployment(s), {len(data['configmaps'])} ConfigMap(s)"
    )
    for deployment, saved_state in sorted(data["deployments"].items()):
        typer.echo(
            f"  {deployment}: revision {saved_state['revision']}, {saved_state['replicas']} replica(s), "
            f"{', '.join(saved_state['images'])}"
        )
    if data.get("migration"):
        typer.echo(
            f"  migrations of {data['migration']['database']}: {data['migration']['version']}"
        )


@app.command("list")
def list_(output: OutputOption = OutputFormat.TEXT) -> None:
    """List the snapshots, newest first."""
    from breakglass.store import snapshots as snapshot_repo

    workspace = cli_state.STATE.workspace()
    with workspace.store.read() as connection:
        records = snapshot_repo.list_snapshots(connection)
    if output == OutputFormat.JSON:
        print_json(
            [
                {
                    "name": r.name,
                    "created_at": r.created_at,
                    "created_by": r.created_by,
                    "note": r.note,
                }
                for r in records
            ]
        )
        return
    if not records:
        typer.echo("no snapshots yet; record one with `breakglass snapshot create NAME`")
        return
    for record in records:
        deployments = len(record.data.get("deployments", {}))
        note = f" ({record.note})" if record.note else ""
        typer.echo(
            f"{record.name}  {record.created_at.isoformat(timespec='seconds')}  by {record.created_by}  "
            f"{deployments} Deployment(s){note}"
        )


@app.command()
def show(name: NameArgument, output: OutputOption = OutputFormat.TEXT) -> None:
    """Show what a snapshot recorded."""
    from breakglass.store import snapshots as snapshot_repo

    workspace = cli_state.STATE.workspace()
    with workspace.store.read() as connection:
        record = snapshot_repo.get_snapshot(connection, name)
    if record is None:
        raise NotFoundError(
            f"no snapshot named {name!r}; list them with `breakglass snapshot list`"
        )
    if output == OutputFormat.JSON:
        print_json(record.model_dump())
        return
    typer.echo(
        f"snapshot {record.name}, taken {record.created_at.isoformat(timespec='seconds')} by {record.created_by}"
    )
    typer.echo(f"  where: {record.data.get('where')}")
    for deployment, saved in sorted(record.data.get("deployments", {}).items()):
        typer.echo(
            f"  {deployment}: revision {saved['revision']}, {saved['replicas']} replica(s), {', '.join(saved['images'])}"
        )
    for configmap, data in sorted(record.data.get("configmaps", {}).items()):
        typer.echo(f"  ConfigMap {configmap}: {len(data)} key(s)")
    if record.data.get("migration"):
        migration = record.data["migration"]
        typer.echo(f"  migrations of {migration['database']}: {migration['version']}")


@app.command()
def diff(name: NameArgument, output: OutputOption = OutputFormat.TEXT) -> None:
    """Compare a snapshot with the live cluster and database; exit 1 when anything differs."""
    from breakglass.actions.base import ActionError
    from breakglass.actions.kubernetes.client import kube
    from breakglass.actions.kubernetes.snapshots import compare, live_migration, load

    _, ctx = _context()
    try:
        data = load(ctx, name)
        client = kube(ctx)
        differences = compare(client, data, with_replicas=True)
        live_configmaps = {}
        for configmap in data.get("configmaps", {}):
            found = client.call(
                f"read ConfigMap {configmap}",
                client.core.read_namespaced_config_map,
                configmap,
                client.namespace,
            )
            live_configmaps[configmap] = dict(found.get("data") or {})
        recorded = data.get("migration")
        migration_change = None
        if recorded:
            live = live_migration(ctx, recorded["database"])
            if live != recorded["version"]:
                migration_change = (
                    f"migrations of {recorded['database']}: {live} -> the snapshot's "
                    f"{recorded['version']}"
                )
    except ActionError as e:
        raise _action_error(e) from None
    # NOTE: k8s.restore_snapshot does not restore ConfigMaps; they are only compared.
    configmap_changes = [
        f"ConfigMap {configmap}: {key} {live_configmaps[configmap].get(key)!r} -> the "
        f"snapshot's {saved.get(key)!r}"
        for configmap, saved in sorted(data.get("configmaps", {}).items())
        for key in sorted(set(saved) | set(live_configmaps[configmap]))
        if saved.get(key) != live_configmaps[configmap].get(key)
    ]
    changed = [item for item in differences if item.changed]
    if output == OutputFormat.JSON:
        print_json(
            {
                "snapshot": name,
                "deployments": {item.name: item.describe() for item in differences},
                "configmaps": configmap_changes,
                "migration": migration_change,
                "differs": bool(changed or configmap_changes or migration_change),
            }
        )
    else:
        typer.echo(f"live cluster against snapshot {name} ({client.where()}):")
        for item in differences:
            mark = "~" if item.changed else "="
            typer.echo(f"  {mark} {item.describe()}")
        for line in configmap_changes:
            typer.echo(f"  ~ {line}")
        if migration_change:
            typer.echo(f"  ~ {migration_change}")
        elif recorded:
            typer.echo(f"  = migrations of {recorded['database']}: {recorded['version']}")
    if changed or configmap_changes or migration_change:
        raise typer.Exit(int(ExitCode.FAILED))
