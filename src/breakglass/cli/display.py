"""The live step display and the terminal approval prompt.

On a terminal, a spinner shows the running step and each finished step gets a line; not
on a terminal, the same lines are printed as plain text and nothing is animated.
"""

from __future__ import annotations

import signal
import sys
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.status import Status

from breakglass.clock import format_time
from breakglass.config.redaction import REDACTOR
from breakglass.engine.events import Event
from breakglass.engine.interaction import ApprovalAnswer, ApprovalRequest, PromptAbortedError
from breakglass.engine.planning import StepPlan

MARKS = {
    "succeeded": "[green]✔[/]",
    "failed": "[red]✘[/]",
    "timed_out": "[red]⧗[/]",
    "cancelled": "[yellow]■[/]",
    "skipped": "[dim]↷[/]",
}


class LiveDisplay:
    """Turns run events into lines (and a spinner on a terminal)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.live = console.is_terminal
        self.status: Status | None = None

    def __call__(self, event: Event) -> None:
        handler = getattr(self, f"_on_{event.kind}", None)
        if handler is not None:
            handler(event)

    def pause(self) -> None:
        if self.status is not None:
            self.status.stop()
            self.status = None

    def _line(self, text: str) -> None:
        self.console.print(REDACTOR.redact(text), highlight=False)

    def _label(self, event: Event) -> str:
        phase = f" ({event.phase})" if event.phase and event.phase != "main" else ""
        return f"{escape(event.step_id or '')}{phase}"

    def _on_run_started(self, event: Event) -> None:
        started = escape(event.message or "started")
        self._line(f"[bold]run {event.run_id}[/] {started} at {format_time(event.at)}")

    def _on_run_resumed(self, event: Event) -> None:
        self._line(f"[bold]run {event.run_id}[/] {escape(event.message or 'resumed')}")

    def _on_step_started(self, event: Event) -> None:
        text = f"{self._label(event)}: running"
        if self.live:
            self.pause()
            self.status = self.console.status(text)
            self.status.start()
        else:
            self._line(f"→ {text}")

    def _on_step_ended(self, event: Event) -> None:
        self.pause()
        mark = MARKS.get(event.status or "", "?")
        message = f": {escape(event.message)}" if event.message else ""
        self._line(f"{mark} {self._label(event)} {event.status}{message}")

    def _on_step_skipped(self, event: Event) -> None:
        self._line(f"{MARKS['skipped']} {self._label(event)} {escape(event.message or 'skipped')}")

    def _on_progress(self, event: Event) -> None:
        if self.status is not None:
            self.status.update(f"{self._label(event)}: {escape(event.message or '')}")
        else:
            self._line(f"  {self._label(event)}: {escape(event.message or '')}")

    def _on_approval_granted(self, event: Event) -> None:
        self._line(f"[green]approved[/] {self._label(event)}: {escape(event.message or '')}")

    def _on_approval_rejected(self, event: Event) -> None:
        self._line(f"[red]rejected[/] {self._label(event)}")

    def _on_approval_requested(self, event: Event) -> None:
        self.pause()
        self._line(f"[yellow]waiting[/] {self._label(event)}: {escape(event.message or '')}")

    def _on_approval_voided(self, event: Event) -> None:
        self._line(f"[yellow]approval void[/] {self._label(event)}: {escape(event.message or '')}")

    def _on_cancel_requested(self, event: Event) -> None:
        self.pause()
        again = " (interrupt again to abort)" if event.data.get("level") == 1 else ""
        self._line(f"[yellow]{escape(event.message or 'cancel requested')}[/]{again}")

    def _on_run_ended(self, event: Event) -> None:
        self.pause()


def render_plan_lines(plan: StepPlan, index: int | None = None) -> list[str]:
    flags = []
    if plan.mutating:
        flags.append("changes state")
    if plan.gated:
        flags.append("needs approval")
    if plan.destructive:
        flags.append("[red]destructive[/]")
    if plan.always:
        flags.append("always")
    number = f"{index:>2}. " if index is not None else ""
    lines = [
        f"{number}[bold]{escape(plan.id)}[/] {escape('[' + plan.action + ']')}"
        + (f" ({', '.join(flags)})" if flags else "")
    ]
    lines.append(f"      what:  {escape(plan.summary)}")
    lines.append(f"      where: {escape(plan.target)}")
    if plan.condition:
        lines.append(f"      when:  {escape(plan.condition)}")
    if plan.confirm_message:
        lines.append(f"      asks:  {escape(plan.confirm_message)}")
    lines.extend(f"      - {escape(change)}" for change in plan.changes)
    lines.extend(f"      · {escape(detail)}" for detail in plan.details)
    lines.extend(f"      [yellow]! {escape(warning)}[/]" for warning in plan.warnings)
    if plan.undo:
        lines.append(f"      undo:  {escape(plan.undo)}")
    return lines


class TerminalInteraction:
    """Approval prompts on the controlling terminal."""

    def __init__(self, console: Console, display: LiveDisplay) -> None:
        self.console = console
        self.display = display

    def can_prompt(self) -> bool:
        return sys.stdin.isatty() and sys.stdout.isatty()

    def ask_approval(self, request: ApprovalRequest) -> ApprovalAnswer:
        # The run's own SIGINT handler only counts interrupts. At a prompt, Ctrl-C must end
        # the wait at once, so the default handler is restored while the prompt is open.
        previous = signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            return self._ask(request)
        except (KeyboardInterrupt, EOFError) as e:
            self.console.print("\nno response: the run stays paused for approval")
            raise PromptAbortedError from e
        finally:
            signal.signal(signal.SIGINT, previous)

    def _ask(self, request: ApprovalRequest) -> ApprovalAnswer:
        self.display.pause()
        plan = request.plan
        self.console.print(f"\n[bold yellow]Approval needed[/] for run {request.run_id}")
        for line in render_plan_lines(plan):
            self.console.print(REDACTOR.redact(line), highlight=False)
        if request.instructions:
            self.console.print(f"\n[bold]Do this by hand:[/] {escape(request.instructions)}")
        if plan.destructive:
            target = plan.gate_target or plan.target
            answer = self.console.input(
                f"This is destructive. Type the target [bold]{escape(target)}[/] to approve, anything else rejects: "
            )
            approved = answer.strip() == target
        else:
            question = "Done, and confirm?" if request.instructions else f"Approve step {plan.id}?"
            answer = self.console.input(f"{question} {escape('[y/N]')}: ")
            approved = answer.strip().lower() in ("y", "yes")
        note = None
        if approved and request.instructions:
            note = self.console.input("Note for the journal (what you did): ").strip() or None
        return ApprovalAnswer(approved=approved, note=note)


def outcome_lines(steps: list[dict[str, Any]]) -> list[str]:
    lines = []
    for row in steps:
        extra = f"; undo {row['undo']}" if "undo" in row else ""
        note = f" ({row['note']})" if row.get("note") else ""
        lines.append(f"  {row['id']:<24} {row['status']}{extra}{escape(note)}")
    return lines
