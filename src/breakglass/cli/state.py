"""Options shared by every command, and the workspace they lead to."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from breakglass.cli.output import OutputFormat

if TYPE_CHECKING:
    from breakglass.engine.workspace import Workspace


@dataclass
class CliState:
    config_path: str | None = None
    actor: str | None = None
    output: OutputFormat = OutputFormat.TEXT
    _workspace: Workspace | None = field(default=None, repr=False)

    @property
    def json(self) -> bool:
        return self.output == OutputFormat.JSON

    def workspace(self) -> Workspace:
        if self._workspace is None:
            from breakglass.engine.workspace import Workspace

            self._workspace = Workspace.load(config_path=self.config_path, actor=self.actor)
        return self._workspace


STATE = CliState()
