"""The workspace: one loaded config, its state store, the acting operator and the clock.

Interfaces build a workspace once per command and hand it to the engine's functions.
"""

from __future__ import annotations

import getpass
import logging
import os
import secrets
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from breakglass.clock import SYSTEM_CLOCK, Clock
from breakglass.config.loading import LoadedConfig, load_config
from breakglass.config.paths import state_dir, state_url
from breakglass.config.secrets import resolve_secret
from breakglass.incidents.desk import IncidentDesk

if TYPE_CHECKING:
    from breakglass.incidents.sender import Sender
from breakglass.store import Store, open_store
from breakglass.store import audit as audit_repo
from breakglass.store.audit import Head

log = logging.getLogger(__name__)

ACTOR_ENV = "BREAKGLASS_ACTOR"
AUDIT_KEY_FILE = "audit.key"


def resolve_actor(explicit: str | None) -> str:
    """Return who is acting: --actor, then $BREAKGLASS_ACTOR, then the OS user."""
    if explicit:
        return explicit
    from_env = os.environ.get(ACTOR_ENV)
    if from_env:
        return from_env
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid:{os.getuid()}"


@dataclass
class Workspace:
    config: LoadedConfig
    actor: str
    clock: Clock = field(default=SYSTEM_CLOCK)

    @classmethod
    def load(cls, *, config_path: str | None = None, actor: str | None = None) -> Workspace:
        return cls(config=load_config(config_path), actor=resolve_actor(actor))

    @property
    def state_dir(self) -> Path:
        return state_dir(self.config.model, self.config.base_dir)

    @property
    def state_url(self) -> str:
        return state_url(self.config.model, self.config.base_dir)

    @cached_property
    def store(self) -> Store:
        return open_store(self.state_url)

    @cached_property
    def audit_key(self) -> bytes:
        reference = self.config.model.audit.key
        if reference is not None:
            return resolve_secret(reference, base_dir=self.config.base_dir).encode()
        return self._local_audit_key()

    def _local_audit_key(self) -> bytes:
        path = self.state_dir / AUDIT_KEY_FILE
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass  # another process created it first; read theirs
            else:
                with os.fdopen(fd, "w") as handle:
                    handle.write(secrets.token_hex(32))
                log.info("created audit key %s", path)
        return path.read_text(encoding="utf-8").strip().encode()

    @cached_property
    def incidents(self) -> IncidentDesk:
        return IncidentDesk(self.store, self.clock, self.actor, self.config.model, self.audit_key)

    def sender(self) -> Sender:
        """A notification sender acting as this workspace's operator."""
        from breakglass.engine.leasing import new_owner_token
        from breakglass.incidents.sender import Sender

        return Sender(
            store=self.store,
            clock=self.clock,
            config=self.config.model,
            actor=self.actor,
            audit_key=self.audit_key,
            base_dir=self.config.base_dir,
            owner=new_owner_token(),
        )

    def audit(self, kind: str, subject: str, data: dict[str, Any] | None = None) -> Head:
        """Append one audit entry in its own transaction."""
        with self.store.write() as connection:
            return audit_repo.append(
                connection,
                key=self.audit_key,
                at=self.clock.now(),
                actor=self.actor,
                kind=kind,
                subject=subject,
                data=data or {},
            )
