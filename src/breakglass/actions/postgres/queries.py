"""`pg.query`, `pg.consistency_check` and `pg.terminate_connections`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, ClassVar

from psycopg.rows import dict_row
from pydantic import Field, model_validator

from breakglass.actions.base import Action, ActionContext, ActionError, Outputs, Params, PlanResult
from breakglass.actions.postgres.client import connect, database
from breakglass.conditions import JsonCondition, evaluate
from breakglass.config.databases import DatabaseConfig

MAX_ROWS = 1000


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _short(sql: str, limit: int = 200) -> str:
    flat = " ".join(sql.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


class QueryParams(Params):
    database: str = Field(description="Name of a database under `databases:` in the config.")
    sql: str
    expect_rows: int | None = Field(
        default=None, ge=0, description="Exact number of rows expected."
    )
    expect: list[JsonCondition] = Field(
        default_factory=list,
        description="Conditions on the result, addressed as rows[0].column or row_count.",
    )


class QueryOutputs(Outputs):
    row_count: int
    rows: list[dict[str, Any]]
    columns: list[str]
    duration: float


def run_read_only(db: DatabaseConfig, sql: str, ctx: ActionContext) -> QueryOutputs:
    started = time.monotonic()
    with (
        connect(db, ctx, timeout=ctx.timeout) as connection,
        connection.transaction(),
        connection.cursor(row_factory=dict_row) as cursor,
    ):
        # The server enforces read-only, whatever the statement does.
        cursor.execute("SET TRANSACTION READ ONLY")
        cursor.execute(sql)
        columns = [column.name for column in cursor.description or []]
        fetched = cursor.fetchmany(MAX_ROWS + 1) if cursor.description else []
        row_count = cursor.rowcount if cursor.rowcount >= 0 else len(fetched)
    rows = [{key: _jsonable(value) for key, value in row.items()} for row in fetched[:MAX_ROWS]]
    return QueryOutputs(
        row_count=row_count,
        rows=rows,
        columns=columns,
        duration=round(time.monotonic() - started, 3),
    )


def result_problems(
    outputs: QueryOutputs, expect_rows: int | None, expect: list[JsonCondition]
) -> list[str]:
    """Say how a query's result differs from what was expected; empty when it matches."""
    problems = []
    if expect_rows is not None and outputs.row_count != expect_rows:
        problems.append(f"returned {outputs.row_count} rows, expected {expect_rows}")
    document = {"rows": outputs.rows, "row_count": outputs.row_count}
    return problems + [
        problem for condition in expect if (problem := evaluate(condition, document))
    ]


def run_checks(db: DatabaseConfig, ctx: ActionContext) -> tuple[list[str], list[str]]:
    """Run a database's configured checks; return the names passed and the failures."""
    passed, failed = [], []
    for check in db.checks:
        try:
            problems = result_problems(
                run_read_only(db, check.sql, ctx), check.expect_rows, check.expect
            )
        except ActionError as e:
            problems = [e.message]
        if problems:
            failed.append(f"{check.name}: {'; '.join(problems)}")
        else:
            passed.append(check.name)
    return passed, failed


class PgQuery(Action[QueryParams, QueryOutputs]):
    name = "pg.query"
    summary = "Run a read-only query and check its result."
    params_model: ClassVar[type[Params]] = QueryParams
    outputs_model: ClassVar[type[Outputs]] = QueryOutputs
    mutating = False
    idempotent = True

    def plan(self, params: QueryParams, ctx: ActionContext) -> PlanResult:
        db = database(ctx, params.database)
        checks = [f"row count is {params.expect_rows}"] if params.expect_rows is not None else []
        checks += [condition.describe() for condition in params.expect]
        return PlanResult(
            summary=f"read-only query: {_short(params.sql)}",
            target=f"database {db.where()}",
            changes=[f"expects {check}" for check in checks],
        )

    def run(self, params: QueryParams, ctx: ActionContext) -> QueryOutputs:
        outputs = run_read_only(database(ctx, params.database), params.sql, ctx)
        problems = result_problems(outputs, params.expect_rows, params.expect)
        if problems:
            raise ActionError("; ".join(problems), outputs=outputs.model_dump())
        return outputs


class ConsistencyParams(Params):
    database: str
    name: str = Field(
        default="consistency check", description="What the check verifies, for messages."
    )
    sql: str | None = Field(default=None, description="A query whose rows are failures.")
    sql_file: Path | None = Field(
        default=None, description="A file with that query, relative to the config."
    )

    @model_validator(mode="after")
    def _one_source(self) -> ConsistencyParams:
        if (self.sql is None) == (self.sql_file is None):
            raise ValueError("give exactly one of sql and sql_file")
        return self


class ConsistencyOutputs(Outputs):
    failures: int
    rows: list[dict[str, Any]]


