"""Malformed runbooks and platform configs are rejected before any step runs.

Each file under corpus/ (runbooks) and corpus/configs/ (platform configs) has one problem,
named in its first line. For every file, breakglass must exit 2 with exactly the expected
findings, each naming the file, the line and the field, print no traceback, and run no step.
Every corpus runbook starts with a `shell.run` step that touches MARKER_PATH, which the tests
replace with a path under tmp_path, so a marker file after `breakglass run` means a step ran.

`breakglass lint` takes many files, so one lint process checks the whole runbook corpus.
`run` takes one runbook and runs once per file. `plan` loads and lints a runbook through the
same code as `run` (service.load_and_lint), so it runs only on PLAN_SAMPLE, one file per kind
of error.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import Cli, CliResult

CORPUS = Path(__file__).parent / "corpus"
CONFIGS = CORPUS / "configs"
MARKER = "MARKER_PATH"

GOOD_RUNBOOK = """\
apiVersion: breakglass/v1
kind: Runbook
metadata:
  name: good
steps:
  - id: first
    action: shell.run
    timeout: 5s
    with:
      argv: [touch, MARKER_PATH]
"""


@dataclass(frozen=True)
class Expect:
    """One finding a case must print: `FILE:LINE: WHERE: MESSAGE`."""

    line: int
    where: str
    words: tuple[str, ...]
    # Text that must not appear anywhere in the output, such as a secret value.
    hidden: tuple[str, ...] = ()


def step_place(step_id: str, index: int, field: str) -> str:
    return f"step {step_id} (steps[{index}]) field {field}"


SECOND_STEP = "step second (steps[1]) field"

RUNBOOKS: dict[str, tuple[Expect, ...]] = {
    "always_step_unguarded.yaml": (
        Expect(
            16,
            step_place("report", 1, "with.message"),
            ("always-step reads steps.first.outputs", "| default(...)"),
        ),
    ),
    "argv_shell_string.yaml": (
        Expect(
            16,
            f"{SECOND_STEP} with.argv",
            (
                "argv must be a list such as [systemctl, restart, app]",
                "shell command string is not accepted",
            ),
        ),
    ),
    "config_key_unknown.yaml": (
        Expect(15, f"{SECOND_STEP} with.message", ("config.nope", "not a config key")),
    ),
    "config_var_undefined.yaml": (
        Expect(15, f"{SECOND_STEP} with.message", ("config.vars.region", "does not define")),
    ),
    "confirm_without_message.yaml": (
        Expect(15, f"{SECOND_STEP} confirm.message", ("required field is missing",)),
    ),
    "duplicate_step_ids.yaml": (
        Expect(12, step_place("first", 1, "id"), ("duplicate step id 'first'", "steps[0]")),
    ),
    "duplicate_yaml_key.yaml": (
        Expect(12, "timeout", ("key 'timeout' is given twice", "first on line 9")),
    ),
    "duration_without_unit.yaml": (
        Expect(14, f"{SECOND_STEP} timeout", ("duration 30 has no unit", "30s")),
    ),
    "empty_steps.yaml": (Expect(9, "steps", ("at least 1 item",)),),
    "input_default_not_in_enum.yaml": (
        Expect(9, "inputs.region.default", ("'mars' is not one of the allowed values: eu, us",)),
    ),
    "input_required_with_default.yaml": (
        Expect(7, "inputs.service", ("a required input cannot have a default",)),
    ),
    "input_unknown_type.yaml": (Expect(8, "inputs.replicas.type", ("'integer'",)),),
    "invalid_duration.yaml": (
        Expect(14, f"{SECOND_STEP} timeout", ("invalid duration 'soon'", "30s")),
    ),
    "invalid_name.yaml": (
        Expect(
            5,
            "metadata.name",
            ("runbook name 'Roll Back'", "lower-case letters, digits and '-'", "db-pitr"),
        ),
    ),
    "invalid_step_id.yaml": (
        Expect(
            12,
            step_place("Restart-App", 1, "id"),
            ("step id 'Restart-App'", "lower-case letters, digits and '_'", "restore_backup"),
        ),
    ),
    "later_step_reference.yaml": (
        Expect(15, f"{SECOND_STEP} with.message", ("steps.verify", "runs later")),
    ),
    "lock_reads_steps.yaml": (Expect(7, "locks.0", ("cannot read steps",)),),
    "missing_metadata_name.yaml": (Expect(4, "metadata.name", ("required field is missing",)),),
    "missing_required_parameter.yaml": (
        Expect(15, f"{SECOND_STEP} with.argv", ("required parameter of shell.run is missing",)),
    ),
    "negative_retries.yaml": (
        Expect(16, f"{SECOND_STEP} retries.count", ("greater than or equal to 0",)),
    ),
    "no_steps.yaml": (
        Expect(2, "steps", ("required field is missing",)),
        Expect(6, "step", ("unknown field",)),
    ),
    "not_a_mapping.yaml": (Expect(1, "", ("must be a mapping",)),),
    "runbook_on_failure_invalid.yaml": (Expect(6, "on_failure", ("'undo' or 'halt'",)),),
    "shell_without_timeout.yaml": (
        Expect(12, f"{SECOND_STEP} timeout", ("shell.run needs a timeout",)),
    ),
    "step_on_failure_invalid.yaml": (
        Expect(14, f"{SECOND_STEP} on_failure", ("'continue', 'undo' or 'halt'",)),
    ),
    "step_without_id.yaml": (Expect(12, "steps[1] field id", ("required field is missing",)),),
    "template_syntax_error.yaml": (
        Expect(
            18, f"{SECOND_STEP} with.message", ("invalid template", "unexpected end of template")
        ),
    ),
    "undeclared_input.yaml": (
        Expect(19, f"{SECOND_STEP} with.message", ("inputs.service", "does not declare")),
    ),
    "undefined_root.yaml": (
        Expect(15, f"{SECOND_STEP} with.message", ("undefined variable 'foo'",)),
    ),
    "undo_invalid_params.yaml": (
        Expect(
            20,
            f"{SECOND_STEP} undo.with.argv",
            ("argv must be a list such as [systemctl, restart, app]",),
        ),
        Expect(21, f"{SECOND_STEP} undo.with.command", ("unknown parameter for shell.run",)),
    ),
    "undo_reads_later_step.yaml": (
        Expect(20, f"{SECOND_STEP} undo.with.message", ("steps.verify", "runs later")),
    ),
    "undo_unknown_action.yaml": (
        Expect(
            18,
            f"{SECOND_STEP} undo.action",
            ("unknown action 'shell.undo'", "did you mean shell.run"),
        ),
    ),
    "unknown_action.yaml": (
        Expect(
            13, f"{SECOND_STEP} action", ("unknown action 'shell.runn'", "did you mean shell.run")
        ),
    ),
    "unknown_filter.yaml": (
        Expect(15, f"{SECOND_STEP} with.message", ("invalid template", "No filter named 'uppper'")),
    ),
    "unknown_output_field.yaml": (
        Expect(
            15,
            f"{SECOND_STEP} with.message",
            ("no output 'nope'", "exit_code", "stdout", "stderr", "duration"),
        ),
    ),
    "unknown_parameter.yaml": (
        Expect(17, f"{SECOND_STEP} with.shell", ("unknown parameter for shell.run",)),
    ),
    "unknown_step_field.yaml": (Expect(14, f"{SECOND_STEP} timout", ("unknown field",)),),
    "unknown_step_reference.yaml": (
        Expect(15, f"{SECOND_STEP} with.message", ("steps.backup", "no step has that id")),
    ),
    "unquoted_template.yaml": (Expect(15, "", ("invalid YAML", "unhashable key")),),
    "unsafe_attribute.yaml": (
        Expect(15, f"{SECOND_STEP} with.message", ("'__class__'", "internal attribute")),
    ),
    "when_syntax_error.yaml": (
        Expect(18, f"{SECOND_STEP} when", ("invalid template 'inputs.force =='",)),
    ),
    "when_with_braces.yaml": (
        Expect(18, f"{SECOND_STEP} when", ("when is already an expression",)),
    ),
    "wrong_api_version.yaml": (Expect(2, "apiVersion", ("'breakglass/v1'",)),),
    "wrong_kind.yaml": (Expect(3, "kind", ("'Runbook'",)),),
    "yaml_syntax_error.yaml": (Expect(13, "", ("invalid YAML", "mapping values are not allowed")),),
    "zero_timeout.yaml": (
        Expect(14, f"{SECOND_STEP} timeout", ("duration '0s' must be more than zero",)),
    ),
    "zero_wait_interval.yaml": (
        Expect(18, f"{SECOND_STEP} with.interval", ("interval must be longer than 0s",)),
    ),
}

CONFIG_CASES: dict[str, Expect] = {
    "duplicate_health_check_names.yaml": Expect(
        3, "health.checks", ("duplicate health check name 'api'",)
    ),
    "duplicate_key.yaml": Expect(
        5, "approval_timeout", ("key 'approval_timeout' is given twice", "first on line 2")
    ),
    "duration_without_unit.yaml": Expect(4, "approval_timeout", ("duration 3600 has no unit",)),
    "health_check_invalid_url.yaml": Expect(5, "health.checks[0].url", ("valid URL",)),
    "health_check_status_out_of_range.yaml": Expect(
        6, "health.checks[0].expect_status[0]", ("less than or equal to 599",)
    ),
    # NOTE: the finding names the check (line 4), not its `kind:` key (line 5), and omits 'tcp'.
    "health_check_unknown_kind.yaml": Expect(
        4, "health.checks[0]", ("unknown health check kind", "supported kinds: http")
    ),
    "health_check_without_url.yaml": Expect(
        6, "health.checks[1].url", ("required field is missing",)
    ),
    "json_condition_two_operators.yaml": Expect(
        7, "health.checks[0].json[0]", ("exactly one of", "got equals, one_of")
    ),
    "not_a_mapping.yaml": Expect(1, "", ("must be a mapping",)),
    "secret_literal.yaml": Expect(
        3,
        "audit.key",
        ("invalid secret reference", "env:VARIABLE"),
        hidden=("correct-horse-battery-staple",),
    ),
    # NOTE: the message lists "postgresql, postgresql+psycopg, sqlite://", so "://" follows only
    # the last scheme, and it omits the rejected value (which could contain a password).
    "state_url_invalid.yaml": Expect(
        2, "state_url", ("must start with postgresql://", "sqlite://")
    ),
    "state_url_password.yaml": Expect(
        2, "state_url", ("contains a password",), hidden=("example-password",)
    ),
    "state_url_password_in_query.yaml": Expect(
        2, "state_url", ("contains a password",), hidden=("example-password",)
    ),
    "state_url_unknown_dialect.yaml": Expect(
        2, "state_url", ("must start with postgresql://", "sqlite://")
    ),
    "unknown_top_level_key.yaml": Expect(3, "runbook_dir", ("unknown field",)),
    # One finding naming the value, not one per member of the union str | int | float | bool.
    "vars_nested_value.yaml": Expect(
        2, "vars", ("vars.regions must be a string, number or boolean",)
    ),
    "yaml_syntax_error.yaml": Expect(4, "", ("invalid YAML",)),
    "zero_lease_ttl.yaml": Expect(2, "lease_ttl", ("duration '0s' must be more than zero",)),
}

# One runbook per kind of error for `plan`.
PLAN_SAMPLE = (
    "missing_metadata_name.yaml",  # schema error
    "unknown_action.yaml",  # unknown action
    "argv_shell_string.yaml",  # invalid parameter value, with brackets in the message
    "unknown_step_reference.yaml",  # template reads a step that does not exist
    "duplicate_yaml_key.yaml",  # duplicate YAML key, rejected by the loader
    "always_step_unguarded.yaml",  # finding that only lint's own checks report
)

# Known project bugs by (command, corpus file), each with the behaviour observed when the
# test was written. An entry marks that one test as a strict xfail, so once the bug is fixed
# the test reports XPASS as a failure until the entry is removed.
BUGS: dict[tuple[str, str], str] = {}


def cases(command: str, names: list[str]) -> list[object]:
    """Return one pytest param per corpus file, marked xfail when BUGS lists it."""
    params: list[object] = []
    for name in names:
        reason = BUGS.get((command, name))
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        params.append(pytest.param(name, id=name.removesuffix(".yaml"), marks=marks))
    return params


def write_with_marker(source: Path, directory: Path, marker: Path) -> Path:
    """Copy a corpus file into `directory`, with MARKER_PATH replaced by `marker`."""
    path = directory / source.name
    # A JSON string is a valid YAML double-quoted scalar, whatever the path contains.
    text = source.read_text(encoding="utf-8").replace(MARKER, json.dumps(str(marker)))
    path.write_text(text, encoding="utf-8")
    return path


def finding_lines(output: str, path: Path) -> list[str]:
    prefix = f"{path}:"
    return [line.strip() for line in output.splitlines() if line.strip().startswith(prefix)]


def assert_findings(output: str, path: Path, expects: tuple[Expect, ...]) -> None:
    """Check that `output` has one finding for `path` per Expect, and each Expect matches."""
    in_file = finding_lines(output, path)
    assert len(in_file) == len(expects), (
        f"expected {len(expects)} finding(s) for {path}, got {len(in_file)}:\n{output}"
    )
    for expect in expects:
        assert_names_place(output, path, expect)


def assert_names_place(output: str, path: Path, expect: Expect) -> None:
    """Check that `output` has a finding `PATH:LINE: WHERE: ...` with every expected word."""
    in_file = finding_lines(output, path)
    assert in_file, f"no finding names {path}:\n{output}"

    line_prefix = f"{path}:{expect.line}: "
    at_line = [line for line in in_file if line.startswith(line_prefix)]
    assert at_line, f"no finding names line {expect.line}:\n{output}"

    place_prefix = f"{line_prefix}{expect.where}: " if expect.where else line_prefix
    at_place = [line for line in at_line if line.startswith(place_prefix)]
    assert at_place, f"no finding names the place {place_prefix!r}:\n{output}"

    for word in expect.words:
        assert any(word in line for line in at_place), (
            f"no finding at {place_prefix!r} contains {word!r}:\n{output}"
        )
    for word in expect.hidden:
        assert word not in output, f"output contains {word!r}:\n{output}"


@dataclass
class LintBatch:
    directory: Path
    result: CliResult


@pytest.fixture(scope="module")
def lint_batch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LintBatch]:
    """Lint the whole runbook corpus in one process.

    The function-scoped `cli` fixture cannot serve a module-scoped fixture, so this one builds
    a Cli itself with the environment that conftest's isolated_state sets for each test.
    """
    directory = tmp_path_factory.mktemp("lint")
    paths = [
        write_with_marker(CORPUS / name, directory, directory / f"{name}.marker")
        for name in sorted(RUNBOOKS)
    ]
    env = {
        "BREAKGLASS_STATE_DIR": str(directory / "state"),
        "XDG_STATE_HOME": str(directory / "xdg"),
        "BREAKGLASS_ACTOR": "tester",
        "NO_COLOR": "1",
    }
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("BREAKGLASS_CONFIG", raising=False)
        result = Cli(directory)("lint", *(str(path) for path in paths), env=env)
    yield LintBatch(directory, result)


def test_corpus_matches_tables() -> None:
    assert sorted(path.name for path in CORPUS.glob("*.yaml")) == sorted(RUNBOOKS)
    assert sorted(path.name for path in CONFIGS.glob("*.yaml")) == sorted(CONFIG_CASES)
    assert len(RUNBOOKS) >= 30
    assert len(CONFIG_CASES) >= 8
    assert set(PLAN_SAMPLE) <= set(RUNBOOKS)


@pytest.mark.parametrize("directory", [CORPUS, CONFIGS], ids=["runbooks", "configs"])
def test_corpus_files_start_with_comment(directory: Path) -> None:
    for path in sorted(directory.glob("*.yaml")):
        first = path.read_text(encoding="utf-8").splitlines()[0]
        assert first.startswith("# "), f"{path.name} does not start with a comment"


def test_corpus_runbooks_use_marker() -> None:
    for path in sorted(CORPUS.glob("*.yaml")):
        assert MARKER in path.read_text(encoding="utf-8"), f"{path.name} has no {MARKER}"


@pytest.mark.slow
def test_good_runbook_touches_marker(cli: Cli, tmp_path: Path) -> None:
    # Without this control, "the marker does not exist" would pass even if touch failed.
    marker = tmp_path / "marker"
    runbook = tmp_path / "good.yaml"
    runbook.write_text(GOOD_RUNBOOK.replace(MARKER, json.dumps(str(marker))), encoding="utf-8")
    result = cli("run", str(runbook), "--yes", input_text="")
    assert result.code == 0, result.output
    assert marker.exists()


@pytest.mark.slow
def test_lint_batch_exits_2(lint_batch: LintBatch) -> None:
    output = lint_batch.result.output
    assert lint_batch.result.code == 2, output
    assert "Traceback" not in output
    assert f"{len(RUNBOOKS)} runbook(s) checked" in output
    assert not list(lint_batch.directory.glob("*.marker"))


@pytest.mark.slow
@pytest.mark.parametrize("name", cases("lint", sorted(RUNBOOKS)))
def test_lint_names_file_and_place(lint_batch: LintBatch, name: str) -> None:
    path = lint_batch.directory / name
    assert_findings(lint_batch.result.output, path, RUNBOOKS[name])


@pytest.mark.slow
@pytest.mark.parametrize("name", cases("run", sorted(RUNBOOKS)))
def test_run_rejects_before_any_step(cli: Cli, tmp_path: Path, name: str) -> None:
    marker = tmp_path / "marker"
    path = write_with_marker(CORPUS / name, tmp_path, marker)
    result = cli("run", str(path), "--yes", input_text="")
    assert result.code == 2, result.output
    assert "Traceback" not in result.output
    assert not marker.exists(), f"a step ran:\n{result.output}"
    assert_findings(result.output, path, RUNBOOKS[name])


@pytest.mark.slow
@pytest.mark.parametrize("name", cases("plan", sorted(PLAN_SAMPLE)))
def test_plan_rejects_runbook(cli: Cli, tmp_path: Path, name: str) -> None:
    marker = tmp_path / "marker"
    path = write_with_marker(CORPUS / name, tmp_path, marker)
    result = cli("plan", str(path))
    assert result.code == 2, result.output
    assert "Traceback" not in result.output
    assert not marker.exists()
    assert_findings(result.output, path, RUNBOOKS[name])


@pytest.mark.slow
@pytest.mark.parametrize("name", cases("validate", sorted(CONFIG_CASES)))
def test_config_validate_names_field(cli: Cli, tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes((CONFIGS / name).read_bytes())
    result = cli("--config", str(path), "config", "validate")
    assert result.code == 2, result.output
    assert "Traceback" not in result.output
    assert_findings(result.output, path, (CONFIG_CASES[name],))


@pytest.mark.slow
@pytest.mark.parametrize("name", cases("config-run", sorted(CONFIG_CASES)))
def test_bad_config_blocks_run(cli: Cli, tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes((CONFIGS / name).read_bytes())
    marker = tmp_path / "marker"
    runbook = tmp_path / "good.yaml"
    runbook.write_text(GOOD_RUNBOOK.replace(MARKER, json.dumps(str(marker))), encoding="utf-8")
    result = cli("--config", str(path), "run", str(runbook), "--yes", input_text="")
    assert result.code == 2, result.output
    assert "Traceback" not in result.output
    assert not marker.exists(), f"a step ran:\n{result.output}"
    assert_findings(result.output, path, (CONFIG_CASES[name],))
