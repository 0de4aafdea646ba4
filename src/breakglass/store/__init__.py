"""The state store: runs, journal, leases, counters and the audit chain.

Other layers reach the tables only through the repository functions in this package.
"""

from breakglass.store.db import Store, open_store
from breakglass.store.records import AuditEntry, EntryKind, JournalEntry, RunRecord, RunState

__all__ = [
    "AuditEntry",
    "EntryKind",
    "JournalEntry",
    "RunRecord",
    "RunState",
    "Store",
    "open_store",
]
