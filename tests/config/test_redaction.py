from __future__ import annotations

import logging
from pathlib import Path

import pytest

from breakglass.config.redaction import MASK, REDACTOR, RedactingFilter
from breakglass.config.secrets import resolve_secret
from breakglass.errors import SecretError


def test_env_secret_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BG_TOKEN", "tok-abc123/+=")
    assert resolve_secret("env:BG_TOKEN") == "tok-abc123/+="
    assert REDACTOR.redact("Authorization: Bearer tok-abc123/+=") == f"Authorization: Bearer {MASK}"
    assert REDACTOR.redact("q=tok-abc123%2F%2B%3D") == f"q={MASK}"


def test_file_secret_relative_to_base(tmp_path: Path) -> None:
    (tmp_path / "key").write_text("file-secret-value\n")
    assert resolve_secret("file:key", base_dir=tmp_path) == "file-secret-value"


def test_missing_env_secret_says_what_to_do() -> None:
    with pytest.raises(SecretError) as caught:
        resolve_secret("env:BG_NOT_SET_ANYWHERE")
    assert "BG_NOT_SET_ANYWHERE is not set" in caught.value.message
    assert caught.value.hint is not None


def test_short_secret_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BG_SHORT", "ab")
    with pytest.raises(SecretError, match="shorter than"):
        resolve_secret("env:BG_SHORT")


def test_logging_filter_masks_arguments(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("BG_TOKEN", "very-secret-token")
    resolve_secret("env:BG_TOKEN")
    logger = logging.getLogger("test.redaction")
    logger.addFilter(RedactingFilter())
    with caplog.at_level(logging.INFO, logger="test.redaction"):
        logger.info("calling with %s", "very-secret-token")
    assert "very-secret-token" not in caplog.text
    assert MASK in caplog.text


def test_nested_data_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BG_TOKEN", "nested-secret")
    resolve_secret("env:BG_TOKEN")
    data = {"outer": ["x nested-secret", {"nested-secret": 1}]}
    assert REDACTOR.redact_data(data) == {"outer": [f"x {MASK}", {MASK: 1}]}
