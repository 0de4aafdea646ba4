"""`pg.migrations.current`, `pg.migrations.rollback_to` and `pg.migrations.validate`.

A database's migration tool is configured under `migrations:` (see MigrationsConfig):
the project's own commands, or Alembic in-process. A rollback is a chain of single
downgrades along one line of history, each journaled before and after it runs. After each
one the version is read back, so a tool that exits 0 without reverting anything fails the
step instead of passing it.

Versions are ids as the tool prints them. A target may also be relative, `-N`, meaning
N migrations below the current one.
"""

from __future__ import annotations

import dataclasses
import re
import shlex
import subprocess
import tempfile
import uuid
from abc import ABC, abstractmethod
from types import TracebackType
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field, field_validator

from breakglass.actions.base import (
    Action,
    ActionCancelledError,
    ActionContext,
    ActionError,
    ActionTimeoutError,
    Outputs,
    Params,
    PlanResult,
)
from breakglass.actions.postgres.client import child_env, database, kill_group
from breakglass.config.databases import DatabaseConfig
from breakglass.config.migrations import MigrationsConfig
from breakglass.config.redaction import REDACTOR
from breakglass.config.secrets import resolve_secret
from breakglass.durations import format_duration

RELATIVE_TARGET = re.compile(r"-([1-9][0-9]*)")
# Colour and cursor sequences (CSI), window titles and links (OSC), and two-byte escapes.
ANSI_ESCAPE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
MAX_CAPTURE = 1024 * 1024
# How many known versions an error lists. It lists the newest, because targets are recent.
KNOWN_SHOWN = 20
POLL_SECONDS = 0.1


class DowngradeStep(BaseModel):
    """One single-migration downgrade, from the version it reverts to the one below it."""

    from_version: str
    to_version: str

    def __str__(self) -> str:
        return f"{self.from_version} → {self.to_version}"


def clean_output(data: bytes) -> str:
    """Decode a command's output, cut at 1 MiB, with ANSI escapes removed and secrets masked."""
    text = data[:MAX_CAPTURE].decode("utf-8", errors="replace")
    if len(data) > MAX_CAPTURE:
        text += "\n[output cut at 1 MiB]"
    return REDACTOR.redact(ANSI_ESCAPE.sub("", text))


def listing(versions: list[str]) -> str:
    """Name versions oldest first for a message, keeping the newest when there are many."""
    if not versions:
        return "none"
    if len(versions) <= KNOWN_SHOWN:
        return ", ".join(versions)
    return f"{len(versions) - KNOWN_SHOWN} older, then " + ", ".join(versions[-KNOWN_SHOWN:])


def version_of(heads: list[str]) -> str | None:
    """Return the version a database is at: None before any migration, joined heads for branches."""
    if not heads:
        return None
    return heads[0] if len(heads) == 1 else ",".join(sorted(heads))


class MigrationTool(ABC):
    """One database's migration tool: where the database is, which versions exist, one step down.

    A tool is a context manager because some hold resources (an engine) until closed.
    """

    kind: ClassVar[Literal["command", "alembic"]]

    def __init__(
        self,
        name: str,
        db: DatabaseConfig,
        settings: MigrationsConfig,
        ctx: ActionContext,
        started: float,
    ) -> None:
        self.name = name
        self.db = db
        self.settings = settings
        self.ctx = ctx
        self.started = started

    def __enter__(self) -> MigrationTool:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Release the tool's resources. The command tool has none."""
        return None

    def budget(self) -> float:
        """Return the seconds one command or downgrade may take: its own limit or the step's rest."""
        return min(self.settings.timeout, self.ctx.remaining(self.started))

    def check_time(self, doing: str) -> float:
        """Return the budget for `doing`, or raise when the run was aborted or no time is left."""
        if self.ctx.cancelled.is_set():
            raise ActionCancelledError(f"{doing} was not started: the run was aborted")
        budget = self.budget()
        if budget <= 0:
            raise ActionTimeoutError(
                f"{doing} was not started: the step's timeout of {format_duration(self.ctx.timeout)} is used up"
            )
        return budget

    @abstractmethod
    def heads(self) -> list[str]:
        """Read the versions the database is at: none, one, or one per branch (Alembic only)."""

    @abstractmethod
    def known(self) -> list[str]:
        """Return every version the tool lists, oldest first."""

    @abstractmethod
    def resolve(self, version: str) -> str:
        """Return the tool's id for `version`, or raise ActionError naming the known versions."""

    @abstractmethod
    def parent(self, version: str) -> str | None:
        """Return the version one downgrade below `version`, or None for the first migration."""

    @abstractmethod
    def downgrade(self, step: DowngradeStep) -> None:
        """Revert exactly the migration `step.from_version`, within the step's deadline."""

    def canonical(self, version: str) -> str:
        """Return the id the tool reports for `version`, or `version` when it names none."""
        return version

    def unknown(self, version: str) -> ActionError:
        return ActionError(
            f"migration version {version!r} names no single version of the {self.kind} migrations "
            f"of database {self.name} (known versions, oldest first: {listing(self.known())}); give one of "
            "them, or -N to go back N migrations"
        )

    def empty_hint(self) -> str:
        """Return a hint for why the tool may read no version although migrations are applied."""
        return ""


