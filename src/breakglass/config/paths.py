"""Where breakglass keeps its state on this machine."""

from __future__ import annotations

import os
from pathlib import Path

from breakglass.config.model import PlatformConfig

STATE_ENV = "BREAKGLASS_STATE_DIR"


def state_dir(config: PlatformConfig, base_dir: Path) -> Path:
    """Return the state directory: the config's, then $BREAKGLASS_STATE_DIR, then the XDG one."""
    if config.state_dir is not None:
        path = config.state_dir.expanduser()
        return path if path.is_absolute() else base_dir / path
    override = os.environ.get(STATE_ENV)
    if override:
        return Path(override).expanduser()
    xdg = os.environ.get("XDG_STATE_HOME")
    root = Path(xdg) if xdg else Path.home() / ".local" / "state"
    return root / "breakglass"


def state_url(config: PlatformConfig, base_dir: Path) -> str:
    if config.state_url:
        return config.state_url
    return f"sqlite:///{state_dir(config, base_dir) / 'state.db'}"
