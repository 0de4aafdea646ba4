"""Finding and reading runbooks: the built-in catalog first, then the config's directories."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from breakglass.config.loading import LoadedConfig
from breakglass.errors import NotFoundError, RunbookError
from breakglass.runbooks.model import Runbook
from breakglass.yamlfile import (
    Finding,
    YamlDocument,
    YamlSyntaxError,
    findings_from_validation,
    parse_yaml,
)

log = logging.getLogger(__name__)

CATALOG_DIR = Path(__file__).parent / "catalog"
SUFFIXES = (".yaml", ".yml")


@dataclass
class RunbookSource:
    """Where a runbook on the search path comes from."""

    name: str
    path: Path
    builtin: bool
    overrides: Path | None = None


@dataclass
class LoadedRunbook:
    runbook: Runbook
    path: Path
    digest: str
    document: YamlDocument


class RunbookInvalidError(RunbookError):
    def __init__(self, findings: list[Finding], source: str) -> None:
        lines = "\n".join(f"  {finding}" for finding in findings)
        super().__init__(
            f"runbook {source} is invalid:\n{lines}",
            hint="fix the places named above; `breakglass lint FILE` checks a runbook without running it",
        )
        self.findings = findings


def search_path(config: LoadedConfig) -> list[tuple[Path, bool]]:
    directories: list[tuple[Path, bool]] = [(CATALOG_DIR, True)]
    for directory in config.model.runbook_dirs:
        path = directory.expanduser()
        directories.append((path if path.is_absolute() else config.base_dir / path, False))
    return directories


def discover(config: LoadedConfig) -> dict[str, RunbookSource]:
    """Map runbook names to files; a config directory's runbook overrides a built-in one."""
    found: dict[str, RunbookSource] = {}
    for directory, builtin in search_path(config):
        if not directory.is_dir():
            if not builtin:
                log.warning("runbook directory %s does not exist; skipping it", directory)
            continue
        for path in sorted(directory.iterdir()):
            if path.suffix not in SUFFIXES or not path.is_file():
                continue
            previous = found.get(path.stem)
            source = RunbookSource(path.stem, path, builtin)
            if previous is not None:
                if previous.builtin and not builtin:
                    source.overrides = previous.path
                else:
                    log.warning(
                        "runbook %s in %s is shadowed by %s", path.stem, path, previous.path
                    )
                    continue
            found[path.stem] = source
    return found


def is_path(reference: str) -> bool:
    return "/" in reference or reference.endswith(SUFFIXES)


def locate(reference: str, config: LoadedConfig) -> RunbookSource:
    """Resolve NAME on the search path, or a path when it contains / or ends in .yaml."""
    if is_path(reference):
        path = Path(reference).expanduser()
        if not path.is_file():
            raise NotFoundError(f"runbook file {path} does not exist")
        return RunbookSource(path.stem, path, builtin=False)
    sources = discover(config)
    if reference not in sources:
        known = ", ".join(sorted(sources)) or "none"
        raise NotFoundError(
            f"runbook {reference!r} not found on the search path",
            hint=f"known runbooks: {known}; `breakglass runbooks` lists them with their files",
        )
    source = sources[reference]
    if source.overrides is not None:
        log.warning("runbook %s from %s overrides the built-in one", reference, source.path)
    return source


def parse_runbook(
    text: str, *, file: str
) -> tuple[Runbook | None, YamlDocument | None, list[Finding]]:
    """Parse and validate a runbook's text, returning findings instead of raising."""
    try:
        document = parse_yaml(text, file=file)
    except YamlSyntaxError as e:
        return None, None, [e.finding]
    if not isinstance(document.data, dict):
        return (
            None,
            document,
            [
                Finding(
                    file,
                    1,
                    "",
                    "a runbook must be a mapping with apiVersion, kind, metadata and steps",
                )
            ],
        )
    try:
        runbook = Runbook.model_validate(document.data)
    except ValidationError as e:
        return (
            None,
            document,
            findings_from_validation(e, document, describe=lambda loc: describe_loc(document, loc)),
        )
    return runbook, document, []


def describe_loc(document: YamlDocument, loc: list[str | int]) -> str:
    """Name a place in a runbook by step id where possible: `step backup (steps[2]) field timeout`."""
    data = document.data
    if len(loc) >= 2 and loc[0] == "steps" and isinstance(loc[1], int) and isinstance(data, dict):
        steps = data.get("steps")
        step_id = None
        if isinstance(steps, list) and loc[1] < len(steps) and isinstance(steps[loc[1]], dict):
            step_id = steps[loc[1]].get("id")
        field = ".".join(str(part) for part in loc[2:]) or "(the step)"
        name = f"step {step_id} (steps[{loc[1]}])" if step_id else f"steps[{loc[1]}]"
        return f"{name} field {field}"
    return ".".join(str(part) for part in loc)


def read_source(path: Path) -> tuple[str, str]:
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise RunbookError(f"cannot read runbook {path}: {e.strerror}") from e
    try:
        return raw.decode("utf-8"), hashlib.sha256(raw).hexdigest()
    except UnicodeDecodeError as e:
        raise RunbookError(f"runbook {path} is not UTF-8 text (byte {e.start})") from e


def load_runbook(path: Path) -> LoadedRunbook:
    """Read and validate the schema of one runbook file; lint checks the rest."""
    text, digest = read_source(path)
    runbook, document, findings = parse_runbook(text, file=str(path))
    if findings or runbook is None or document is None:
        raise RunbookInvalidError(findings, str(path))
    return LoadedRunbook(runbook, path, digest, document)
