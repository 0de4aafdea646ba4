"""Platform config: model, loading, secret references and redaction."""

from breakglass.config.loading import LoadedConfig, load_config, locate_config
from breakglass.config.model import PlatformConfig
from breakglass.config.redaction import REDACTOR, redact
from breakglass.config.secrets import SecretRef, resolve_secret

__all__ = [
    "REDACTOR",
    "LoadedConfig",
    "PlatformConfig",
    "SecretRef",
    "load_config",
    "locate_config",
    "redact",
    "resolve_secret",
]
