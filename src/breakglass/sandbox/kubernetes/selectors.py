"""Label and field selectors, parsed and matched as the API server does on list and watch.

Label selector strings follow the grammar of `k8s.io/apimachinery/pkg/labels`: requirements
joined by commas, each one of `key`, `!key`, `key=value`, `key==value`, `key!=value`,
`key in (a,b)`, `key notin (a,b)`, `key>N` and `key<N`. Field selectors support `=`, `==`
and `!=` on the fields that the API server indexes for the resource.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from breakglass.sandbox.kubernetes.errors import ApiError, bad_request

_NAME = r"[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?"
_KEY = rf"(?:{_NAME}/)?{_NAME}"
_VALUE = rf"(?:{_NAME})?"

_NOT_EXISTS = re.compile(rf"!\s*({_KEY})")
_SET = re.compile(rf"({_KEY})\s+(in|notin)\s*\(([^()]*)\)")
_EQUALITY = re.compile(rf"({_KEY})\s*(==|=|!=)\s*({_VALUE})")
_ORDER = re.compile(rf"({_KEY})\s*(>|<)\s*(-?[0-9]+)")
_EXISTS = re.compile(_KEY)
_SET_VALUE = re.compile(_VALUE)

# The fields each resource indexes for field selectors (plural -> fields), besides
# metadata.name and metadata.namespace, which every resource supports.
_INDEXED_FIELDS: dict[str, frozenset[str]] = {
    "pods": frozenset({"spec.nodeName", "spec.restartPolicy", "status.phase"}),
    "secrets": frozenset({"type"}),
    "events": frozenset({"involvedObject.kind", "involvedObject.name", "reason", "type"}),
    "jobs": frozenset({"status.successful"}),
}


@dataclass(frozen=True)
class Requirement:
    """One condition on a label: `operator` is one of =, !=, in, notin, exists, !, >, <."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        match self.operator:
            case "=" | "in":
                return present and value in self.values
            case "!=" | "notin":
                return not present or value not in self.values
            case "exists":
                return present
            case "!":
                return not present
            case ">" | "<":
                return present and _compare_int(value, self.operator, int(self.values[0]))
        raise AssertionError(f"unknown selector operator {self.operator!r}")

    def render(self) -> str:
        match self.operator:
            case "exists":
                return self.key
            case "!":
                return f"!{self.key}"
            case "in" | "notin":
                return f"{self.key} {self.operator} ({','.join(self.values)})"
        return f"{self.key}{self.operator}{self.values[0]}"


def _compare_int(value: str | None, operator: str, bound: int) -> bool:
    try:
        number = int(value or "")
    except ValueError:
        return False
    return number > bound if operator == ">" else number < bound


@dataclass(frozen=True)
class LabelSelector:
    """All requirements must hold; an empty selector matches every object."""

    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        return all(requirement.matches(labels or {}) for requirement in self.requirements)

    def render(self) -> str:
        return ",".join(requirement.render() for requirement in self.requirements)


def parse_label_selector(text: str) -> LabelSelector:
    """Parse the `labelSelector` query parameter; raise a 400 ApiError naming the bad part."""
    requirements = [_parse_requirement(part) for part in _split_top_level(text)]
    return LabelSelector(tuple(requirements))


def _split_top_level(text: str) -> list[str]:
    """Split on the commas that are not inside `in (...)` value sets."""
    parts: list[str] = []
    depth = 0
    current = ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    if depth != 0:
        raise bad_request(f"unable to parse requirement: unbalanced parentheses in {text!r}")
    stripped = [part.strip() for part in parts]
    if stripped == [""]:
        return []
    if "" in stripped:
        raise bad_request(f"unable to parse requirement: empty requirement in {text!r}")
    return stripped


def _parse_requirement(part: str) -> Requirement:
    if match := _NOT_EXISTS.fullmatch(part):
        return Requirement(match[1], "!")
    if match := _SET.fullmatch(part):
        values = tuple(value.strip() for value in match[3].split(","))
        if values == ("",):
            raise bad_request(
                f"unable to parse requirement {part!r}: for 'in', 'notin' operators, "
                "values set can't be empty"
            )
        for value in values:
            if not _SET_VALUE.fullmatch(value):
                raise bad_request(f"unable to parse requirement {part!r}: invalid value {value!r}")
        return Requirement(match[1], match[2], values)
    if match := _EQUALITY.fullmatch(part):
        operator = "=" if match[2] == "==" else match[2]
        return Requirement(match[1], operator, (match[3],))
    if match := _ORDER.fullmatch(part):
        return Requirement(match[1], match[2], (match[3],))
    if _EXISTS.fullmatch(part):
        return Requirement(part, "exists")
    raise bad_request(f"unable to parse requirement: found {part!r}, expected a label selector")


def selector_from_spec(spec: Mapping[str, Any] | None) -> LabelSelector:
    """Convert a `LabelSelector` object (matchLabels, matchExpressions) into requirements."""
    spec = spec or {}
    requirements = [
        Requirement(key, "=", (str(value),))
        for key, value in sorted((spec.get("matchLabels") or {}).items())
    ]
    operators = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
    for expression in spec.get("matchExpressions") or []:
        operator = operators.get(expression.get("operator", ""))
        if operator is None:
            raise bad_request(
                f"invalid label selector operator {expression.get('operator')!r}; "
                "expected In, NotIn, Exists or DoesNotExist"
            )
        values = tuple(str(value) for value in expression.get("values") or [])
        requirements.append(Requirement(str(expression.get("key", "")), operator, values))
    return LabelSelector(tuple(requirements))


@dataclass(frozen=True)
class FieldSelector:
    """(field path, operator, value) triples; the operator is `=` or `!=`."""

    terms: tuple[tuple[str, str, str], ...] = ()

    def matches(self, obj: Mapping[str, Any]) -> bool:
        for path, operator, expected in self.terms:
            actual = _field_value(obj, path)
            if (actual == expected) != (operator == "="):
                return False
        return True


def parse_field_selector(text: str, plural: str) -> FieldSelector:
    """Parse the `fieldSelector` parameter; fields the resource does not index are a 400."""
    terms: list[tuple[str, str, str]] = []
    supported = {"metadata.name", "metadata.namespace"} | _INDEXED_FIELDS.get(plural, frozenset())
    for part in (piece.strip() for piece in text.split(",")):
        if not part:
            continue
        match = re.fullmatch(r"([A-Za-z.]+)\s*(==|=|!=)\s*(.*)", part)
        if match is None:
            raise bad_request(f"invalid selector: {part!r}; expected FIELD=VALUE or FIELD!=VALUE")
        path, operator, value = match[1], match[2], match[3].strip()
        if path not in supported:
            raise ApiError(400, "BadRequest", f'field label not supported: "{path}"')
        terms.append((path, "!=" if operator == "!=" else "=", value))
    return FieldSelector(tuple(terms))


def _field_value(obj: Mapping[str, Any], path: str) -> str:
    current: Any = obj
    for part in path.split("."):
        current = current.get(part) if isinstance(current, Mapping) else None
    if current is None:
        return ""
    if isinstance(current, bool):
        return "true" if current else "false"
    return str(current)
