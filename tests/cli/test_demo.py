"""`breakglass demo`, the README's first command: the main job in a sandbox, end to end."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.conftest import Cli
from tests.postgres import find_bindir

pytestmark = pytest.mark.skipif(find_bindir() is None, reason="PostgreSQL is not installed")


def test_demo_runs_main_job(cli: Cli, tmp_path: Path) -> None:
    state = tmp_path / "state"
    ran = cli("demo", env={"BREAKGLASS_STATE_DIR": str(state)}, timeout=600)
    assert ran.code == 0, ran.output
    out = ran.stdout

    # The broken release fails its check first, and an incident is opened.
    assert '"version": "2.5.0"' in out
    incident = re.search(r"opened (INC-\d{8}-\d{3}) \(P1\)", out)
    assert incident is not None, out
    assert f"acknowledged {incident[1]}" in out

    # The rollback: schema first in a Job of the current release, then the Deployment.
    assert "in Jobs from backend's image" in out
    assert "downgraded 127.0.0.1:" in out
    assert "0004_order_currency → 0003_subscriptions" in out
    assert "roll backend back from revision 4 to revision 3" in out
    assert "invalidation" in out
    assert "backend rolled back and verified; maintenance mode is off" in out

    # The recovery: the dropped table is back, from a point-in-time restore.
    assert 'does not exist"}' in out
    assert "promoted on timeline 2" in out
    assert "orders: 2000 rows again" in out

    # The timeline joins both runs, and the post-mortem is written.
    assert "of backend-rollback ended succeeded" in out
    assert "of db-pitr ended succeeded" in out
    drafted = re.search(r"Post-mortem draft: (\S+)", out)
    assert drafted is not None, out
    postmortem = Path(drafted[1])
    assert postmortem.parent == state / "demo"
    assert postmortem.name.startswith(f"postmortem-{incident[1]}-")
    text = postmortem.read_text()
    assert "backend-rollback" in text
    assert "db-pitr" in text

    # The sandbox is gone afterwards.
    assert not (state / "sandbox").exists()
    status = cli("sandbox", "status", "--output", "json", env={"BREAKGLASS_STATE_DIR": str(state)})
    assert json.loads(status.stdout)["up"] is False
