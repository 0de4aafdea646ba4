"""YAML loading that keeps line numbers, so that every finding can name file and line."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError


@dataclass(frozen=True)
class Finding:
    """One problem in a file: where it is and what is wrong."""

    file: str
    line: int | None
    where: str
    message: str

    def __str__(self) -> str:
        place = f"{self.file}:{self.line}" if self.line else self.file
        return (
            f"{place}: {self.where}: {self.message}" if self.where else f"{place}: {self.message}"
        )


class YamlSyntaxError(Exception):
    def __init__(self, finding: Finding) -> None:
        super().__init__(str(finding))
        self.finding = finding


@dataclass
class YamlDocument:
    """Parsed data and the node tree it came from."""

    file: str
    data: Any
    root: yaml.Node | None

    def line_of(self, loc: Sequence[str | int]) -> int | None:
        """Return the 1-based line of the value at `loc`, or of its nearest existing parent."""
        node = self.root
        line = node.start_mark.line + 1 if node is not None else None
        for key in loc:
            if isinstance(node, yaml.MappingNode):
                found = next((v for k, v in node.value if getattr(k, "value", None) == key), None)
                if found is None:
                    break
                node = found
            elif isinstance(node, yaml.SequenceNode) and isinstance(key, int):
                if key >= len(node.value):
                    break
                node = node.value[key]
            else:
                break
            line = node.start_mark.line + 1
        return line


def parse_yaml(text: str, *, file: str) -> YamlDocument:
    """Parse one YAML document safely, turning syntax errors into a Finding."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark is not None else None
        raise YamlSyntaxError(
            Finding(file, line, "", f"invalid YAML: {e.problem or e.context}")
        ) from e
    except yaml.YAMLError as e:
        raise YamlSyntaxError(Finding(file, None, "", f"invalid YAML: {e}")) from e
    return YamlDocument(file=file, data=data, root=root)


def read_yaml(path: Path) -> YamlDocument:
    text = path.read_text(encoding="utf-8")
    return parse_yaml(text, file=str(path))


def format_loc(loc: Sequence[str | int]) -> str:
    parts: list[str] = []
    for key in loc:
        if isinstance(key, int):
            parts.append(f"[{key}]")
        else:
            parts.append(f".{key}" if parts else str(key))
    return "".join(parts)


def findings_from_validation(
    error: ValidationError, document: YamlDocument, *, describe: Any = None
) -> list[Finding]:
    """Turn pydantic errors into findings with lines; `describe(loc)` may name the place better."""
    findings = []
    for item in error.errors(include_url=False):
        loc = _real_keys(
            document.data, [part for part in item["loc"] if isinstance(part, str | int)]
        )
        where = describe(loc) if describe is not None else format_loc(loc)
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown field (check its spelling)"
        elif item["type"] == "missing":
            message = "required field is missing"
        findings.append(Finding(document.file, document.line_of(loc), where, message))
    return findings


def _real_keys(data: Any, loc: list[str | int]) -> list[str | int]:
    """Drop the union tags and validator names pydantic puts into a location.

    The last key is kept even when absent, because it names a missing field.
    """
    kept: list[str | int] = []
    current = data
    for position, key in enumerate(loc):
        found, value = child_of(current, key)
        if found:
            current = value
        elif position != len(loc) - 1:
            continue
        kept.append(key)
    return kept


def child_of(container: Any, key: str | int) -> tuple[bool, Any]:
    """Return whether `container` has `key` (a mapping key or a list index) and its value."""
    if isinstance(container, dict) and key in container:
        return True, container[key]
    if isinstance(container, list) and isinstance(key, int) and 0 <= key < len(container):
        return True, container[key]
    return False, None
