from __future__ import annotations

from pathlib import Path

import pytest

from breakglass.config.loading import ConfigInvalidError, load_config
from breakglass.errors import ConfigError


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_embedded_defaults_without_file() -> None:
    loaded = load_config(None)
    assert loaded.path is None
    assert loaded.model.approval_timeout == 3600.0


def test_explicit_path_wins_over_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = write(tmp_path / "a.yaml", "vars: {name: a}\n")
    second = write(tmp_path / "b.yaml", "vars: {name: b}\n")
    monkeypatch.setenv("BREAKGLASS_CONFIG", str(second))
    assert load_config(str(first)).model.vars["name"] == "a"
    assert load_config(None).model.vars["name"] == "b"


def test_local_file_found_last(tmp_path: Path) -> None:
    write(tmp_path / "breakglass.yaml", "vars: {name: local}\n")
    assert load_config(None).model.vars["name"] == "local"


def test_missing_explicit_file_names_source(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"from --config"):
        load_config(str(tmp_path / "nope.yaml"))


def test_unknown_field_named_with_line(tmp_path: Path) -> None:
    path = write(
        tmp_path / "c.yaml",
        "vars: {}\nhealth:\n  checks:\n    - name: web\n      url: http://127.0.0.1:1/\n      colour: red\n",
    )
    with pytest.raises(ConfigInvalidError) as caught:
        load_config(str(path))
    finding = caught.value.findings[0]
    assert finding.line == 6
    assert finding.where == "health.checks[0].colour"
    assert "unknown field" in finding.message


def test_duration_without_unit_rejected(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", "approval_timeout: 30\n")
    with pytest.raises(ConfigInvalidError, match="has no unit"):
        load_config(str(path))


def test_password_in_state_url_rejected(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", "state_url: postgresql+psycopg://bg:hunter2@127.0.0.1/bg\n")
    with pytest.raises(ConfigInvalidError, match="contains a password"):
        load_config(str(path))


def test_invalid_secret_reference_rejected(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", "audit:\n  key: s3cr3t-literal\n")
    with pytest.raises(ConfigInvalidError, match="invalid secret reference"):
        load_config(str(path))


def test_yaml_syntax_error_has_line(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", "vars:\n  a: [1, 2\n")
    with pytest.raises(ConfigInvalidError) as caught:
        load_config(str(path))
    assert caught.value.findings[0].line is not None
    assert "invalid YAML" in caught.value.findings[0].message


def test_response_longer_than_resolution_rejected(tmp_path: Path) -> None:
    path = write(
        tmp_path / "c.yaml",
        "incidents:\n  severities:\n    P1: {response: 5h, resolution: 4h, update_every: 1h}\n",
    )
    with pytest.raises(
        ConfigInvalidError, match="response target must not be longer than the resolution target"
    ):
        load_config(str(path))