class CommandTool(MigrationTool):
    """The project's own migration commands, as argv lists; versions are parsed from their output."""

    kind = "command"

    def __init__(
        self,
        name: str,
        db: DatabaseConfig,
        settings: MigrationsConfig,
        ctx: ActionContext,
        started: float,
    ) -> None:
        super().__init__(name, db, settings, ctx, started)
        self.pattern = settings.compiled_pattern()
        self._history: list[str] | None = None
        base = ctx.config.base_dir
        self.cwd = None if settings.cwd is None else base / settings.cwd
        self.env = child_env(db, ctx)
        self.env.update(settings.env)
        for variable, reference in settings.secret_env.items():
            self.env[variable] = resolve_secret(reference, base_dir=base)

    def versions_in(self, output: str) -> list[str]:
        """Return the versions found in output, one per matching line, first occurrence kept."""
        found: list[str] = []
        for line in output.splitlines():
            match = self.pattern.search(line)
            if match is None:
                continue
            group = "version" if "version" in self.pattern.groupindex else 1
            version = (match.group(group) or "").strip()
            if version and version not in found:
                found.append(version)
        return found

    def heads(self) -> list[str]:
        versions = self.versions_in(self.run_command("current"))
        if len(versions) > 1:
            raise ActionError(
                f"the current command of database {self.name} printed several versions "
                f"({', '.join(versions)}); make version_pattern match only the line with the current version"
            )
        return versions

    def known(self) -> list[str]:
        if self._history is None:
            versions = self.versions_in(self.run_command("history"))
            if self.settings.history_order == "newest_first":
                versions.reverse()
            self._history = versions
        return self._history

    def resolve(self, version: str) -> str:
        if version not in self.known():
            raise self.unknown(version)
        return version

    def parent(self, version: str) -> str | None:
        history = self.known()
        if version not in history:
            raise ActionError(
                f"version {version} of database {self.name} is missing from the output of the "
                f"history command (it lists: {listing(history)}); check migrations.history and "
                "version_pattern"
            )
        position = history.index(version)
        return history[position - 1] if position > 0 else None

    def downgrade(self, step: DowngradeStep) -> None:
        self.run_command("down")

    def empty_hint(self) -> str:
        return (
            "; if migrations are applied, check that version_pattern matches the line in which "
            "the current command prints the version"
        )

    def run_command(self, command_name: Literal["current", "history", "down"]) -> str:
        """Run one configured command and return its cleaned standard output, or raise."""
        argv: list[str] = getattr(self.settings, command_name)
        argv_text = REDACTOR.redact(shlex.join(argv))
        for argument in argv:
            if REDACTOR.contains_secret(argument):
                raise ActionError(
                    f"the {command_name} command of database {self.name} has a secret value in its argv, "
                    "which other users of this host could read; pass it through secret_env instead"
                )
        budget = self.check_time(f"the {command_name} command {argv_text}")
        if self.settings.job is not None:
            return self._run_in_job(command_name, argv, argv_text, budget)
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            # Output goes to files, not pipes: a command that leaves a background process
            # holding its stdout would otherwise never reach end of file.
            try:
                child = subprocess.Popen(
                    argv,
                    cwd=self.cwd,
                    env=self.env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    start_new_session=True,
                )
            except OSError as e:
                raise ActionError(
                    f"cannot start the {command_name} command {argv_text} of database {self.name}: "
                    f"{e.strerror}; check migrations.{command_name} and migrations.cwd"
                ) from e
            self.ctx.on_process(child.pid)
            self._wait(child, command_name, argv_text, budget)
            out.seek(0)
            err.seek(0)
            stdout, stderr = clean_output(out.read()), clean_output(err.read())
        if child.returncode != 0:
            tail = (stderr.strip() or stdout.strip())[-500:]
            raise ActionError(
                f"the {command_name} command {argv_text} exited with {child.returncode}"
                + (f": {tail}" if tail else " and printed nothing")
            )
        return stdout

    def _run_in_job(self, command_name: str, argv: list[str], argv_text: str, budget: float) -> str:
        """Run one command in a Job from the Deployment of the release that contains the migrations."""
        from breakglass.actions.kubernetes.client import kube
        from breakglass.actions.kubernetes.jobs import JobParams, run_job

        job = self.settings.job
        assert job is not None
        suffix = uuid.uuid4().hex[:6]
        name = f"{job.deployment}-migration-{command_name}-{suffix}"[:63].rstrip("-")
        params = JobParams(
            deployment=job.deployment,
            container=job.container,
            argv=argv,
            env=dict(self.settings.env),
            name=name,
        )
        scoped = dataclasses.replace(self.ctx, timeout=budget)
        try:
            outputs = run_job(kube(scoped), params, scoped)
        except ActionError as e:
            raise ActionError(
                f"the {command_name} command {argv_text} failed in Job {name}: {e.message}"
            ) from None
        return clean_output(outputs.logs.encode())

    def _wait(
        self, child: subprocess.Popen[bytes], command_name: str, argv_text: str, budget: float
    ) -> None:
        deadline = self.ctx.clock.monotonic() + budget
        while True:
            if self.ctx.cancelled.is_set():
                kill_group(child)
                raise ActionCancelledError(
                    f"the {command_name} command {argv_text} was stopped: the run was aborted"
                )
            left = deadline - self.ctx.clock.monotonic()
            if left <= 0:
                kill_group(child)
                raise ActionTimeoutError(
                    f"the {command_name} command {argv_text} did not finish within "
                    f"{format_duration(budget)}; its process group was killed"
                )
            try:
                child.wait(timeout=min(POLL_SECONDS, left))
            except subprocess.TimeoutExpired:
                continue
            return


