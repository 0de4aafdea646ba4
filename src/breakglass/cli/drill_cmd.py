"""`breakglass drill ...`: exercises that prove a recovery works before it is needed."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from breakglass.cli import state as cli_state
from breakglass.cli.options import OutputOption
from breakglass.cli.output import OutputFormat, print_json
from breakglass.cli.run_cmd import (
    InputOption,
    InputsFileOption,
    YesDestructiveOption,
    YesOption,
)
from breakglass.errors import UserInputError

if TYPE_CHECKING:
    from breakglass.engine.executor import RunOutcome
    from breakglass.engine.workspace import Workspace

app = typer.Typer(help="Run recovery drills.", no_args_is_help=True)

DB_RESTORE_RUNBOOK = "db-restore-drill"


def _drill_name(runbook: str, explicit: str | None = None, fallback: str | None = None) -> str:
    """Return the scheduled drill a run of `runbook` counts as: the first that names it."""
    if explicit:
        return explicit
    schedule = cli_state.STATE.workspace().config.model.drills.schedule
    return next((item.name for item in schedule if item.runbook == runbook), fallback or runbook)


def _record(
    outcome: RunOutcome,
    runner: Workspace,
    *,
    name: str,
    runbook: str,
    started: datetime,
    details: dict[str, Any],
) -> None:
    """Record the drill in the live config's store, with the run's timings from its journal."""
    from breakglass.engine import service
    from breakglass.store import drills as drill_repo
    from breakglass.store.records import EntryKind, RunState

    workspace = cli_state.STATE.workspace()
    finished = workspace.clock.now()
    timings: dict[str, float] = {}
    for entry in service.journal_of(runner, outcome.run_id):
        if entry.kind == EntryKind.STEP_ENDED and entry.step_id and entry.duration is not None:
            timings[entry.step_id] = round(timings.get(entry.step_id, 0.0) + entry.duration, 3)
    details = {
        **details,
        "state": outcome.state.value,
        "duration_seconds": round((finished - started).total_seconds(), 3),
        "step_seconds": timings,
    }
    with workspace.store.write() as connection:
        drill_repo.add_drill(
            connection,
            name=name,
            runbook=runbook,
            run_id=outcome.run_id,
            result="succeeded" if outcome.state == RunState.SUCCEEDED else "failed",
            details=details,
            started_at=started,
            finished_at=finished,
            actor=workspace.actor,
        )


@app.command("db-restore")
def db_restore(
    database: Annotated[str, typer.Argument(help="A database under `databases:` in the config.")],
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Restore the latest base backup and WAL into a scratch cluster; record RTO and RPO.

    The live cluster and its WAL archive are never written: the copy runs on its own
    port with archiving off and a restore_command that only reads. The run is recorded
    as a drill, which `breakglass drill list` shows.
    """
    from breakglass.cli import run_cmd
    from breakglass.engine import service

    workspace = cli_state.STATE.workspace()
    bus, display, console = run_cmd._bus(output)
    started = workspace.clock.now()
    outcome = service.start_run(
        workspace,
        DB_RESTORE_RUNBOOK,
        {"database": database},
        options=run_cmd._options(False, None, False, 600.0),
        interaction=run_cmd._interaction(console, display),
        bus=bus,
    )
    details: dict[str, Any] = {"database": database, "environment": "live, read-only"}
    for entry in service.journal_of(workspace, outcome.run_id):
        outputs = (entry.data or {}).get("outputs")
        if entry.step_id == "drill" and isinstance(outputs, dict):
            details.update(
                {
                    key: outputs.get(key)
                    for key in ("rto_seconds", "rpo_seconds", "backup", "checks_passed")
                }
            )
    _record(
        outcome,
        workspace,
        name=_drill_name(DB_RESTORE_RUNBOOK, fallback="database-restore"),
        runbook=DB_RESTORE_RUNBOOK,
        started=started,
        details=details,
    )
    run_cmd._report(outcome, output)


def _drill_config(sandbox: bool, directory: Path | None) -> tuple[Path, str]:
    """Return the config a drill runs against, and whether it is the sandbox or staging."""
    workspace = cli_state.STATE.workspace()
    if sandbox:
        from breakglass.cli.sandbox_cmd import sandbox_dir
        from breakglass.sandbox.platform import status

        target = sandbox_dir(directory)
        found = status(target)
        if found is None or not found["up"]:
            raise UserInputError(
                f"no sandbox is up in {target}",
                hint="start one with `breakglass sandbox up`"
                + (f" --dir {target}" if directory is not None else ""),
            )
        return Path(found["config"]), "sandbox"
    if directory is not None:
        raise UserInputError("--dir names a sandbox; pass it with --sandbox")
    staging = workspace.config.model.drills.staging_config
    if staging is None:
        raise UserInputError(
            "no staging config to drill against, and drills never run against the live config",
            hint="set drills.staging_config in the config, or pass --sandbox",
        )
    path = staging.expanduser()
    if not path.is_absolute():
        path = workspace.config.base_dir / path
    if not path.is_file():
        raise UserInputError(
            f"drills.staging_config {path} does not exist",
            hint="point drills.staging_config at the staging platform's breakglass.yaml",
        )
    live = workspace.config.path
    if live is not None and path.resolve() == live.resolve():
        raise UserInputError(
            f"drills.staging_config {path} is the live config",
            hint="drills run against a staging config or the sandbox, never the live platform",
        )
    return path, "staging"


