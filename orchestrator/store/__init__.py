"""The store: jobs and their items in SQLite or Postgres, step checkpoints, learned examples.

Imports accounting, config and errors only; every layer above may use it.
"""

from orchestrator.store.item import Item
from orchestrator.store.jobs import (
    ACTIVE_STATUSES,
    TERMINAL_STATUSES,
    ChunkOutcome,
    JobDraft,
    JobRecord,
    Store,
    ledger_from_raw,
    ledger_to_raw,
)
from orchestrator.store.location import open_store

__all__ = [
    "ACTIVE_STATUSES",
    "TERMINAL_STATUSES",
    "ChunkOutcome",
    "Item",
    "JobDraft",
    "JobRecord",
    "Store",
    "ledger_from_raw",
    "ledger_to_raw",
    "open_store",
]
