"""`breakglass health`: run the configured health checks and print their results."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from breakglass.actions.health import CheckStatus, SuiteReport, run_suite, select_checks
from breakglass.actions.http import format_seconds
from breakglass.cli import state as cli_state
from breakglass.cli.options import OutputOption
from breakglass.cli.output import OutputFormat, make_console, print_json
from breakglass.config.redaction import redact
from breakglass.errors import ExitCode

STATUS_STYLES = {CheckStatus.PASS: "green", CheckStatus.WARN: "yellow", CheckStatus.FAIL: "red"}


def health(
    strict: Annotated[
        bool,
        typer.Option(
            "--strict",
            help="Also fail on warnings and on failing checks of severity warning.",
        ),
    ] = False,
    check: Annotated[
        list[str] | None,
        typer.Option(
            "--check",
            metavar="NAME",
            help="Run only the named check. Repeat the option for several. Default: every configured check.",
        ),
    ] = None,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Run the configured health checks concurrently.

    Exit 1 when a check fails. Warnings, and failing checks of severity warning, count
    only with --strict.
    """
    workspace = cli_state.STATE.workspace()
    configured = workspace.config.model.health.checks
    selected = select_checks(configured, check)
    if not selected:
        message = (
            f"no health checks are configured in {workspace.config.source}; "
            "add them under health.checks"
        )
        if output == OutputFormat.JSON:
            print_json({"passed": True, "strict": strict, "checks": []})
            sys.stderr.write(message + "\n")
        else:
            typer.echo(message)
        return
    report = run_suite(selected, base_dir=workspace.config.base_dir, clock=workspace.clock)
    passed = report.passed(strict)
    if output == OutputFormat.JSON:
        print_json({"passed": passed, "strict": strict, "checks": report.results})
    else:
        _print_report(report, strict)
    if not passed:
        raise typer.Exit(int(ExitCode.FAILED))


def _print_report(report: SuiteReport, strict: bool) -> None:
    table = Table("Check", "Status", "Severity", "Latency", "Message")
    for result in report.results:
        latency = "-" if result.latency is None else format_seconds(result.latency)
        table.add_row(
            Text(result.name),
            Text(result.status.value, style=STATUS_STYLES[result.status]),
            Text(result.severity),
            Text(latency),
            # Text, not a markup string, so brackets in a response body print as they are.
            Text(redact(result.message)),
        )
    console = make_console()
    console.print(table)
    console.print(Text(_verdict(report, strict)))


def _verdict(report: SuiteReport, strict: bool) -> str:
    counts = (
        f"{report.count(CheckStatus.PASS)} passed, {report.count(CheckStatus.WARN)} warned, "
        f"{report.count(CheckStatus.FAIL)} failed"
    )
    verdict = "health checks passed" if report.passed(strict) else "health checks FAILED"
    ignored = [
        result
        for result in report.results
        if result.status == CheckStatus.FAIL and not result.counts_as_failure(strict)
    ]
    if ignored:
        names = ", ".join(result.name for result in ignored)
        counts += f"; failures of severity warning ({names}) count only with --strict"
    return f"{verdict}: {counts}"