def _refuse_live_targets(runner: Workspace, environment: str) -> None:
    """Refuse a staging config that shares a target or the state store with the live one."""
    live = cli_state.STATE.workspace()
    shared: list[str] = []
    if runner.state_url == live.state_url:
        shared.append(f"state store {runner.state_url}")
    live_k8s, drill_k8s = live.config.model.kubernetes, runner.config.model.kubernetes
    if live_k8s and drill_k8s and live_k8s.server and live_k8s.server == drill_k8s.server:
        shared.append(f"Kubernetes API server {live_k8s.server}")
    live_databases = {
        f"{db.host}:{db.port}/{db.dbname}": name for name, db in live.config.model.databases.items()
    }
    for name, db in runner.config.model.databases.items():
        where = f"{db.host}:{db.port}/{db.dbname}"
        if where in live_databases:
            shared.append(f"database {where} ({name})")
    if shared:
        raise UserInputError(
            f"the {environment} config shares targets with the live config: " + "; ".join(shared),
            hint="a drill must not touch the live platform; give staging its own targets",
        )


@app.command("run")
def run(
    runbook: Annotated[str, typer.Argument(help="The runbook to drill, by name or path.")],
    inputs: InputOption = None,
    inputs_file: InputsFileOption = None,
    sandbox: Annotated[
        bool,
        typer.Option("--sandbox", help="Run against the sandbox (`breakglass sandbox up`)."),
    ] = False,
    directory: Annotated[
        Path | None,
        typer.Option(
            "--dir", help="The sandbox directory, with --sandbox (default: STATE_DIR/sandbox)."
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(
            "--name", help="The scheduled drill this counts as (default: the one running RUNBOOK)."
        ),
    ] = None,
    yes: YesOption = False,
    yes_destructive: YesDestructiveOption = None,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Run a runbook as a drill against staging or the sandbox; record its result and timings.

    Without --sandbox the drill runs against `drills.staging_config`, never the live
    config: one that is the live config, or shares its state store, Kubernetes API server
    or a database with it, is refused. The record goes into the live config's store,
    where `drill list` and `doctor` read it.
    """
    from breakglass.cli import run_cmd
    from breakglass.engine import service
    from breakglass.engine.workspace import Workspace

    config_path, environment = _drill_config(sandbox, directory)
    workspace = cli_state.STATE.workspace()
    runner = Workspace.load(config_path=str(config_path), actor=workspace.actor)
    if environment == "staging":
        _refuse_live_targets(runner, environment)
    drill = _drill_name(runbook, name)
    typer.echo(
        f"drill {drill}: {runbook} against the {environment} config {config_path}",
        err=output == OutputFormat.JSON,
    )
    bus, display, console = run_cmd._bus(output)
    started = workspace.clock.now()
    outcome = service.start_run(
        runner,
        runbook,
        run_cmd._gather_inputs(inputs, inputs_file),
        options=run_cmd._options(yes, yes_destructive, False, 600.0),
        interaction=run_cmd._interaction(console, display),
        bus=bus,
    )
    _record(
        outcome,
        runner,
        name=drill,
        runbook=runbook,
        started=started,
        details={"environment": environment, "config": str(config_path)},
    )
    run_cmd._report(outcome, output)


def due_rows(now: datetime) -> list[dict[str, Any]]:
    """Return each scheduled drill with its last run and when it is due next."""
    from breakglass.engine.doctor import drill_status

    return [
        {
            "name": drill.name,
            "runbook": drill.runbook,
            "every_days": round(drill.every / 86400, 1),
            "last_run": drill.last_run,
            "last_run_id": drill.last_run_id,
            "next_due": drill.next_due,
            "overdue": drill.overdue(now),
        }
        for drill in drill_status(cli_state.STATE.workspace())
    ]


@app.command("list")
def list_(output: OutputOption = OutputFormat.TEXT) -> None:
    """List the scheduled drills with their last successful run and when each is next due."""
    workspace = cli_state.STATE.workspace()
    rows = due_rows(workspace.clock.now())
    if output == OutputFormat.JSON:
        print_json(rows)
        return
    for row in rows:
        last = row["last_run"].isoformat(timespec="seconds") if row["last_run"] else "never"
        if row["next_due"] is None:
            due = "due now (never run)"
        else:
            due = ("OVERDUE since " if row["overdue"] else "next due ") + row["next_due"].isoformat(
                timespec="seconds"
            )
        runbook = row["runbook"] or "by hand"
        typer.echo(
            f"{row['name']:<22} every {row['every_days']:g} d  ({runbook})  last {last}  {due}"
        )
