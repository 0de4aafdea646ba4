"""`breakglass plan|run|resume|approve|reject|cancel`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.markup import escape

from breakglass.cli import state as cli_state
from breakglass.cli.display import (
    LiveDisplay,
    TerminalInteraction,
    outcome_lines,
    render_plan_lines,
)
from breakglass.cli.options import OutputOption
from breakglass.cli.output import OutputFormat, make_console, print_json
from breakglass.config.redaction import REDACTOR
from breakglass.engine import service
from breakglass.engine.events import EventBus
from breakglass.engine.executor import RunOptions, RunOutcome
from breakglass.engine.interaction import Interaction, NoInteraction
from breakglass.engine.planning import StepPlan, refusals
from breakglass.errors import ExitCode, UserInputError
from breakglass.runbooks.inputs import parse_assignments

InputOption = Annotated[
    list[str] | None, typer.Option("--input", "-i", help="An input as key=value; repeat for more.")
]
InputsFileOption = Annotated[
    Path | None,
    typer.Option("--inputs", help="A YAML or JSON file of inputs; -i values override it."),
]
YesOption = Annotated[
    bool, typer.Option("--yes", "-y", help="Pre-approve ordinary approval gates.")
]
YesDestructiveOption = Annotated[
    list[str] | None,
    typer.Option(
        "--yes-destructive",
        help="Pre-approve destructive gates acting on this target (as the plan names it).",
    ),
]
WaitOption = Annotated[
    bool, typer.Option("--wait", help="Wait for locks held by other runs instead of failing.")
]
WaitTimeoutOption = Annotated[
    float, typer.Option("--wait-timeout", help="Seconds to wait for locks with --wait.")
]


def _gather_inputs(pairs: list[str] | None, path: Path | None) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if path is not None:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as e:
            raise UserInputError(f"cannot read inputs file {path}: {e.strerror}") from e
        except yaml.YAMLError as e:
            raise UserInputError(f"inputs file {path} is not valid YAML or JSON: {e}") from e
        if not isinstance(data, dict):
            raise UserInputError(f"inputs file {path} must be a mapping of input names to values")
        values.update({str(key): value for key, value in data.items()})
    values.update(parse_assignments(pairs or []))
    return values


def plan(
    runbook: Annotated[str, typer.Argument(help="Runbook name, or a path to a runbook file.")],
    inputs: InputOption = None,
    inputs_file: InputsFileOption = None,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Show what a run would do and where, without changing anything."""
    workspace = cli_state.STATE.workspace()
    report = service.plan_run(workspace, runbook, _gather_inputs(inputs, inputs_file))
    if output == OutputFormat.JSON:
        print_json(
            {
                "runbook": report.runbook,
                "source": report.source,
                "inputs": report.inputs,
                "locks": report.locks,
                "steps": report.steps,
                "runnable": not refusals(report.steps),
            }
        )
        _exit_if_refused(report.steps)
        return
    console = make_console()
    shown = ", ".join(f"{key}={value}" for key, value in report.inputs.items()) or "none"
    console.print(
        f"[bold]Plan[/] for runbook {escape(report.runbook)} ({escape(report.source)})",
        highlight=False,
    )
    console.print(f"inputs: {escape(REDACTOR.redact(shown))}", highlight=False)
    console.print(f"locks:  {escape(', '.join(report.locks) or 'none')}", highlight=False)
    for index, step in enumerate(report.steps, start=1):
        for line in render_plan_lines(step, index):
            console.print(line, highlight=False)
    refused = refusals(report.steps)
    if refused:
        for step in refused:
            console.print(
                f"[red]step {escape(step.id)} cannot run:[/] {escape(step.error or '')}",
                highlight=False,
            )
        console.print(
            "Nothing was changed. `breakglass run` exits with this error until it is fixed."
        )
        _exit_if_refused(report.steps)
    console.print("Nothing was changed. Run it with `breakglass run`.", highlight=False)


def _exit_if_refused(steps: list[StepPlan]) -> None:
    refused = refusals(steps)
    if not refused:
        return
    unreachable = all(step.unreachable for step in refused)
    raise typer.Exit(int(ExitCode.UNREACHABLE if unreachable else ExitCode.BAD_INPUT))


def _interaction(console: Any, display: LiveDisplay) -> Interaction:
    interaction = TerminalInteraction(console, display)
    return interaction if interaction.can_prompt() else NoInteraction()


def _report(outcome: RunOutcome, output: OutputFormat) -> None:
    if output == OutputFormat.JSON:
        print_json(
            {
                "run": outcome.run_id,
                "state": outcome.state.value,
                "reason": outcome.reason,
                "exit_code": int(outcome.exit_code),
                "steps": outcome.steps,
            }
        )
    else:
        console = make_console()
        colour = (
            "green"
            if outcome.exit_code == ExitCode.OK
            else "yellow"
            if outcome.exit_code in (3, 4)
            else "red"
        )
        console.print(
            f"\n[bold {colour}]run {outcome.run_id} {outcome.state.value}[/]: {escape(outcome.reason)}",
            highlight=False,
        )
        for line in outcome_lines(outcome.steps):
            console.print(line, highlight=False)
    raise typer.Exit(int(outcome.exit_code))


def _options(
    yes: bool, yes_destructive: list[str] | None, wait: bool, wait_timeout: float, **extra: Any
) -> RunOptions:
    return RunOptions(
        yes=yes,
        yes_destructive=tuple(yes_destructive or ()),
        wait_for_locks=wait,
        lock_wait_timeout=wait_timeout,
        **extra,
    )


