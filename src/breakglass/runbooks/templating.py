"""Rendering step parameters with Jinja2 in a sandbox.

Templates see `inputs`, `config` (the platform config without secret values), `steps`
(each earlier step's `outputs` and `status`) and `run` (`id`, `actor`, `runbook`). A string
that is a single `{{ expression }}` renders to the expression's value with its type, so
`replicas: "{{ steps.scale.outputs.previous }}"` stays an integer.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, Undefined, UndefinedError, nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

from breakglass.config.redaction import REDACTOR

_WHOLE_EXPRESSION = re.compile(r"^\s*\{\{(?P<expr>.*?)\}\}\s*$", re.DOTALL)
ROOTS = ("inputs", "config", "steps", "run")
DEFAULT_FILTERS = {"default", "d"}


def _plain(error: Exception) -> str:
    """Say what Jinja's undefined-value errors mean: a missing key, usually a mistyped input."""
    text = str(error)
    missing = re.fullmatch(r"'dict object' has no attribute '(.+)'", text)
    if missing:
        return (
            f"there is no entry named {missing.group(1)!r} (check the input values and the config)"
        )
    return text


class TemplateError(Exception):
    """A template cannot be parsed or rendered; the message names the reason."""


class Pending:
    """A step output that exists only once the step has run; shown as such in plans."""

    def __init__(self, path: str) -> None:
        self._path = path

    def __getattr__(self, name: str) -> Pending:
        if name.startswith("_"):
            raise AttributeError(name)
        return Pending(f"{self._path}.{name}")

    def __getitem__(self, key: object) -> Pending:
        return Pending(f"{self._path}[{key!r}]")

    def __iter__(self) -> Iterator[Pending]:
        # Without this, iteration falls back to __getitem__(0), (1), ... and never ends,
        # which a filter such as join on a future list output would do.
        yield Pending(f"{self._path}[*]")

    def __str__(self) -> str:
        return f"<{self._path}, known after it runs>"

    __repr__ = __str__


@cache
def environment() -> SandboxedEnvironment:
    env = SandboxedEnvironment(
        undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True
    )
    env.filters["redact"] = REDACTOR.redact
    return env


def contains_template(value: Any) -> bool:
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    if isinstance(value, dict):
        return any(contains_template(item) for item in value.values())
    if isinstance(value, list):
        return any(contains_template(item) for item in value)
    return False


def render_value(value: Any, context: dict[str, Any]) -> Any:
    """Render every string in a parameter tree; whole expressions keep their type."""
    if isinstance(value, str):
        return render_string(value, context)
    if isinstance(value, dict):
        return {
            _render_key(key, context): render_value(item, context) for key, item in value.items()
        }
    if isinstance(value, list):
        return [render_value(item, context) for item in value]
    return value


def _render_key(key: Any, context: dict[str, Any]) -> Any:
    # A mapping key may be a template too, as in a ConfigMap key named by an input.
    if not isinstance(key, str) or ("{{" not in key and "{%" not in key):
        return key
    return str(render_string(key, context))


def render_string(text: str, context: dict[str, Any]) -> Any:
    if "{{" not in text and "{%" not in text:
        return text
    env = environment()
    try:
        match = _WHOLE_EXPRESSION.match(text)
        if match and "{{" not in match.group("expr"):
            value = env.compile_expression(match.group("expr"), undefined_to_none=False)(**context)
            return _defined(value)
        return env.from_string(text).render(**context)
    except TypeError as e:
        # A filter such as length cannot measure an output that does not exist yet; the
        # whole value is then known only after the step runs.
        if "'Pending'" in str(e):
            return Pending(f"value of {text.strip()}")
        raise TemplateError(f"cannot render {text!r}: {_plain(e)}") from e
    except (TemplateSyntaxError, UndefinedError, SecurityError, ValueError) as e:
        raise TemplateError(f"cannot render {text!r}: {_plain(e)}") from e


def evaluate_condition(expression: str, context: dict[str, Any]) -> bool:
    try:
        value = _defined(
            environment().compile_expression(expression, undefined_to_none=False)(**context)
        )
    except (TemplateSyntaxError, UndefinedError, SecurityError, TypeError, ValueError) as e:
        raise TemplateError(f"cannot evaluate when {expression!r}: {_plain(e)}") from e
    if isinstance(value, Pending):
        raise TemplateError(f"when {expression!r} depends on {value}")
    return bool(value)


def _defined(value: Any) -> Any:
    if isinstance(value, Undefined):
        # Touching a StrictUndefined raises UndefinedError naming the missing variable.
        str(value)
    return value


@dataclass(frozen=True)
class Reference:
    """A variable path a template reads, such as ("steps", "backup", "outputs", "sha256")."""

    path: tuple[str, ...]
    guarded: bool

    @property
    def dotted(self) -> str:
        return ".".join(self.path)


def parse_template(text: str, *, expression: bool = False) -> nodes.Node:
    env = environment()
    source = "{{ " + text + " }}" if expression else text
    try:
        tree = env.parse(source)
        # Compiling catches what parsing does not, such as an unknown filter or test.
        env.compile(tree)
    except TemplateSyntaxError as e:
        message = (e.message or "syntax error").replace(
            "end of print statement", "end of the expression"
        )
        raise TemplateError(f"invalid template {text!r}: {message}") from e
    return tree


def references(text: str, *, expression: bool = False) -> list[Reference]:
    """Return the variable paths a template reads, for lint."""
    tree = parse_template(text, expression=expression)
    local_names = {
        node.name for node in tree.find_all(nodes.Name) if node.ctx in ("store", "param")
    }
    found: list[Reference] = []
    for chain, guarded in _chains(tree, guarded=False):
        if chain[0] not in local_names:
            found.append(Reference(chain, guarded))
    return found


def _chains(node: nodes.Node, *, guarded: bool) -> Iterator[tuple[tuple[str, ...], bool]]:
    if isinstance(node, nodes.Filter) and node.name in DEFAULT_FILTERS:
        guarded = True
    if isinstance(node, nodes.Test) and node.name in ("defined", "undefined"):
        guarded = True
    chain = _attribute_chain(node)
    if chain is not None:
        yield chain, guarded
        return
    for child in node.iter_child_nodes():
        yield from _chains(child, guarded=guarded)


def _attribute_chain(node: nodes.Node) -> tuple[str, ...] | None:
    parts: list[str] = []
    current = node
    while True:
        if isinstance(current, nodes.Getattr):
            parts.append(current.attr)
            current = current.node
        elif isinstance(current, nodes.Getitem) and isinstance(current.arg, nodes.Const):
            parts.append(str(current.arg.value))
            current = current.node
        elif isinstance(current, nodes.Name) and current.ctx == "load":
            parts.append(current.name)
            return tuple(reversed(parts))
        else:
            return None
