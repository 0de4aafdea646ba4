"""Commands loaded on first use, so that `breakglass --help` does not import the engine.

Each entry names the module and attribute of a command (a function) or a command group
(a Typer app), with the one-line help shown in the command list.
"""

from __future__ import annotations

import importlib
from typing import Any

import click
import typer
from typer.core import TyperGroup

LAZY_COMMANDS: dict[str, tuple[str, str, str]] = {
    "plan": (
        "breakglass.cli.run_cmd",
        "plan",
        "Show what a run would do and where, without changing anything.",
    ),
    "run": ("breakglass.cli.run_cmd", "run", "Run a runbook step by step with a durable journal."),
    "resume": (
        "breakglass.cli.run_cmd",
        "resume",
        "Continue an interrupted, halted or paused run; finished steps are skipped.",
    ),
    "approve": (
        "breakglass.cli.run_cmd",
        "approve",
        "Approve a step of a paused run; `breakglass resume RUN` then runs it.",
    ),
    "reject": (
        "breakglass.cli.run_cmd",
        "reject",
        "Reject a step of a paused run, which then ends by its failure policy.",
    ),
    "cancel": (
        "breakglass.cli.run_cmd",
        "cancel",
        "Halt a run after its current step; a second cancel (or --abort) aborts it by its policy.",
    ),
    "runs": ("breakglass.cli.runs_cmd", "app", "List runs and show their journals."),
    "runbooks": ("breakglass.cli.runbooks_cmd", "app", "List the runbooks on the search path."),
    "lint": (
        "breakglass.cli.runbooks_cmd",
        "lint",
        "Check runbooks without running them; exit 2 when anything is found.",
    ),
    "health": (
        "breakglass.cli.health_cmd",
        "health",
        "Run the configured health checks concurrently.",
    ),
    "audit": ("breakglass.cli.audit_cmd", "app", "Verify and export the hash-chained audit log."),
    "config": (
        "breakglass.cli.config_cmd",
        "app",
        "Check the platform config and print its schema.",
    ),
    "init": ("breakglass.cli.init_cmd", "init", "Write a commented starter breakglass.yaml."),
    "incident": ("breakglass.cli.incident_cmd", "app", "Open, work and resolve incidents."),
    "contacts": (
        "breakglass.cli.incident_cmd",
        "contacts",
        "List contacts and the escalation chain; flag reviews older than a month.",
    ),
    "tick": (
        "breakglass.cli.incident_cmd",
        "tick",
        "Send the pages and notifications incidents are due now, once (for cron).",
    ),
    "watch": (
        "breakglass.cli.incident_cmd",
        "watch",
        "Send pages and notifications as they fall due, until interrupted.",
    ),
    "db": ("breakglass.cli.db_cmd", "app", "Work with the configured PostgreSQL databases."),
    "drill": ("breakglass.cli.drill_cmd", "app", "Run recovery drills."),
    "doctor": (
        "breakglass.cli.doctor_cmd",
        "doctor",
        "Report overdue drills and reviews, lint failures, unreachable targets and state paths.",
    ),
    "sandbox": (
        "breakglass.cli.sandbox_cmd",
        "app",
        "Start, inspect and stop a local sandbox platform on 127.0.0.1.",
    ),
    "snapshot": ("breakglass.cli.snapshot_cmd", "app", "Record and compare known-good snapshots."),
    "demo": (
        "breakglass.cli.demo_cmd",
        "demo",
        "Run the built-in demo: a broken release rolled back against local services.",
    ),
}


def load_command(name: str) -> click.Command:
    module_name, attribute, _ = LAZY_COMMANDS[name]
    target: Any = getattr(importlib.import_module(module_name), attribute)
    if isinstance(target, typer.Typer):
        group = typer.main.get_group(target)
        group.name = name
        return group
    holder = typer.Typer(add_completion=False)
    holder.command(name=name)(target)
    command = typer.main.get_command(holder)
    command.name = name
    return command


class LazyGroup(TyperGroup):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in LAZY_COMMANDS and cmd_name not in self.commands:
            self.commands[cmd_name] = load_command(cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, help_text) for name, (_, _, help_text) in LAZY_COMMANDS.items()]
        rows.extend(
            (name, command.get_short_help_str())
            for name, command in self.commands.items()
            if name not in LAZY_COMMANDS
        )
        with formatter.section("Commands"):
            formatter.write_dl(sorted(rows))
