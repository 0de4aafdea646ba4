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


def _drill_name(
    runbook: str,
    explicit: str | None = None,
    fallback: str | None = None,
    loaded_name: str | None = None,
) -> str:
    """Return the scheduled drill a run of `runbook` counts as: the first that names it."""
    if explicit:
        return explicit
    schedule = cli_state.STATE.workspace().config.model.drills.schedule
    names = {runbook, loaded_name or runbook}
    return next((item.name for item in schedule if item.runbook in names), fallback or runbook)


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
    from breakglass.store.records import EntryKind

    workspace = cli_state.STATE.workspace()
    finished = workspace.clock.now()
    # A list of [step, seconds] in the order the steps ran, because a mapping would be
    # sorted when stored as JSON.
    timings: list[list[Any]] = []
    for entry in service.journal_of(runner, outcome.run_id):
        if entry.kind == EntryKind.STEP_ENDED and entry.step_id and entry.duration is not None:
            timings.append([entry.step_id, round(entry.duration, 3)])
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
            # Only "succeeded" counts as the drill's last run. Any other state is kept as is.
            result=outcome.state.value,
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
        where = f" --dir {target}" if directory is not None else ""
        if found is None:
            raise UserInputError(
                f"no sandbox is up in {target}",
                hint=f"start one with `breakglass sandbox up{where}`",
            )
        if not found["up"]:
            raise UserInputError(
                f"the sandbox in {target} is not fully running",
                hint=f"restart it with `breakglass sandbox down{where}`, then "
                f"`breakglass sandbox up{where}`; `breakglass sandbox status{where}` shows "
                "what stopped",
            )
        return Path(found["config"]), "sandbox"
    if directory is not None:
        raise UserInputError("--dir names a sandbox; pass it with --sandbox")
    from breakglass.engine.drills import staging_config

    path, problem = staging_config(workspace)
    if path is None:
        raise UserInputError(
            "no staging config to drill against, and drills never run against the live config",
            hint="set drills.staging_config in the config, or pass --sandbox",
        )
    if problem is not None:
        raise UserInputError(
            f"invalid drills.staging_config: {problem}",
            hint="point drills.staging_config at the staging platform's breakglass.yaml; "
            "drills run against a staging config or the sandbox, never the live platform",
        )
    return path, "staging"


