from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import Cli

OVERRIDE = """\
apiVersion: breakglass/v1
kind: Runbook
metadata: {name: frontend-rollback, title: Our own demo}
steps:
  - id: only
    action: log.message
    with: {message: ours}
"""


def test_config_dir_overrides_builtin(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "runbooks").mkdir()
    (tmp_path / "runbooks" / "frontend-rollback.yaml").write_text(OVERRIDE)
    (tmp_path / "breakglass.yaml").write_text("runbook_dirs: [runbooks]\n")
    listed = json.loads(cli("runbooks", "--output", "json").stdout)
    [row] = [row for row in listed if row["name"] == "frontend-rollback"]
    assert row["title"] == "Our own demo"
    assert row["overrides"].endswith("catalog/frontend-rollback.yaml")
    planned = cli("plan", "frontend-rollback")
    assert planned.code == 0
    assert "overrides the built-in one" in planned.stderr


def test_unknown_runbook_lists_known(cli: Cli) -> None:
    result = cli("plan", "frontend-rollbak")
    assert result.code == 2
    assert "runbook 'frontend-rollbak' not found on the search path" in result.stderr
    assert "frontend-rollback" in result.stderr


def test_missing_runbook_dir_warns(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "breakglass.yaml").write_text("runbook_dirs: [nowhere]\n")
    result = cli("runbooks")
    assert result.code == 0
    assert "runbook directory" in result.stderr
    assert "does not exist" in result.stderr


def test_builtin_catalog_lints_clean(cli: Cli) -> None:
    result = cli("lint")
    assert result.code == 0, result.output
    assert "0 finding(s)" in result.stdout
