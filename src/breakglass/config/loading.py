"""Locate, read and validate the platform config."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from breakglass.config.model import PlatformConfig
from breakglass.errors import ConfigError
from breakglass.yamlfile import (
    Finding,
    YamlDocument,
    YamlSyntaxError,
    findings_from_validation,
    parse_yaml,
)

CONFIG_ENV = "BREAKGLASS_CONFIG"
DEFAULT_NAME = "breakglass.yaml"
EMBEDDED = "<embedded defaults>"


@dataclass
class LoadedConfig:
    """A validated config and where it came from."""

    model: PlatformConfig
    path: Path | None
    digest: str
    findings: list[Finding] = field(default_factory=list)

    @property
    def source(self) -> str:
        return str(self.path) if self.path is not None else EMBEDDED

    @property
    def base_dir(self) -> Path:
        return self.path.parent if self.path is not None else Path.cwd()


class ConfigInvalidError(ConfigError):
    def __init__(self, findings: list[Finding], source: str) -> None:
        lines = "\n".join(f"  {finding}" for finding in findings)
        super().__init__(
            f"config {source} is invalid:\n{lines}",
            hint="fix the fields named above; `breakglass config schema` prints every field",
        )
        self.findings = findings


def locate_config(explicit: str | None) -> Path | None:
    """Return the config path: --config, then $BREAKGLASS_CONFIG, then ./breakglass.yaml."""
    for source, value in (("--config", explicit), (CONFIG_ENV, os.environ.get(CONFIG_ENV))):
        if value:
            path = Path(value).expanduser()
            if not path.is_file():
                raise ConfigError(
                    f"config file {path} (from {source}) does not exist",
                    hint="check the path, or run `breakglass init` to write a starter config",
                )
            return path
    local = Path.cwd() / DEFAULT_NAME
    return local if local.is_file() else None


def load_config(explicit: str | None = None) -> LoadedConfig:
    path = locate_config(explicit)
    if path is None:
        return LoadedConfig(PlatformConfig(), None, hashlib.sha256(b"").hexdigest())
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read config {path}: {e.strerror}") from e
    return parse_config(raw, path)


def parse_config(raw: bytes, path: Path) -> LoadedConfig:
    digest = hashlib.sha256(raw).hexdigest()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"config {path} is not UTF-8 text (byte {e.start})") from e
    try:
        document = parse_yaml(text, file=str(path))
    except YamlSyntaxError as e:
        raise ConfigInvalidError([e.finding], str(path)) from e
    data = document.data if document.data is not None else {}
    if not isinstance(data, dict):
        finding = Finding(str(path), 1, "", "the config must be a mapping of keys to values")
        raise ConfigInvalidError([finding], str(path))
    model = validate_config(data, document)
    return LoadedConfig(model, path, digest)


def validate_config(data: dict[str, object], document: YamlDocument) -> PlatformConfig:
    try:
        return PlatformConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigInvalidError(findings_from_validation(e, document), document.file) from e
