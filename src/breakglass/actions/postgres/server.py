"""Server-side commands run as the cluster's OS user, and `pg.server_stop` / `pg.server_start`.

PostgreSQL refuses to run as root, and files in its data directory must belong to its
owner, so these commands run as `os_user`: directly when breakglass already runs as that
user, through `runuser -u USER --` as root, and otherwise through `sudo -n -u USER --`,
which fails at once instead of asking for a password. The plan shows the exact argv.
"""

from __future__ import annotations

import os
import pwd
import subprocess
import time
from typing import ClassVar

from breakglass.actions.base import Action, ActionContext, ActionError, Outputs, Params, PlanResult
from breakglass.actions.postgres.client import database, failure_output, program, run_program
from breakglass.config.databases import DatabaseConfig


def as_owner(argv: list[str], os_user: str | None) -> list[str]:
    """Prefix argv so it runs as `os_user`."""
    if os_user is None:
        return argv
    try:
        current = pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        current = str(os.geteuid())
    if current == os_user:
        return argv
    if os.geteuid() == 0:
        return ["runuser", "-u", os_user, "--", *argv]
    return ["sudo", "-n", "-u", os_user, "--", *argv]


def control_argv(db: DatabaseConfig, verb: str) -> list[str]:
    """Return the argv that stops or starts the server, as its OS user."""
    control = db.server_control
    if control is None:
        raise ActionError(
            f"database {db.where()} has no server_control configured; add one to stop or start it"
        )
    if control.kind == "systemctl":
        assert control.unit is not None
        return ["systemctl", verb, control.unit]
    if control.kind == "command":
        argv = control.stop if verb == "stop" else control.start
        assert argv is not None
        return as_owner(list(argv), db.os_user)
    assert db.data_directory is not None
    pg_ctl = program(db, "pg_ctl")
    base = [pg_ctl, "-D", str(db.data_directory), "-w", "-t", str(int(control.timeout))]
    if verb == "stop":
        return as_owner([*base, "stop", "-m", "fast"], db.os_user)
    # Without -l the server would write its log to pg_ctl's output, which is discarded.
    return as_owner([*base, "-l", str(db.log_file()), "start"], db.os_user)


class ServerParams(Params):
    database: str


class ServerOutputs(Outputs):
    argv: list[str]
    duration: float


class _ServerAction(Action[ServerParams, ServerOutputs]):
    verb: ClassVar[str]
    params_model: ClassVar[type[Params]] = ServerParams
    outputs_model: ClassVar[type[Outputs]] = ServerOutputs
    mutating = True
    idempotent = True
    default_timeout = 180.0
    enforces_timeout = True

    def plan(self, params: ServerParams, ctx: ActionContext) -> PlanResult:
        db = database(ctx, params.database)
        argv = control_argv(db, self.verb)
        return PlanResult(
            summary=f"{self.verb} the PostgreSQL server of {db.where()}",
            target=f"database {db.where()}",
            changes=[f"argv: {argv}"],
            mutating=True,
        )

    def run(self, params: ServerParams, ctx: ActionContext) -> ServerOutputs:
        db = database(ctx, params.database)
        started = time.monotonic()
        argv = control_server(db, self.verb, ctx, started=started)
        return ServerOutputs(argv=argv, duration=round(time.monotonic() - started, 3))


def plain_env() -> dict[str, str]:
    """Return the environment of server-side commands: the path and the C locale, no secrets.

    The C locale keeps pg_controldata's field names in English, which the PITR plan parses.
    """
    env = {name: os.environ[name] for name in ("PATH", "TZ") if name in os.environ}
    return env | {"LANG": "C", "LC_ALL": "C"}


def control_server(
    db: DatabaseConfig, verb: str, ctx: ActionContext, *, started: float
) -> list[str]:
    """Stop or start the server with its configured control; return the argv that ran."""
    argv = control_argv(db, verb)
    done = owner_run(argv, ctx, started=started, what=f"{verb} {db.where()}")
    if done.returncode != 0:
        reason = failure_output(done)
        hint = (
            " (sudo -n needs a rule letting this user run it without a password)"
            if argv[0] == "sudo"
            else ""
        )
        raise ActionError(
            f"{verb} of {db.where()} failed with exit {done.returncode}{hint}: {reason}"
        )
    return argv


def owner_run(
    argv: list[str],
    ctx: ActionContext,
    *,
    started: float,
    what: str,
    stdin: bytes | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run argv (already prefixed by as_owner) and return its result; a missing program is an ActionError."""
    try:
        return run_program(argv, plain_env(), ctx, started=started, stdin=stdin)
    except FileNotFoundError as e:
        raise ActionError(f"cannot {what}: {argv[0]} not found") from e


def owner_check(
    db: DatabaseConfig,
    argv: list[str],
    ctx: ActionContext,
    *,
    started: float,
    what: str,
    stdin: bytes | None = None,
) -> bytes:
    """Run argv as the cluster's OS user; raise naming `what` unless it exits 0. Return stdout."""
    done = owner_run(as_owner(argv, db.os_user), ctx, started=started, what=what, stdin=stdin)
    if done.returncode != 0:
        raise ActionError(f"cannot {what}: exit {done.returncode}: {failure_output(done)}")
    return done.stdout


class PgServerStop(_ServerAction):
    name = "pg.server_stop"
    summary = "Stop the PostgreSQL server (fast shutdown), as its OS user."
    verb = "stop"


class PgServerStart(_ServerAction):
    name = "pg.server_start"
    summary = "Start the PostgreSQL server and wait until it accepts connections, as its OS user."
    verb = "start"
