"""The plan cache: one planner call per workflow version, not per job.

A plan is stored under a key made of the task (whitespace-normalised), the job's input fields with
their types, and the exact skill versions the planner was shown. The same task over the same
fields reuses the plan; registering or promoting a different skill version changes the key, so
the next job plans again. Plans live in SQLite next to the audit log.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from orchestrator.config.locations import db_location
from orchestrator.graph.spec import GraphSpec
from orchestrator.registry.registry import Registry
from orchestrator.store.location import open_db
from orchestrator.store.migrations import Schema

__all__ = ["PlanCache", "plan_key", "registry_fingerprint"]

#: version 1: the table as it stood before versions (see orchestrator.store.migrations)
_V1 = """
CREATE TABLE IF NOT EXISTS plans (
    key TEXT PRIMARY KEY,
    task TEXT NOT NULL,
    fields TEXT NOT NULL,
    spec_yaml TEXT NOT NULL,
    created_at REAL NOT NULL,
    hits INTEGER NOT NULL DEFAULT 0
)
"""
_SCHEMA = Schema("plan_cache", [_V1])


def registry_fingerprint(registry: Registry) -> list[str]:
    """The skill versions a planner sees: what each name resolves to now (``name@version``)."""
    return sorted(registry.resolve(name).key for name in registry.names())


def plan_key(task: str, fields: Mapping[str, Any], registry: Registry) -> str:
    """sha256 of the normalised task, the typed input fields and the registry's skill versions."""
    payload = {
        "task": " ".join(task.split()).lower(),
        "fields": dict(sorted(fields.items())),  # declarations as given: JSON
        "skills": registry_fingerprint(registry),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


class PlanCache:
    """Validated plans by key, in SQLite (thread-safe; one connection behind a lock)."""

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = db_location(path)
        self._db = open_db(self.path, _SCHEMA)

    def get(self, key: str) -> GraphSpec | None:
        """The cached plan for ``key`` (and count the hit), or None."""
        rows = self._db.execute("SELECT spec_yaml FROM plans WHERE key = ?", (key,))
        if not rows:
            return None
        self._db.execute("UPDATE plans SET hits = hits + 1 WHERE key = ?", (key,))
        import yaml

        return GraphSpec.from_dict(yaml.safe_load(rows[0][0]), source="plan cache")

    def put(self, key: str, task: str, fields: Mapping[str, Any], spec: GraphSpec) -> None:
        """Store a validated plan."""
        self._db.execute(
            "INSERT INTO plans (key, task, fields, spec_yaml, created_at) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (key) DO UPDATE SET task = excluded.task, fields = excluded.fields, "
            "spec_yaml = excluded.spec_yaml, created_at = excluded.created_at",
            (key, task, json.dumps(dict(fields)), spec.to_yaml(), time.time()),
        )

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> PlanCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
