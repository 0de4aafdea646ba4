"""The audit log: an append-only chain of entries, each keyed with HMAC-SHA-256.

Each entry's hash covers its own fields and the previous entry's hash, under a key that
the store never holds. Editing, deleting or reordering entries breaks the chain, and
recomputing the chain needs the key. Removing entries from the end leaves a valid
chain, which is why `audit head` exports the head to compare against later.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from breakglass.config.redaction import REDACTOR
from breakglass.store.records import AuditEntry
from breakglass.store.schema import audit_head, audit_log

GENESIS = "0" * 64


@dataclass(frozen=True)
class Head:
    seq: int
    hash: str

    def __str__(self) -> str:
        return f"{self.seq}:{self.hash}"

    @classmethod
    def parse(cls, text: str) -> Head:
        seq, _, digest = text.strip().partition(":")
        if not seq.isdigit() or len(digest) != 64:
            raise ValueError(
                f"invalid audit head {text!r}: expected SEQ:HASH as printed by `breakglass audit head`"
            )
        return cls(int(seq), digest.lower())


@dataclass
class VerifyReport:
    checked: int = 0
    head: Head = field(default_factory=lambda: Head(0, GENESIS))
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def entry_hash(
    key: bytes, *, seq: int, at: datetime, actor: str, kind: str, subject: str, data: str, prev: str
) -> str:
    payload = json.dumps(
        [seq, at.isoformat(), actor, kind, subject, data, prev], separators=(",", ":")
    ).encode()
    return hmac.new(key, payload, hashlib.sha256).hexdigest()


def append(
    connection: Connection,
    *,
    key: bytes,
    at: datetime,
    actor: str,
    kind: str,
    subject: str,
    data: dict[str, Any],
) -> Head:
    """Append one entry inside the caller's write transaction and return the new head."""
    head_row = connection.execute(
        select(audit_head).where(audit_head.c.id == 1).with_for_update()
    ).one()
    prev = Head(head_row.seq, head_row.hash)
    seq = prev.seq + 1
    actor = REDACTOR.redact(actor)
    subject = REDACTOR.redact(subject)
    payload = REDACTOR.redact(json.dumps(data, sort_keys=True, default=str))
    digest = entry_hash(
        key, seq=seq, at=at, actor=actor, kind=kind, subject=subject, data=payload, prev=prev.hash
    )
    connection.execute(
        insert(audit_log).values(
            seq=seq,
            at=at,
            actor=actor,
            kind=kind,
            subject=subject,
            data=payload,
            prev_hash=prev.hash,
            hash=digest,
        )
    )
    connection.execute(update(audit_head).where(audit_head.c.id == 1).values(seq=seq, hash=digest))
    return Head(seq, digest)


def iter_entries(connection: Connection) -> Iterator[AuditEntry]:
    result = connection.execute(select(audit_log).order_by(audit_log.c.seq))
    for row in result:
        yield AuditEntry(
            seq=row.seq,
            at=row.at,
            actor=row.actor,
            kind=row.kind,
            subject=row.subject,
            data=json.loads(row.data) if row.data else {},
            prev_hash=row.prev_hash,
            hash=row.hash,
        )


def _raw_rows(connection: Connection) -> Iterator[Any]:
    yield from connection.execute(select(audit_log).order_by(audit_log.c.seq))


def verify(connection: Connection, *, key: bytes, expected: Head | None = None) -> VerifyReport:
    """Walk the chain and name every entry that was edited, removed, inserted or moved."""
    report = VerifyReport()
    prev = Head(0, GENESIS)
    for row in _raw_rows(connection):
        report.checked += 1
        if row.seq != prev.seq + 1:
            missing = (
                f"entry {prev.seq + 1}"
                if row.seq == prev.seq + 2
                else f"entries {prev.seq + 1} to {row.seq - 1}"
            )
            report.problems.append(
                f"{missing} missing: the sequence jumps from {prev.seq} to {row.seq}"
            )
        if row.prev_hash != prev.hash:
            report.problems.append(
                f"entry {row.seq} does not follow entry {prev.seq}: its previous-hash does not "
                "match, so an entry before it was deleted, inserted or moved"
            )
        digest = entry_hash(
            key,
            seq=row.seq,
            at=row.at,
            actor=row.actor,
            kind=row.kind,
            subject=row.subject,
            data=row.data,
            prev=row.prev_hash,
        )
        if not hmac.compare_digest(digest, row.hash):
            report.problems.append(
                f"entry {row.seq} ({row.kind} {row.subject}) was altered: its hash does not match "
                "its content under the audit key (edited, moved, or recomputed without the key)"
            )
        prev = Head(row.seq, row.hash)
    report.head = prev
    stored = connection.execute(select(audit_head).where(audit_head.c.id == 1)).first()
    if stored is not None and (stored.seq, stored.hash) != (prev.seq, prev.hash):
        report.problems.append(
            f"the recorded head is entry {stored.seq} but the log ends at entry {prev.seq}: "
            "entries were removed from the end or the head was rewritten"
        )
    if expected is not None:
        _check_expected_head(connection, expected, prev, report)
    return report


def _check_expected_head(
    connection: Connection, expected: Head, last: Head, report: VerifyReport
) -> None:
    row = connection.execute(select(audit_log).where(audit_log.c.seq == expected.seq)).first()
    if row is None:
        report.problems.append(
            f"the exported head names entry {expected.seq}, but the log ends at entry {last.seq}: "
            f"entries {last.seq + 1} to {expected.seq} were removed from the end"
        )
    elif not hmac.compare_digest(row.hash, expected.hash):
        report.problems.append(
            f"entry {expected.seq} differs from the exported head: the chain up to it was rewritten"
        )
