"""`breakglass incident ...` and `breakglass contacts`."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from breakglass.cli import state as cli_state
from breakglass.cli.options import OutputOption
from breakglass.cli.output import OutputFormat, make_console, print_json

if TYPE_CHECKING:
    from breakglass.incidents.comms import Renderer
    from breakglass.incidents.desk import IncidentDesk, IncidentView
    from breakglass.incidents.sender import Sender, TickReport
    from breakglass.store.records import IncidentRecord

app = typer.Typer(help="Open, work and resolve incidents.", no_args_is_help=True)

IncidentArgument = Annotated[
    str, typer.Argument(help="The incident, for example INC-20261204-001.")
]


class ExportFormat(StrEnum):
    JSONL = "jsonl"
    CSV = "csv"


def _desk() -> IncidentDesk:
    return cli_state.STATE.workspace().incidents


def _view_json(view: IncidentView) -> dict[str, object]:
    return {
        **view.incident.model_dump(mode="json"),
        "deadlines": [
            {
                "name": d.name,
                "due": d.due.isoformat(),
                "met_at": d.met_at.isoformat() if d.met_at else None,
                "breached": d.breached(view.now),
                "text": d.describe(view.now),
            }
            for d in view.deadlines
        ],
    }


def _summary_line(view: IncidentView) -> str:
    incident = view.incident
    commander = f", commander {incident.commander}" if incident.commander else ""
    return f"{incident.id} {incident.severity} {incident.status}: {incident.title}{commander}"


def _report(record: IncidentRecord, message: str, output: OutputFormat) -> None:
    if output == OutputFormat.JSON:
        print_json(_view_json(_desk().view(record)))
    else:
        typer.echo(message)
        for line in _desk().view(record).deadline_lines():
            typer.echo(f"  {line}")


@app.command("open")
def open_incident(
    title: Annotated[str, typer.Argument(help="What is broken, in a few words.")],
    severity: Annotated[str, typer.Option("--severity", "-s", help="P0, P1, P2 or P3.")],
    service: Annotated[
        list[str] | None, typer.Option("--service", help="An affected service; repeat for more.")
    ] = None,
    commander: Annotated[
        str | None, typer.Option("--commander", help="Contact id of the incident commander.")
    ] = None,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Open an incident; its response and resolution clocks start now."""
    record = _desk().open(
        title=title, severity=severity, services=service or [], commander=commander
    )
    _report(record, f"opened {record.id} ({record.severity}): {record.title}", output)