class PgConsistencyCheck(Action[ConsistencyParams, ConsistencyOutputs]):
    name = "pg.consistency_check"
    summary = "Run a query whose returned rows are inconsistencies; any row fails the step."
    params_model: ClassVar[type[Params]] = ConsistencyParams
    outputs_model: ClassVar[type[Outputs]] = ConsistencyOutputs
    mutating = False
    idempotent = True

    def _sql(self, params: ConsistencyParams, ctx: ActionContext) -> str:
        if params.sql is not None:
            return params.sql
        assert params.sql_file is not None
        path = (
            params.sql_file
            if params.sql_file.is_absolute()
            else ctx.config.base_dir / params.sql_file
        )
        try:
            return path.read_text(encoding="utf-8")
        except OSError as e:
            raise ActionError(f"cannot read sql_file {path}: {e.strerror}") from e

    def plan(self, params: ConsistencyParams, ctx: ActionContext) -> PlanResult:
        db = database(ctx, params.database)
        return PlanResult(
            summary=f"{params.name}: read-only query whose rows are failures: {_short(self._sql(params, ctx))}",
            target=f"database {db.where()}",
        )

    def run(self, params: ConsistencyParams, ctx: ActionContext) -> ConsistencyOutputs:
        result = run_read_only(database(ctx, params.database), self._sql(params, ctx), ctx)
        outputs = ConsistencyOutputs(failures=result.row_count, rows=result.rows)
        if result.row_count:
            shown = "; ".join(str(row) for row in result.rows[:5])
            more = f" (and {result.row_count - 5} more)" if result.row_count > 5 else ""
            raise ActionError(
                f"{params.name} found {result.row_count} inconsistent rows: {shown}{more}",
                outputs=outputs.model_dump(),
            )
        return outputs


class TerminateParams(Params):
    database: str
    application_name: str | None = Field(
        default=None, description="Only sessions of this application."
    )
    user: str | None = Field(default=None, description="Only sessions of this user.")


class TerminateOutputs(Outputs):
    terminated: int
    pids: list[int]


SESSIONS_SQL = (
    "SELECT pid, usename, application_name FROM pg_stat_activity "
    "WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend' "
    "AND (%(app)s::text IS NULL OR application_name = %(app)s) AND (%(user)s::text IS NULL OR usename = %(user)s)"
)

# Both parts are constants; the filters travel as query parameters.
TERMINATE_SQL = "SELECT pid, pg_terminate_backend(pid) FROM (" + SESSIONS_SQL + ") AS sessions"  # noqa: S608


class PgTerminateConnections(Action[TerminateParams, TerminateOutputs]):
    name = "pg.terminate_connections"
    summary = (
        "Terminate the database's other sessions, optionally only an application's or a user's."
    )
    params_model: ClassVar[type[Params]] = TerminateParams
    outputs_model: ClassVar[type[Outputs]] = TerminateOutputs
    mutating = True
    idempotent = True

    def _filters(self, params: TerminateParams) -> dict[str, str | None]:
        return {"app": params.application_name, "user": params.user}

    def plan(self, params: TerminateParams, ctx: ActionContext) -> PlanResult:
        db = database(ctx, params.database)
        with connect(db, ctx, timeout=ctx.timeout) as connection:
            sessions = connection.execute(SESSIONS_SQL, self._filters(params)).fetchall()
        which = (
            ", ".join(f"{key}={value}" for key, value in self._filters(params).items() if value)
            or "all"
        )
        return PlanResult(
            summary=f"terminate {len(sessions)} session(s) now connected ({which}), all but breakglass's own",
            target=f"database {db.where()}",
            changes=[
                f"pid {pid} ({user}, {app or 'no application name'})"
                for pid, user, app in sessions[:20]
            ],
            mutating=True,
        )

    def run(self, params: TerminateParams, ctx: ActionContext) -> TerminateOutputs:
        db = database(ctx, params.database)
        with connect(db, ctx, timeout=ctx.timeout) as connection:
            rows = connection.execute(
                TERMINATE_SQL,
                self._filters(params),
            ).fetchall()
        pids = [int(pid) for pid, done in rows if done]
        return TerminateOutputs(terminated=len(pids), pids=pids)


class VerifyParams(Params):
    database: str


class VerifyOutputs(Outputs):
    passed: list[str]


class PgVerify(Action[VerifyParams, VerifyOutputs]):
    name = "pg.verify"
    summary = (
        "Run the database's configured checks (databases.NAME.checks); any failure fails the step."
    )
    params_model: ClassVar[type[Params]] = VerifyParams
    outputs_model: ClassVar[type[Outputs]] = VerifyOutputs
    mutating = False
    idempotent = True

    def plan(self, params: VerifyParams, ctx: ActionContext) -> PlanResult:
        db = database(ctx, params.database)
        warnings = (
            []
            if db.checks
            else [f"databases.{params.database}.checks is empty, so this step proves nothing"]
        )
        return PlanResult(
            summary=f"run {len(db.checks)} configured check(s), read-only",
            target=f"database {db.where()}",
            changes=[f"check {check.name}: {_short(check.sql, 120)}" for check in db.checks],
            warnings=warnings,
        )

    def run(self, params: VerifyParams, ctx: ActionContext) -> VerifyOutputs:
        db = database(ctx, params.database)
        passed, failed = run_checks(db, ctx)
        if failed:
            raise ActionError(
                f"{len(failed)} of {len(db.checks)} check(s) failed: " + " | ".join(failed),
                outputs={"passed": passed},
            )
        return VerifyOutputs(passed=passed)
