from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from breakglass.store import Store, audit

KEY = b"k" * 32
START = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def fill(store: Store, count: int = 5) -> audit.Head:
    head = audit.Head(0, audit.GENESIS)
    with store.write() as connection:
        for index in range(count):
            head = audit.append(
                connection,
                key=KEY,
                at=START + timedelta(seconds=index),
                actor="alice",
                kind="step_ended",
                subject=f"RUN-1/step-{index + 1}",
                data={"n": index + 1},
            )
    return head


def tamper(store: Store, *statements: str) -> None:
    """Rewrite rows the way an attacker with database access would: drop the guard first."""
    with store.write() as connection:
        if store.is_sqlite:
            connection.execute(text("DROP TRIGGER IF EXISTS audit_log_no_update"))
            connection.execute(text("DROP TRIGGER IF EXISTS audit_log_no_delete"))
        else:
            connection.execute(text("DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log"))
        for statement in statements:
            connection.execute(text(statement))


def check(store: Store, expected: audit.Head | None = None) -> audit.VerifyReport:
    with store.read() as connection:
        return audit.verify(connection, key=KEY, expected=expected)


def test_intact_chain_verifies(store: Store) -> None:
    head = fill(store)
    report = check(store, expected=head)
    assert report.ok
    assert report.checked == 5
    assert report.head == head


def test_update_blocked_by_trigger(store: Store) -> None:
    fill(store)
    with pytest.raises(SQLAlchemyError, match="append-only"), store.write() as connection:
        connection.execute(text("UPDATE audit_log SET actor = 'mallory' WHERE seq = 2"))


def test_edit_named(store: Store) -> None:
    fill(store)
    tamper(store, "UPDATE audit_log SET actor = 'mallory' WHERE seq = 3")
    report = check(store)
    assert report.problems == [
        "entry 3 (step_ended RUN-1/step-3) was altered: its hash does not match its content "
        "under the audit key (edited, moved, or recomputed without the key)"
    ]


def test_deletion_named(store: Store) -> None:
    fill(store)
    tamper(store, "DELETE FROM audit_log WHERE seq = 2")
    report = check(store)
    assert not report.ok
    assert report.problems[0] == "entry 2 missing: the sequence jumps from 1 to 3"
    assert "entry 3 does not follow entry 1" in report.problems[1]


def test_swap_of_two_entries_named(store: Store) -> None:
    fill(store)
    # Exchange the content of entries 2 and 4, keeping their sequence numbers.
    tamper(
        store,
        "UPDATE audit_log SET seq = -2 WHERE seq = 2",
        "UPDATE audit_log SET seq = 2 WHERE seq = 4",
        "UPDATE audit_log SET seq = 4 WHERE seq = -2",
    )
    report = check(store)
    altered = [problem for problem in report.problems if "was altered" in problem]
    assert any(problem.startswith("entry 2 ") for problem in altered)
    assert any(problem.startswith("entry 4 ") for problem in altered)


def test_chain_recomputed_without_key_caught(store: Store) -> None:
    fill(store)
    with store.read() as connection:
        rows = connection.execute(
            text("SELECT seq, at, actor, kind, subject, data FROM audit_log ORDER BY seq")
        ).all()
    statements = []
    prev = audit.GENESIS
    for row in rows:
        actor = "mallory" if row.seq == 2 else row.actor
        at = datetime.fromisoformat(str(row.at)).replace(tzinfo=UTC)
        payload = json.dumps(
            [row.seq, at.isoformat(), actor, row.kind, row.subject, row.data, prev],
            separators=(",", ":"),
        )
        digest = hashlib.sha256(payload.encode()).hexdigest()
        statements.append(
            f"UPDATE audit_log SET actor = '{actor}', prev_hash = '{prev}', hash = '{digest}' WHERE seq = {row.seq}"
        )
        prev = digest
    statements.append(f"UPDATE audit_head SET hash = '{prev}' WHERE id = 1")
    tamper(store, *statements)
    report = check(store)
    assert len([problem for problem in report.problems if "was altered" in problem]) == 5


def test_truncated_tail_caught_against_exported_head(store: Store) -> None:
    exported = fill(store)
    with store.read() as connection:
        row = connection.execute(text("SELECT hash FROM audit_log WHERE seq = 3")).one()
    # The attacker removes the last two entries and rewinds the head row to match.
    tamper(
        store,
        "DELETE FROM audit_log WHERE seq > 3",
        f"UPDATE audit_head SET seq = 3, hash = '{row.hash}' WHERE id = 1",
    )
    assert check(store).ok
    report = check(store, expected=exported)
    assert report.problems == [
        "the exported head names entry 5, but the log ends at entry 3: entries 4 to 5 were removed from the end"
    ]


def test_truncation_without_head_rewind_caught(store: Store) -> None:
    fill(store)
    tamper(store, "DELETE FROM audit_log WHERE seq = 5")
    report = check(store)
    assert report.problems == [
        "the recorded head is entry 5 but the log ends at entry 4: entries were removed from the end or the head was rewritten"
    ]


def test_head_parse_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="SEQ:HASH"):
        audit.Head.parse("12")