def open_tool(ctx: ActionContext, name: str, started: float) -> MigrationTool:
    """Return the migration tool of database `name`, or raise when it has none configured."""
    db = database(ctx, name)
    settings = db.migrations
    if settings is None:
        raise ActionError(
            f"database {name} has no migrations configured; add `migrations:` with kind command "
            f"or alembic under databases.{name} in {ctx.config.source}"
        )
    if settings.kind == "alembic":
        from breakglass.actions.postgres.alembic_tool import AlembicTool

        return AlembicTool(name, db, settings, ctx, started)
    return CommandTool(name, db, settings, ctx, started)


def plan_downgrades(tool: MigrationTool, heads: list[str], target: str) -> list[DowngradeStep]:
    """Return the single downgrades from the current version to `target`, newest first.

    An empty list means the database is at the target already. Targets newer than the
    current version, unknown to the tool, past the first migration or across branches
    are rejected with the reason.
    """
    where = tool.db.where()
    relative = RELATIVE_TARGET.fullmatch(target)
    if not heads:
        raise ActionError(
            f"{where} has no migrations applied, so there is nothing to roll back{tool.empty_hint()}"
        )
    if len(heads) > 1:
        listed = ", ".join(sorted(heads))
        if relative:
            raise ActionError(
                f"relative target {target} is ambiguous: {where} is at several heads ({listed}); "
                "give a version id instead"
            )
        # NOTE: rolling back several branches one revision at a time needs an order across
        # branches that Alembic's downgrade command cannot express for every graph.
        raise ActionError(
            f"{where} is at several heads ({listed}); pg.migrations.rollback_to goes back along "
            "one line of history only: merge the heads, or downgrade each branch with alembic by hand"
        )
    head = heads[0]
    if relative:
        return _steps_back(tool, head, int(relative.group(1)), target)
    target_version = tool.resolve(target)
    if target_version != head and _is_below(tool, head, target_version):
        raise ActionError(
            f"version {target_version} is newer than the current version {head} of {where}; "
            "pg.migrations.rollback_to only goes back (to go forward, deploy and migrate)"
        )
    steps: list[DowngradeStep] = []
    current = head
    while current != target_version:
        below = tool.parent(current)
        if below is None:
            raise ActionError(
                f"version {target_version} is not below the current version {head} of {where} "
                f"(versions below it: {listing(_lineage(tool, head))}); give one of those"
            )
        steps.append(DowngradeStep(from_version=current, to_version=below))
        current = below
    return steps


