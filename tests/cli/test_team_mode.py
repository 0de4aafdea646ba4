"""Team mode: the state store on a real PostgreSQL server shared by several processes."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import Cli
from tests.postgres import PostgresServer
from tests.processes import race_runs

RUNBOOK = """\
apiVersion: breakglass/v1
kind: Runbook
metadata: {{name: shared}}
locks: [k8s:deployment/backend]
steps:
  - id: hold
    action: shell.run
    timeout: 20s
    with: {{argv: [sh, -c, "echo $$ >> {side}; sleep 1"]}}
"""


def test_runs_and_audit_on_postgres(
    cli: Cli, tmp_path: Path, postgres_server: PostgresServer
) -> None:
    url = postgres_server.url(postgres_server.create_database())
    (tmp_path / "breakglass.yaml").write_text(f"state_url: {url}\n")
    side = tmp_path / "side.txt"
    runbook = tmp_path / "shared.yaml"
    runbook.write_text(RUNBOOK.format(side=side))
    results = race_runs(cli, runbook)
    assert sorted(code for code, _, _ in results) == [0, 5], results
    assert len(side.read_text().split()) == 1
    runs = json.loads(cli("runs", "--output", "json").stdout)
    assert [run["state"] for run in runs] == ["succeeded"]
    assert runs[0]["id"].startswith("RUN-")
    verified = cli("audit", "verify", "--output", "json")
    assert json.loads(verified.stdout)["ok"] is True


def test_unreachable_postgres_is_clear(cli: Cli, tmp_path: Path) -> None:
    # Port 9 on loopback has no PostgreSQL: the connection is refused at once.
    (tmp_path / "breakglass.yaml").write_text("state_url: postgresql+psycopg://bg@127.0.0.1:9/bg\n")
    result = cli("runs")
    assert result.code == 6
    assert "cannot open state store postgresql+psycopg://bg@127.0.0.1:9/bg" in result.stderr
    assert "hint: check state_url" in result.stderr
    assert "Traceback" not in result.output