@app.command("list")
def list_incidents(
    include_resolved: Annotated[
        bool, typer.Option("--all", help="Include resolved incidents.")
    ] = False,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """List open incidents first, most severe first, with their deadlines."""
    views = _desk().list_views(include_resolved=include_resolved)
    if output == OutputFormat.JSON:
        print_json([_view_json(view) for view in views])
        return
    if not views:
        typer.echo("no open incidents" if not include_resolved else "no incidents")
        return
    console = make_console()
    for view in views:
        breached = any(
            deadline.breached(view.now) and deadline.met_at is None for deadline in view.deadlines
        )
        style = "bold red" if breached else "bold"
        console.print(_summary_line(view), style=style, highlight=False, markup=False)
        for line in view.deadline_lines():
            console.print(f"  {line}", highlight=False, markup=False)


@app.command()
def show(incident_id: IncidentArgument, output: OutputOption = OutputFormat.TEXT) -> None:
    """Show an incident, its deadlines, its action items and its timeline."""
    from breakglass.incidents.timeline import build_timeline

    desk = _desk()
    view = desk.view(desk.get(incident_id))
    timeline = build_timeline(desk.store, incident_id)
    items = desk.action_items(incident_id)
    if output == OutputFormat.JSON:
        print_json({**_view_json(view), "timeline": timeline, "action_items": items})
        return
    incident = view.incident
    typer.echo(_summary_line(view))
    typer.echo(f"  services: {', '.join(incident.services) or 'none named'}")
    typer.echo(
        f"  opened {incident.opened_at.isoformat(timespec='seconds')} by {incident.opened_by}"
    )
    for line in view.deadline_lines():
        typer.echo(f"  {line}")
    if incident.escalation_level:
        typer.echo(f"  escalated to level {incident.escalation_level}")
    if items:
        typer.echo("action items:")
        for item in items:
            done = f"done {item.done_at.isoformat(timespec='minutes')}" if item.done_at else "open"
            typer.echo(f"  {item.id}. {item.text} ({item.owner or 'no owner'}, {done})")
    typer.echo("timeline:")
    for entry in timeline:
        source = "" if entry.source == incident_id else f" [{entry.source}]"
        typer.echo(
            f"  {entry.at.isoformat(timespec='seconds')}{source} {entry.message}  ({entry.actor})"
        )


@app.command()
def ack(
    incident_id: IncidentArgument,
    note: Annotated[
        str | None, typer.Option("--note", help="Recorded with the acknowledgement.")
    ] = None,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Acknowledge an incident, which stops its paging."""
    desk = _desk()
    record, changed = desk.acknowledge(incident_id, note=note)
    if changed:
        _close_pages(incident_id, "acknowledge")
    if changed:
        message = f"acknowledged {incident_id} as {desk.actor}"
    else:
        when = (
            record.acknowledged_at.isoformat(timespec="seconds") if record.acknowledged_at else "?"
        )
        message = f"{incident_id} was already acknowledged by {record.acknowledged_by} at {when}"
    _report(record, message, output)


@app.command()
def status(
    incident_id: IncidentArgument,
    new_status: Annotated[
        str,
        typer.Argument(metavar="STATUS", help="investigating, identified, monitoring or resolved."),
    ],
    note: Annotated[
        str | None, typer.Option("--note", help="Why, recorded with the change.")
    ] = None,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Change an incident's status."""
    record = _desk().set_status(incident_id, new_status, note=note)
    _report(record, f"{incident_id} is now {record.status}", output)


@app.command()
def severity(
    incident_id: IncidentArgument,
    level: Annotated[str, typer.Argument(metavar="SEVERITY", help="P0, P1, P2 or P3.")],
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why, recorded with the change.")
    ] = None,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Change an incident's severity; its clocks restart with the new targets."""
    record = _desk().set_severity(incident_id, level, reason=reason)
    _report(record, f"{incident_id} is now {record.severity}; its targets count from now", output)


@app.command()
def commander(
    incident_id: IncidentArgument,
    contact: Annotated[str, typer.Argument(help="Contact id of the new commander.")],
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Hand command of an incident to another contact."""
    record = _desk().set_commander(incident_id, contact)
    _report(record, f"{record.commander} now commands {incident_id}", output)


@app.command()
def note(
    incident_id: IncidentArgument,
    text: Annotated[str, typer.Argument(help="The note.")],
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Add a note to an incident's timeline."""
    event = _desk().note(incident_id, text)
    if output == OutputFormat.JSON:
        print_json(event)
    else:
        typer.echo(f"noted on {incident_id} at {event.at.isoformat(timespec='seconds')}")


@app.command()
def resolve(
    incident_id: IncidentArgument,
    summary: Annotated[
        str | None, typer.Option("--summary", help="What fixed it, for the post-mortem.")
    ] = None,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Resolve an incident."""
    record = _desk().resolve(incident_id, summary=summary)
    _close_pages(incident_id, "resolve")
    _report(record, f"resolved {incident_id}", output)


action_app = typer.Typer(help="Track post-incident action items.", no_args_is_help=True)
app.add_typer(action_app, name="action")


@action_app.command("add")
def action_add(
    incident_id: IncidentArgument,
    text: Annotated[str, typer.Argument(help="What must be done.")],
    owner: Annotated[str | None, typer.Option("--owner", help="Who does it.")] = None,
    due: Annotated[str | None, typer.Option("--due", help="Due date, YYYY-MM-DD.")] = None,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Add an action item to an incident."""
    import datetime as dt

    from breakglass.errors import UserInputError

    if due is not None:
        try:
            dt.date.fromisoformat(due)
        except ValueError as e:
            raise UserInputError(f"invalid due date {due!r}: write YYYY-MM-DD") from e
    item_id = _desk().add_action(incident_id, text, owner=owner, due=due)
    if output == OutputFormat.JSON:
        print_json({"incident": incident_id, "item": item_id})
    else:
        typer.echo(f"added action item {item_id} to {incident_id}")


@action_app.command("done")
def action_done(
    incident_id: IncidentArgument,
    item_id: Annotated[int, typer.Argument(help="The action item's number.")],
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Mark an action item done."""
    item = _desk().finish_action(incident_id, item_id)
    if output == OutputFormat.JSON:
        print_json(item)
    else:
        typer.echo(f"action item {item.id} of {incident_id} is done")


@app.command()
def export(
    incident_id: IncidentArgument,
    export_format: Annotated[
        ExportFormat, typer.Option("--format", help="jsonl or csv.")
    ] = ExportFormat.JSONL,
    path: Annotated[
        Path | None, typer.Option("--file", help="Write here instead of stdout.")
    ] = None,
) -> None:
    """Write an incident's timeline, runs included, as JSON lines or CSV."""
    from breakglass.incidents.timeline import build_timeline, export_csv, export_jsonl

    desk = _desk()
    desk.get(incident_id)
    items = build_timeline(desk.store, incident_id)
    text = export_jsonl(items) if export_format == ExportFormat.JSONL else export_csv(items)
    if path is None:
        typer.echo(text, nl=False)
    else:
        path.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {len(items)} timeline entries to {path}", err=True)


REVIEW_MAX_AGE_DAYS = 31


def contacts(output: OutputOption = OutputFormat.TEXT) -> None:
    """List contacts and the escalation chain; flag reviews older than a month."""
    workspace = cli_state.STATE.workspace()
    config = workspace.config.model
    today = workspace.clock.now().date()
    rows = []
    for contact in config.contacts:
        age = (today - contact.reviewed).days if contact.reviewed else None
        stale = age is None or age > REVIEW_MAX_AGE_DAYS
        rows.append({**contact.model_dump(mode="json"), "review_age_days": age, "stale": stale})
    if output == OutputFormat.JSON:
        print_json({"contacts": rows, "escalation": config.incidents.escalation})
        return
    if not rows:
        typer.echo("no contacts configured; add them under `contacts:` in breakglass.yaml")
        return
    for row in rows:
        where = (
            f"level {row['level']}" if row["level"] else f"external: {row['external'] or 'other'}"
        )
        review = (
            "never reviewed"
            if row["review_age_days"] is None
            else f"reviewed {row['review_age_days']} days ago"
        )
        flag = "  STALE: review this contact" if row["stale"] else ""
        typer.echo(
            f"{row['id']:<12} {row['name']} ({row['role'] or 'no role'}), {where}, {review}{flag}"
        )
        typer.echo(f"{'':<12} channels: {', '.join(row['channels']) or 'none'}")
    for level, members in sorted(config.incidents.escalation.items()):
        typer.echo(f"escalation level {level}: {', '.join(members)}")


def _sender() -> Sender:
    return cli_state.STATE.workspace().sender()


def _close_pages(incident_id: str, action: Literal["acknowledge", "resolve"]) -> None:
    for failure in _sender().close_pages(incident_id, action):
        typer.echo(f"warning: PagerDuty {action} failed: {failure}", err=True)


def _print_tick(report: TickReport, output: OutputFormat) -> None:
    if output == OutputFormat.JSON:
        print_json(
            {
                "sent": report.sent,
                "failed": report.failed,
                "skipped": report.skipped,
                "idle": report.idle_reason,
            }
        )
        return
    if report.idle_reason:
        typer.echo(f"not sending: {report.idle_reason}")
    for label in report.sent:
        typer.echo(f"sent {label}")
    for label in report.skipped:
        typer.echo(f"skipped {label} (acknowledged)")
    for label in report.failed:
        typer.echo(f"FAILED {label}", err=True)


def tick(output: OutputOption = OutputFormat.TEXT) -> None:
    """Send the pages and notifications incidents are due now, once (for cron)."""
    sender = _sender()
    try:
        report = sender.tick()
    finally:
        sender.release()
    _print_tick(report, output)
    if report.failed:
        raise typer.Exit(1)


def watch(
    interval: Annotated[
        str, typer.Option("--interval", help="Time between passes, for example 30s.")
    ] = "30s",
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Send pages and notifications as they fall due, until interrupted."""
    import time

    from breakglass.durations import parse_duration
    from breakglass.errors import UserInputError

    try:
        seconds = parse_duration(interval)
    except ValueError as e:
        raise UserInputError(f"--interval: {e}") from e
    sender = _sender()
    import signal

    # systemd stops a service with SIGTERM: treat it as Ctrl-C, so the sender lease is
    # released at once instead of blocking the next sender until it expires.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    typer.echo(f"watching incidents every {interval}; Ctrl-C or SIGTERM stops", err=True)
    idle_before: str | None = None
    try:
        while True:
            report = sender.tick()
            if report.idle_reason == idle_before:
                report.idle_reason = None  # said once is enough
            else:
                idle_before = report.idle_reason
            _print_tick(report, output)
            time.sleep(seconds)
    except KeyboardInterrupt:
        typer.echo("stopped watching", err=True)
    finally:
        sender.release()


@app.command()
def escalate(
    incident_id: IncidentArgument,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why, recorded on the timeline.")
    ] = None,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Escalate an incident one level now and page that level."""
    sender = _sender()
    level, report = sender.escalate(incident_id, reason=reason or f"escalated by {sender.actor}")
    if output == OutputFormat.JSON:
        print_json(
            {"incident": incident_id, "level": level, "sent": report.sent, "failed": report.failed}
        )
    else:
        typer.echo(f"{incident_id} escalated to level {level}")
        _print_tick(report, OutputFormat.TEXT)
    if not report.sent and not report.failed:
        typer.echo(
            f"warning: nobody was paged, because escalation level {level} has no contacts; "
            "add them under incidents.escalation in the config",
            err=True,
        )
        raise typer.Exit(1)
    if report.failed:
        raise typer.Exit(1)


def _renderer() -> Renderer:
    from breakglass.incidents.comms import Renderer

    workspace = cli_state.STATE.workspace()
    return Renderer(workspace.incidents, workspace.config.base_dir)


@app.command()
def alert(
    incident_id: IncidentArgument,
    print_only: Annotated[
        bool, typer.Option("--print-only", help="Render the alert without sending it.")
    ] = False,
) -> None:
    """Render the internal incident alert and send it to the commander and level 1."""
    from breakglass.incidents.escalation import NOTIFY, Due
    from breakglass.incidents.sender import TickReport

    text = _renderer().render("alert", incident_id)
    typer.echo(text, nl=False)
    if print_only:
        return
    sender = _sender()
    incident = cli_state.STATE.workspace().incidents.get(incident_id)
    stamp = sender.clock.now().isoformat(timespec="seconds")
    due = Due(f"{incident_id}:alert:{stamp}", NOTIFY, "alert", text.splitlines()[0], level=1)
    recipients = sorted(
        {*sender.recipients(due), *([incident.commander] if incident.commander else [])}
    )
    report = TickReport()
    for contact_id in recipients:
        sender.deliver(incident_id, due, contact_id, report, body=text)
    _print_tick(report, OutputFormat.TEXT)
    if not recipients:
        typer.echo(
            "nobody to send the alert to: configure contacts and escalation level 1", err=True
        )
    if report.failed or not recipients:
        raise typer.Exit(1)


@app.command()
def notice(
    incident_id: IncidentArgument,
    path: Annotated[
        Path | None, typer.Option("--file", help="Write the notice to this file.")
    ] = None,
    webhook: Annotated[
        str | None,
        typer.Option("--webhook", help="POST the notice as JSON to this status-page URL."),
    ] = None,
) -> None:
    """Render the user notification: to stdout, a file, or a status-page webhook."""
    renderer = _renderer()
    text = renderer.render("notice", incident_id)
    desk = renderer.desk
    if webhook is not None:
        from breakglass.incidents.comms import post_status_page

        incident = desk.get(incident_id)
        detail = post_status_page(webhook, incident, text)
        desk.record_notice(incident_id, f"user notice posted to the status page ({detail})")
        typer.echo(f"posted the notice for {incident_id}: {detail}")
    elif path is not None:
        from breakglass.errors import UserInputError

        try:
            path.write_text(text, encoding="utf-8")
        except OSError as e:
            raise UserInputError(f"cannot write the notice to {path}: {e.strerror}") from e
        desk.record_notice(incident_id, f"user notice written to {path}")
        typer.echo(f"wrote the notice for {incident_id} to {path}", err=True)
    else:
        # Printing is a preview: only a notice that was published restarts the update clock.
        typer.echo(text, nl=False)


@app.command()
def postmortem(
    incident_id: IncidentArgument,
    path: Annotated[
        Path | None,
        typer.Option("--file", help="Where to write the draft (default: postmortem-INC.md here)."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing draft.")] = False,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Write a Markdown post-mortem draft from the incident's timeline."""
    from breakglass.errors import UserInputError

    target = path or Path(f"postmortem-{incident_id}.md")
    if target.exists() and not force:
        raise UserInputError(
            f"{target} already exists",
            hint="pass --force to overwrite it, or --file to choose another",
        )
    text = _renderer().render("postmortem", incident_id)
    try:
        target.write_text(text, encoding="utf-8")
    except OSError as e:
        raise UserInputError(f"cannot write the post-mortem to {target}: {e.strerror}") from e
    if output == OutputFormat.JSON:
        print_json({"incident": incident_id, "path": str(target.resolve())})
    else:
        typer.echo(str(target.resolve()))