def _steps_back(tool: MigrationTool, head: str, count: int, target: str) -> list[DowngradeStep]:
    steps: list[DowngradeStep] = []
    current = head
    for _ in range(count):
        below = tool.parent(current)
        if below is None:
            raise ActionError(
                f"target {target} goes back past the first migration {current}: "
                f"{tool.db.where()} has {len(steps)} migration(s) below {head}, and rolling back "
                "every migration is not supported; give a smaller count"
            )
        steps.append(DowngradeStep(from_version=current, to_version=below))
        current = below
    return steps


def _is_below(tool: MigrationTool, lower: str, upper: str) -> bool:
    """Return whether `lower` is reached by downgrading from `upper`."""
    return lower in _lineage(tool, upper)


def _lineage(tool: MigrationTool, version: str) -> list[str]:
    """Return the versions below `version` down to the first migration, oldest first."""
    below: list[str] = []
    current: str | None = version
    while current is not None:
        try:
            current = tool.parent(current)
        except ActionError:
            # A merge revision ends the single line that the caller can follow.
            break
        if current is not None:
            below.append(current)
    return list(reversed(below))


class CurrentParams(Params):
    database: str


class CurrentOutputs(Outputs):
    version: str | None = Field(
        description="The current version; None before any migration, heads joined by ',' for branches."
    )
    heads: list[str]
    tool: Literal["command", "alembic"]


class PgMigrationsCurrent(Action[CurrentParams, CurrentOutputs]):
    name = "pg.migrations.current"
    summary = (
        "Read the schema migration version a database is at, with its configured migration tool."
    )
    params_model: ClassVar[type[Params]] = CurrentParams
    outputs_model: ClassVar[type[Outputs]] = CurrentOutputs
    mutating = False
    idempotent = True
    enforces_timeout = True

    def plan(self, params: CurrentParams, ctx: ActionContext) -> PlanResult:
        db = database(ctx, params.database)
        settings = db.migrations
        kind = settings.kind if settings is not None else "no tool configured"
        return PlanResult(
            summary=f"read the migration version of {db.where()} ({kind})",
            target=f"database {db.where()}",
        )

    def run(self, params: CurrentParams, ctx: ActionContext) -> CurrentOutputs:
        with open_tool(ctx, params.database, ctx.clock.monotonic()) as tool:
            heads = sorted(tool.heads())
            return CurrentOutputs(version=version_of(heads), heads=heads, tool=tool.kind)


class RollbackParams(Params):
    database: str
    version: str = Field(
        min_length=1,
        description="The version to return to, or -N for N migrations below the current one.",
    )

    @field_validator("version")
    @classmethod
    def _target_form(cls, value: str) -> str:
        value = value.strip()
        if value.startswith("-") and not RELATIVE_TARGET.fullmatch(value):
            raise ValueError(
                f"invalid relative target {value!r}: write -N with N of 1 or more, for example -2"
            )
        return value


class RollbackOutputs(Outputs):
    from_version: str
    to_version: str
    steps: list[DowngradeStep]


