from __future__ import annotations

import json

from tests.conftest import Cli


def test_demo_rolls_back_and_verifies(cli: Cli) -> None:
    result = cli("demo")
    assert result.code == 0, result.output
    assert "serves version 2.0.0" in result.stdout
    assert "✔ rollback succeeded" in result.stdout
    assert "✔ verify succeeded" in result.stdout
    assert "service now serves version 1.4.2" in result.stdout
    assert "webhook received: {'text': 'demo-rollback: rolled back to 1.4.2" in result.stdout
    assert "audit log: intact" in result.stdout
    [run] = json.loads(cli("runs", "--output", "json").stdout)
    assert run["state"] == "succeeded"
    assert cli("audit", "verify").code == 0
