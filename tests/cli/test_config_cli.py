from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import Cli


def test_config_validate_reports_line(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "breakglass.yaml").write_text("approval_timeout: soon\n")
    result = cli("config", "validate")
    assert result.code == 2
    assert "breakglass.yaml:1: approval_timeout: invalid duration 'soon'" in result.stderr
    assert "Traceback" not in result.output


def test_config_schema_is_json_schema(cli: Cli) -> None:
    result = cli("config", "schema")
    assert result.code == 0
    schema = json.loads(result.stdout)
    assert "state_url" in schema["properties"]


def test_init_writes_valid_config(cli: Cli, tmp_path: Path) -> None:
    assert cli("init").code == 0
    assert cli("config", "validate").code == 0
    again = cli("init")
    assert again.code == 2
    assert "already exists" in again.stderr


def test_audit_verify_on_empty_store(cli: Cli) -> None:
    result = cli("audit", "verify", "--output", "json")
    assert result.code == 0
    assert json.loads(result.stdout)["ok"] is True


def test_audit_verify_bad_head_is_input_error(cli: Cli) -> None:
    result = cli("audit", "verify", "--head", "nonsense")
    assert result.code == 2
    assert "SEQ:HASH" in result.stderr


def test_audit_head_round_trips(cli: Cli, tmp_path: Path) -> None:
    runbook = tmp_path / "note.yaml"
    runbook.write_text(
        "apiVersion: breakglass/v1\nkind: Runbook\nmetadata: {name: note}\n"
        "steps:\n  - {id: only, action: log.message, with: {message: hello}}\n"
    )
    assert cli("plan", str(runbook)).code == 0
    head = json.loads(cli("audit", "head", "--output", "json").stdout)
    assert head["seq"] == 1
    verified = cli("audit", "verify", "--head", head["head"])
    assert verified.code == 0
    assert f"head {head['head']}" in verified.stdout