class PgMigrationsRollbackTo(Action[RollbackParams, RollbackOutputs]):
    name = "pg.migrations.rollback_to"
    summary = (
        "Roll schema migrations back to a version, one downgrade at a time, each journaled and "
        "checked by reading the version back."
    )
    params_model: ClassVar[type[Params]] = RollbackParams
    outputs_model: ClassVar[type[Outputs]] = RollbackOutputs
    mutating = True
    # A relative target counts from the version found when the step starts, so running the
    # step again after a crash would go back further. A resume waits for the operator instead.
    idempotent = False
    default_timeout = 1800.0
    enforces_timeout = True

    def plan(self, params: RollbackParams, ctx: ActionContext) -> PlanResult:
        db = database(ctx, params.database)
        if db.migrations is not None and db.migrations.job is not None:
            # Reading the versions would start Jobs in the cluster, and a plan changes nothing.
            return PlanResult(
                summary=f"roll the migrations of {db.where()} back to {params.version}, one "
                f"downgrade at a time, in Jobs from {db.migrations.job.deployment}'s image",
                target=f"database {db.where()}",
                changes=[
                    "the downgrade steps are read when the step runs, from the release's own commands"
                ],
                mutating=True,
            )
        with open_tool(ctx, params.database, ctx.clock.monotonic()) as tool:
            where = tool.db.where()
            heads = tool.heads()
            steps = plan_downgrades(tool, heads, params.version)
        if not steps:
            return PlanResult(
                summary=f"nothing to do: {where} is at migration version {heads[0]} already",
                target=f"database {where}",
            )
        warnings = []
        if RELATIVE_TARGET.fullmatch(params.version):
            warnings.append(
                f"{params.version} counts from the version found when the step runs; "
                f"that is {steps[-1].to_version} now"
            )
        return PlanResult(
            summary=(
                f"roll the {tool.kind} migrations of {where} back from {heads[0]} to "
                f"{steps[-1].to_version}: {len(steps)} downgrade(s), one at a time, each checked"
            ),
            target=f"database {where}",
            changes=[f"downgrade {step}" for step in steps],
            warnings=warnings,
            mutating=True,
        )

    def run(self, params: RollbackParams, ctx: ActionContext) -> RollbackOutputs:
        with open_tool(ctx, params.database, ctx.clock.monotonic()) as tool:
            heads = tool.heads()
            steps = plan_downgrades(tool, heads, params.version)
            outputs = RollbackOutputs(
                from_version=heads[0],
                to_version=steps[-1].to_version if steps else heads[0],
                steps=[],
            )
            for number, step in enumerate(steps, start=1):
                self._downgrade_one(tool, step, number, len(steps), outputs)
                outputs.steps.append(step)
            return outputs

    def _downgrade_one(
        self,
        tool: MigrationTool,
        step: DowngradeStep,
        number: int,
        total: int,
        outputs: RollbackOutputs,
    ) -> None:
        """Run one downgrade between two journal notes and check the version it leaves."""
        where = tool.db.where()
        count = f"{number} of {total}"
        data: dict[str, Any] = {
            "database": tool.name,
            **step.model_dump(),
            "step": number,
            "steps": total,
        }
        tool.ctx.note(f"downgrading {where}: {step} ({count})", data)
        progress = (
            f"{len(outputs.steps)} downgrade(s) done before this one, which started from "
            f"{step.from_version}: check where the database is with pg.migrations.current, fix "
            f"the cause, and roll back to {outputs.to_version} again to continue"
        )
        try:
            tool.downgrade(step)
        except ActionError as e:
            raise _with_context(e, f"downgrade {step} of {where} failed", progress, outputs) from e
        try:
            now = tool.heads()
        except ActionError as e:
            raise _with_context(
                e,
                f"downgrade {step} of {where} finished, but reading the version afterwards failed",
                progress,
                outputs,
            ) from e
        if now != [step.to_version]:
            raise ActionError(
                f"downgrade {step} of {where} exited successfully, but the database is at "
                f"{version_of(now) or 'no version'}, not {step.to_version}; {progress}",
                outputs=outputs.model_dump(),
            )
        tool.ctx.note(f"downgraded {where}: {step} ({count})", data)


def _with_context(
    error: ActionError, what: str, progress: str, outputs: RollbackOutputs
) -> ActionError:
    """Return `error` as the same kind of error, with what failed and how far the rollback got."""
    return type(error)(
        f"{what}: {error.message}; {progress}",
        temporary=error.temporary,
        unreachable=error.unreachable,
        outputs=outputs.model_dump(),
    )


class ValidateParams(Params):
    database: str
    expect: str = Field(min_length=1, description="The version the database must be at.")


class ValidateOutputs(Outputs):
    version: str | None


class PgMigrationsValidate(Action[ValidateParams, ValidateOutputs]):
    name = "pg.migrations.validate"
    summary = "Fail unless a database is at the expected schema migration version."
    params_model: ClassVar[type[Params]] = ValidateParams
    outputs_model: ClassVar[type[Outputs]] = ValidateOutputs
    mutating = False
    idempotent = True
    enforces_timeout = True

    def plan(self, params: ValidateParams, ctx: ActionContext) -> PlanResult:
        db = database(ctx, params.database)
        return PlanResult(
            summary=f"check that {db.where()} is at migration version {params.expect}",
            target=f"database {db.where()}",
        )

    def run(self, params: ValidateParams, ctx: ActionContext) -> ValidateOutputs:
        with open_tool(ctx, params.database, ctx.clock.monotonic()) as tool:
            version = version_of(tool.heads())
            expected = tool.canonical(params.expect)
            where = tool.db.where()
        if version != expected:
            raise ActionError(
                f"{where} is at migration version {version or 'none (no migrations applied)'}, "
                f"expected {expected}; do not let writers back until the schema matches",
                outputs={"version": version},
            )
        return ValidateOutputs(version=version)
