"""YAML loading that keeps line numbers, so that every finding can name file and line."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

# libyaml's loader when PyYAML was built with it; its nodes carry the same line marks.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


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
        """Return the 1-based line of `loc`: of its key in a mapping, of its item in a list.

        A location that ends at a missing key gets the line of its nearest existing parent.
        """
        node = self.root
        line = node.start_mark.line + 1 if node is not None else None
        for key in loc:
            if isinstance(node, yaml.MappingNode):
                pair = next(
                    ((k, v) for k, v in node.value if getattr(k, "value", None) == key), None
                )
                if pair is None:
                    break
                line = pair[0].start_mark.line + 1
                node = pair[1]
            elif isinstance(node, yaml.SequenceNode) and isinstance(key, int):
                if key >= len(node.value):
                    break
                node = node.value[key]
                line = node.start_mark.line + 1
            else:
                break
        return line


def parse_yaml(text: str, *, file: str) -> YamlDocument:
    """Parse one YAML document safely, turning syntax errors and duplicate keys into findings."""
    loader = _LOADER(text)
    try:
        root = loader.get_single_node()
        if root is not None:
            _reject_duplicate_keys(root, file)
        data = loader.construct_document(root) if root is not None else None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = e.problem or e.context or "unreadable"
        if "unhashable key" in problem:
            problem += " (a value that starts with {{ must be quoted)"
        raise YamlSyntaxError(Finding(file, line, "", f"invalid YAML: {problem}")) from e
    except yaml.YAMLError as e:
        raise YamlSyntaxError(Finding(file, None, "", f"invalid YAML: {e}")) from e
    finally:
        loader.dispose()
    return YamlDocument(file=file, data=data, root=root)


def _reject_duplicate_keys(node: yaml.Node, file: str) -> None:
    """Raise on a key given twice in one mapping: YAML loaders silently keep the last one."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                line = key.start_mark.line + 1
                if key.value in seen:
                    raise YamlSyntaxError(
                        Finding(
                            file,
                            line,
                            str(key.value),
                            f"key {key.value!r} is given twice (first on line {seen[key.value]}); remove one",
                        )
                    )
                seen[key.value] = line
            _reject_duplicate_keys(value, file)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _reject_duplicate_keys(item, file)


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
    """Turn pydantic errors into findings with lines; `describe(loc)` may name the place better.

    Errors at one place (one per member of a union) are merged into one finding.
    """
    merged: dict[tuple[int | None, str], list[str]] = {}
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
        elif item["type"] == "value_error":
            message = message.removeprefix("Value error, ")
        messages = merged.setdefault((document.line_of(loc), where), [])
        if message not in messages:
            messages.append(message)
    return [
        Finding(
            document.file, line, where, "; or ".join(messages) if len(messages) > 1 else messages[0]
        )
        for (line, where), messages in merged.items()
    ]


def _real_keys(data: Any, loc: list[str | int]) -> list[str | int]:
    """Drop the union tags and validator names pydantic puts into a location.

    The last key is kept when its parent is a mapping, because it then names a missing
    field; after a scalar or a list it is a type name (`str`, `int`) and is dropped.
    """
    kept: list[str | int] = []
    current = data
    for position, key in enumerate(loc):
        found, value = child_of(current, key)
        if found:
            current = value
        elif position != len(loc) - 1 or not isinstance(current, dict):
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