def _bus(output: OutputFormat) -> tuple[EventBus, LiveDisplay, Any]:
    bus = EventBus()
    console = make_console(stderr=output == OutputFormat.JSON)
    display = LiveDisplay(console)
    bus.subscribe(display)
    return bus, display, console


def run(
    runbook: Annotated[str, typer.Argument(help="Runbook name, or a path to a runbook file.")],
    inputs: InputOption = None,
    inputs_file: InputsFileOption = None,
    yes: YesOption = False,
    yes_destructive: YesDestructiveOption = None,
    wait: WaitOption = False,
    wait_timeout: WaitTimeoutOption = 600.0,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only plan; the same as `breakglass plan`.")
    ] = False,
    incident: Annotated[
        str | None,
        typer.Option("--incident", help="Attach the run to this open incident's timeline."),
    ] = None,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Run a runbook step by step with a durable journal."""
    if dry_run:
        plan(runbook, inputs, inputs_file, output)
        return
    workspace = cli_state.STATE.workspace()
    bus, display, console = _bus(output)
    outcome = service.start_run(
        workspace,
        runbook,
        _gather_inputs(inputs, inputs_file),
        options=_options(yes, yes_destructive, wait, wait_timeout),
        interaction=_interaction(console, display),
        bus=bus,
        incident_id=incident,
    )
    _report(outcome, output)


def resume(
    run_id: Annotated[str, typer.Argument(help="The run to resume, for example RUN-20261204-001.")],
    retry_step: Annotated[
        str | None, typer.Option("--retry-step", help="Re-run this in-doubt step.")
    ] = None,
    skip_step: Annotated[
        str | None, typer.Option("--skip-step", help="Treat this in-doubt step as done and go on.")
    ] = None,
    accept_changes: Annotated[
        bool,
        typer.Option(
            "--accept-changes",
            help="Continue although the runbook or config changed since the run started.",
        ),
    ] = False,
    yes: YesOption = False,
    yes_destructive: YesDestructiveOption = None,
    wait: WaitOption = False,
    wait_timeout: WaitTimeoutOption = 600.0,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Continue an interrupted, halted or paused run; finished steps are skipped."""
    if retry_step and skip_step and retry_step == skip_step:
        raise UserInputError("--retry-step and --skip-step name the same step; choose one")
    workspace = cli_state.STATE.workspace()
    bus, display, console = _bus(output)
    options = _options(
        yes,
        yes_destructive,
        wait,
        wait_timeout,
        retry_step=retry_step,
        skip_step=skip_step,
        accept_changes=accept_changes,
    )
    outcome = service.resume_run(
        workspace, run_id, options=options, interaction=_interaction(console, display), bus=bus
    )
    _report(outcome, output)


def approve(
    run_id: Annotated[str, typer.Argument(help="The paused run.")],
    step_id: Annotated[str, typer.Argument(help="The step awaiting approval.")],
    note: Annotated[
        str | None,
        typer.Option("--note", help="Recorded with the approval (for manual steps: what you did)."),
    ] = None,
    target: Annotated[
        str | None,
        typer.Option(
            "--target", help="For a destructive step: what it acts on, as its plan names it."
        ),
    ] = None,
) -> None:
    """Approve a step of a paused run; `breakglass resume RUN` then runs it."""
    workspace = cli_state.STATE.workspace()
    service.decide_approval(workspace, run_id, step_id, approved=True, note=note, target=target)
    typer.echo(
        f"approved step {step_id} of {run_id} as {workspace.actor}; continue with `breakglass resume {run_id}`"
    )


def reject(
    run_id: Annotated[str, typer.Argument(help="The paused run.")],
    step_id: Annotated[str, typer.Argument(help="The step awaiting approval.")],
    note: Annotated[
        str | None, typer.Option("--note", help="Why, recorded with the rejection.")
    ] = None,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Reject a step of a paused run, which then ends by its failure policy."""
    workspace = cli_state.STATE.workspace()
    service.decide_approval(workspace, run_id, step_id, approved=False, note=note)
    bus, _, _ = _bus(output)
    outcome = service.resume_run(
        workspace, run_id, options=RunOptions(), interaction=NoInteraction(), bus=bus
    )
    _report(outcome, output)


def cancel(
    run_id: Annotated[str, typer.Argument(help="The run to stop.")],
    abort: Annotated[
        bool,
        typer.Option(
            "--abort",
            help="Abort by the failure policy at once instead of halting after the current step.",
        ),
    ] = False,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Halt a run after its current step; a second cancel (or --abort) aborts it by its policy."""
    workspace = cli_state.STATE.workspace()
    record = service.get_run(workspace, run_id)
    if record.state.is_final:
        raise UserInputError(
            f"run {run_id} already ended as {record.state.value}; there is nothing to cancel"
        )
    if record.lease_holder_alive:
        _, level = service.request_cancel(workspace, run_id, abort=abort)
        what = "halt after its current step" if level == 1 else "abort by its failure policy"
        if output == OutputFormat.JSON:
            print_json({"run": run_id, "cancel_level": level})
        else:
            typer.echo(f"asked run {run_id} to {what}")
        return
    bus, _, _ = _bus(output)
    outcome = service.resume_run(
        workspace,
        run_id,
        options=RunOptions(),
        interaction=NoInteraction(),
        bus=bus,
        abort=True,
        abort_message=f"cancelled by {workspace.actor} while {record.state.value}",
    )
    _report(outcome, output)
