"""A secret from `env:` never reaches logs, journal rows, the database file, outputs or argv."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import Cli

SECRET = "s3cr3t-Value-4242"

RUNBOOK = """\
apiVersion: breakglass/v1
kind: Runbook
metadata: {{name: secretive}}
steps:
  - id: use
    action: shell.run
    timeout: 10s
    with:
      argv: [sh, -c, 'echo "token is $API_TOKEN"; echo "again $API_TOKEN" >&2; cat /proc/[0-9]*/cmdline > {argv_dump} 2>/dev/null; exit 0']
      secret_env: {{API_TOKEN: "env:BG_API_TOKEN"}}
  - id: fail
    action: shell.run
    timeout: 10s
    with:
      argv: [sh, -c, 'echo "failing with $API_TOKEN" >&2; exit 3']
      secret_env: {{API_TOKEN: "env:BG_API_TOKEN"}}
"""


def test_secret_never_stored_or_shown(cli: Cli, tmp_path: Path, isolated_state: Path) -> None:
    argv_dump = tmp_path / "argv.txt"
    runbook = tmp_path / "secretive.yaml"
    runbook.write_text(RUNBOOK.format(argv_dump=argv_dump))
    env = {"BG_API_TOKEN": SECRET}
    result = cli("-vv", "run", str(runbook), env=env)
    assert result.code == 1
    assert SECRET not in result.output
    assert "failing with ***" in result.output
    shown = cli(
        "runs",
        "show",
        json.loads(cli("runs", "--output", "json").stdout)[0]["id"],
        "--output",
        "json",
        env=env,
    )
    assert SECRET not in shown.stdout
    journal = json.loads(shown.stdout)["journal"]
    outputs = next(
        entry for entry in journal if entry["kind"] == "step_ended" and entry["step_id"] == "use"
    )
    assert outputs["data"]["outputs"]["stdout"] == "token is ***\n"
    exported = cli("audit", "export", env=env)
    assert SECRET not in exported.stdout
    for path in isolated_state.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    # The child read every process's argv while it ran: the secret was in none of them.
    assert argv_dump.exists()
    assert SECRET.encode() not in argv_dump.read_bytes()


def test_secret_in_argv_rejected(cli: Cli, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    runbook = tmp_path / "leaky.yaml"
    runbook.write_text(
        "apiVersion: breakglass/v1\nkind: Runbook\nmetadata: {name: leaky}\ninputs:\n  token: {type: string}\n"
        "steps:\n  - id: prime\n    action: shell.run\n    timeout: 5s\n"
        "    with: {argv: ['true'], secret_env: {T: 'env:BG_API_TOKEN'}}\n"
        "  - id: leak\n    action: shell.run\n    timeout: 5s\n"
        f"    with: {{argv: [sh, -c, 'touch {marker}', '{{{{ inputs.token }}}}']}}\n"
    )
    result = cli("run", str(runbook), "-i", f"token={SECRET}", env={"BG_API_TOKEN": SECRET})
    assert result.code == 1
    assert "argv contains a secret value" in result.output
    assert not marker.exists()