def _reject_live_targets(runner: Workspace, environment: str) -> None:
    """Reject a drill config that shares the state store or a target with the live one."""
    from breakglass.engine.drills import shared_targets

    shared = shared_targets(cli_state.STATE.workspace(), runner)
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
    config. A config that is the live one is rejected, and so is one that shares its state
    store, Kubernetes API server or a PostgreSQL cluster. The record goes into the live
    config's store, where `drill list`, `drill history` and `doctor` read it.
    """
    from breakglass.cli import run_cmd
    from breakglass.engine import service
    from breakglass.engine.workspace import Workspace
    from breakglass.store.records import RunState

    config_path, environment = _drill_config(sandbox, directory)
    workspace = cli_state.STATE.workspace()
    runner = Workspace.load(config_path=str(config_path), actor=workspace.actor)
    _reject_live_targets(runner, environment)
    schedule = {item.name: item for item in workspace.config.model.drills.schedule}
    scheduled = set(schedule)
    if name is not None and name not in scheduled:
        raise UserInputError(
            f"no scheduled drill is named {name!r}",
            hint="scheduled drills: "
            + (", ".join(sorted(scheduled)) or "none")
            + " (drills.schedule in the config)",
        )
    # A drill counts for its schedule only when it ran that schedule's runbook, but a
    # drill done by hand (no runbook) accepts any. Loading also reports an unknown runbook first.
    loaded_name = service.load_and_lint(runner, runbook).runbook.name
    if name is not None and schedule[name].runbook not in (None, runbook, loaded_name):
        raise UserInputError(
            f"the scheduled drill {name!r} runs {schedule[name].runbook}, not {runbook}",
            hint=f"run `breakglass drill run {schedule[name].runbook}`, or name a drill of {runbook}",
        )
    drill = _drill_name(runbook, name, loaded_name=loaded_name)
    if drill not in scheduled:
        typer.echo(
            f"warning: no scheduled drill runs {runbook}, so this drill is recorded as {drill!r} "
            "and counts for no schedule; pass --name DRILL to count it for one",
            err=True,
        )
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
        open_declared_incident=False,
    )
    _record(
        outcome,
        runner,
        name=drill,
        runbook=runbook,
        started=started,
        details={"environment": environment, "config": str(config_path)},
    )
    if outcome.state != RunState.SUCCEEDED:
        advice = (
            " To complete a drill unattended, pre-approve its gates with --yes and "
            "--yes-destructive."
            if outcome.state == RunState.AWAITING_APPROVAL
            else ""
        )
        typer.echo(
            f"The drill is recorded as {outcome.state.value} and does not count as run. Its run "
            f"is in the {environment} store, so commands about it need `--config "
            f"{config_path}`, as in `breakglass --config {config_path} runs show "
            f"{outcome.run_id}`.{advice}",
            err=True,
        )
    run_cmd._report(outcome, output)


def due_rows(now: datetime) -> list[dict[str, Any]]:
    """Return each scheduled drill with its last run and when it is due next."""
    from breakglass.engine.doctor import drill_status

    rows = []
    for drill in drill_status(cli_state.STATE.workspace()):
        attempt = drill.failed_attempt
        rows.append(
            {
                "name": drill.name,
                "runbook": drill.runbook,
                "every_days": round(drill.every / 86400, 1),
                "last_run": drill.last_run,
                "last_run_id": drill.last_run_id,
                "next_due": drill.next_due,
                "overdue": drill.overdue(now),
                "failed_attempt": {
                    "run_id": attempt.run_id,
                    "result": attempt.result,
                    "finished_at": attempt.finished_at,
                }
                if attempt
                else None,
            }
        )
    return rows


@app.command("list")
def list_(output: OutputOption = OutputFormat.TEXT) -> None:
    """List the scheduled drills with their last successful run and when each is next due."""
    workspace = cli_state.STATE.workspace()
    rows = due_rows(workspace.clock.now())
    if output == OutputFormat.JSON:
        print_json(rows)
        return
    width = max((len(row["name"]) for row in rows), default=0)
    for row in rows:
        last = row["last_run"].isoformat(timespec="seconds") if row["last_run"] else "never"
        if row["next_due"] is None:
            due = "due now (never run)"
        else:
            due = ("OVERDUE since " if row["overdue"] else "next due ") + row["next_due"].isoformat(
                timespec="seconds"
            )
        runbook = row["runbook"] or "by hand"
        every = f"every {row['every_days']:g} d"
        typer.echo(f"{row['name']:<{width}}  {every:<12} {runbook:<20} last {last}  {due}")
        attempt = row["failed_attempt"]
        if attempt:
            typer.echo(
                f"{'':<{width}}  last attempt {attempt['finished_at'].isoformat(timespec='seconds')} "
                f"({attempt['run_id']}) ended {attempt['result']}"
            )


@app.command("history")
def history(
    name: Annotated[str | None, typer.Argument(help="Only this drill.")] = None,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """List every recorded drill run, newest first, with its result, duration and step timings."""
    from breakglass.store import drills as drill_repo

    workspace = cli_state.STATE.workspace()
    with workspace.store.read() as connection:
        records = drill_repo.list_drills(connection, name=name)
    if output == OutputFormat.JSON:
        print_json([record.model_dump(mode="json") for record in records])
        return
    if not records:
        typer.echo("no drills recorded" + (f" for {name}" if name else ""))
        return
    for record in records:
        seconds = (record.finished_at - record.started_at).total_seconds()
        where = record.details.get("environment", "")
        typer.echo(
            f"{record.finished_at.isoformat(timespec='seconds')}  {record.name}  "
            f"{record.runbook or 'by hand'}  {record.result}  {seconds:.1f} s  "
            f"{record.run_id or ''}  {where}  by {record.actor}"
        )
        for step, took in record.details.get("step_seconds") or []:
            typer.echo(f"    {step:<24} {took:.1f} s")
