from __future__ import annotations

import pytest

from breakglass.runbooks.templating import (
    Pending,
    TemplateError,
    evaluate_condition,
    references,
    render_value,
)

CONTEXT = {
    "inputs": {"replicas": 3, "name": "api"},
    "steps": {"scale": {"outputs": {"previous": 5}}},
    "config": {},
    "run": {},
}


def test_whole_expression_keeps_type() -> None:
    assert render_value("{{ steps.scale.outputs.previous }}", CONTEXT) == 5
    assert render_value({"n": ["{{ inputs.replicas + 1 }}"]}, CONTEXT) == {"n": [4]}


def test_mixed_text_renders_string() -> None:
    assert render_value("deploy/{{ inputs.name }}", CONTEXT) == "deploy/api"


def test_undefined_is_an_error() -> None:
    with pytest.raises(TemplateError, match="there is no entry named 'missing'"):
        render_value("{{ inputs.missing }}", CONTEXT)


def test_sandbox_blocks_internals() -> None:
    with pytest.raises(TemplateError):
        render_value("{{ inputs.__class__.__mro__ }}", CONTEXT)


def test_condition_is_boolean() -> None:
    assert evaluate_condition("inputs.replicas > 2", CONTEXT) is True
    assert evaluate_condition("inputs.name == 'web'", CONTEXT) is False


def test_pending_condition_raises() -> None:
    context = {"steps": {"a": {"outputs": Pending("steps.a.outputs")}}}
    with pytest.raises(TemplateError, match="known after it runs"):
        evaluate_condition("steps.a.outputs.ok", context)


def test_references_found_with_guard() -> None:
    found = references(
        "{{ inputs.a }} {{ steps.b.outputs.c | default('x') }} {% for i in inputs.items %}{{ i.z }}{% endfor %}"
    )
    paths = {(ref.dotted, ref.guarded) for ref in found}
    assert ("inputs.a", False) in paths
    assert ("steps.b.outputs.c", True) in paths
    assert ("inputs.items", False) in paths
    assert not any(ref.path[0] == "i" for ref in found)


def test_filters_over_a_future_list_output_end() -> None:
    from breakglass.runbooks.templating import Pending, render_value

    rendered = render_value(
        "{{ steps.a.outputs.names | join(', ') }}",
        {"steps": {"a": {"outputs": Pending("steps.a.outputs")}}},
    )
    assert rendered == "<steps.a.outputs.names[*], known after it runs>"


def test_length_of_a_future_output_is_pending() -> None:
    from breakglass.runbooks.templating import Pending, render_value

    context = {"steps": {"a": {"outputs": Pending("steps.a.outputs")}}}
    rendered = render_value("restored {{ steps.a.outputs.changed | length }} of them", context)
    assert isinstance(rendered, Pending)
    assert str(rendered).endswith("known after it runs>")


def test_mapping_keys_are_rendered() -> None:
    from breakglass.runbooks.templating import render_value

    rendered = render_value(
        {"{{ inputs.key }}": "{{ inputs.value }}"}, {"inputs": {"key": "MODE", "value": "on"}}
    )
    assert rendered == {"MODE": "on"}
