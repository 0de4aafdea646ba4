"""`breakglass demo`: the main job on embedded defaults, against a local stand-in platform."""

from __future__ import annotations

from typing import Annotated

import typer


def demo(
    interactive: Annotated[
        bool,
        typer.Option("--interactive", help="Ask at the approval gate instead of pre-approving it."),
    ] = False,
) -> None:
    """Run the built-in demo: a broken release rolled back against local services."""
    from rich.markup import escape

    from breakglass.cli import state as cli_state
    from breakglass.cli.display import (
        LiveDisplay,
        TerminalInteraction,
        outcome_lines,
        render_plan_lines,
    )
    from breakglass.cli.output import make_console
    from breakglass.demo import GOOD_VERSION, DemoPlatform
    from breakglass.engine import service
    from breakglass.engine.events import EventBus
    from breakglass.engine.executor import RunOptions
    from breakglass.engine.interaction import Interaction, NoInteraction
    from breakglass.store import audit as audit_repo

    workspace = cli_state.STATE.workspace()
    console = make_console()
    say = console.rule if console.is_terminal else (lambda text: console.print(f"\n== {text}"))
    platform = DemoPlatform(workspace.state_dir / "demo" / "release")
    platform.start()
    try:
        inputs = {
            "service_url": platform.url,
            "release_file": str(platform.release_file),
            "good_version": GOOD_VERSION,
            "webhook_url": f"{platform.url}/hooks/chat",
        }
        say("1. A local service is running a broken release")
        console.print(
            f"service {platform.url} serves version {platform.version()} (its health check returns 503)"
        )
        console.print(f"state store: {workspace.state_url}")

        say("2. Plan: what the rollback would do, with no side effects")
        report = service.plan_run(workspace, "demo-rollback", inputs)
        for index, step in enumerate(report.steps, start=1):
            for line in render_plan_lines(step, index):
                console.print(line, highlight=False)

        say("3. Run: each step journaled before and after it runs")
        bus = EventBus()
        display = LiveDisplay(console)
        bus.subscribe(display)
        interaction: Interaction = NoInteraction()
        if interactive:
            terminal = TerminalInteraction(console, display)
            interaction = terminal if terminal.can_prompt() else NoInteraction()
        options = RunOptions(yes=not interactive)
        outcome = service.start_run(
            workspace, "demo-rollback", inputs, options=options, interaction=interaction, bus=bus
        )
        console.print(
            f"\nrun {outcome.run_id} {outcome.state.value}: {escape(outcome.reason)}",
            highlight=False,
        )
        for line in outcome_lines(outcome.steps):
            console.print(line, highlight=False)

        say("4. Result")
        console.print(f"service now serves version {platform.version()}")
        for payload in platform.received:
            console.print(f"webhook received: {escape(str(payload))}", highlight=False)
        with workspace.store.read() as connection:
            verified = audit_repo.verify(connection, key=workspace.audit_key)
        console.print(
            f"audit log: {'intact' if verified.ok else 'BROKEN'}, {verified.checked} entries, head {verified.head}"
        )
        console.print(
            f"\nNext: `breakglass runs show {outcome.run_id}` shows the journal; "
            "`breakglass runbooks show demo-rollback` shows the runbook."
        )
    finally:
        platform.stop()
    raise typer.Exit(int(outcome.exit_code))
