"""Labelled examples learned from escalations: the big model's answers (and, later, human
corrections) for the items a skill was unsure of. They are the training data of the next skill
version (distillation), so the escalation rate falls release after release.

One SQLite table next to the audit log and the plan cache. Inputs are stored redacted, the way
they left the process (:meth:`orchestrator.graph.cascade.Escalator.learn`, the review desk): the
small models train on placeholders (``<PERSON_1>``), and no customer value is kept at rest.
``DELETE /v1/jobs/{id}`` and the service's retention remove a job's examples with it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.config.locations import db_location
from orchestrator.store.location import open_db
from orchestrator.store.migrations import Schema
from orchestrator.store.sql_text import skill_filter

__all__ = ["Example", "ExampleStore"]

#: version 1: the table as it stood before versions (see orchestrator.store.migrations)
_V1 = """
CREATE TABLE IF NOT EXISTS examples (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    skill TEXT NOT NULL,          -- name@version that was unsure
    inputs TEXT NOT NULL,         -- JSON object: the skill's input fields
    outputs TEXT NOT NULL,        -- JSON object: the accepted answer
    source TEXT NOT NULL,         -- llm:<provider> | human:<reviewer>
    small_confidence REAL,        -- the skill's own confidence on the item
    job_id TEXT,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS examples_skill ON examples (skill);
"""
_SCHEMA = Schema("examples", [_V1])


@dataclass(frozen=True)
class Example:
    """One labelled example."""

    skill: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    source: str
    small_confidence: float | None = None
    job_id: str | None = None


class ExampleStore:
    """Append-only store of labelled examples (thread-safe; one connection behind a lock)."""

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = db_location(path)
        self._db = open_db(self.path, _SCHEMA)

    def add(self, examples: Iterable[Example]) -> int:
        """Store examples; returns how many."""
        now = time.time()
        rows = [
            (
                e.skill,
                json.dumps(e.inputs, sort_keys=True, default=str),
                json.dumps(e.outputs, sort_keys=True, default=str),
                e.source,
                e.small_confidence,
                e.job_id,
                now,
            )
            for e in examples
        ]
        self._db.executemany(
            "INSERT INTO examples (skill, inputs, outputs, source, small_confidence, job_id, "
            "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        return len(rows)

    def for_skill(self, name: str) -> list[Example]:
        """Every example learned for any version of skill ``name``, oldest first."""
        where, params = skill_filter(name)
        rows = self._db.execute(
            "SELECT skill, inputs, outputs, source, small_confidence, job_id FROM examples "
            f"WHERE {where} ORDER BY id",
            params,
        )
        return [Example(r[0], json.loads(r[1]), json.loads(r[2]), r[3], r[4], r[5]) for r in rows]

    def counts(self) -> dict[str, int]:
        """Examples per skill version."""
        rows = self._db.execute("SELECT skill, COUNT(*) FROM examples GROUP BY skill")
        return {skill: count for skill, count in rows}

    def delete_job(self, job_id: str) -> int:
        """Forget the examples learned from one job (``DELETE /v1/jobs/{id}``, retention)."""
        rows = self._db.execute("DELETE FROM examples WHERE job_id = ? RETURNING id", (job_id,))
        return len(rows)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> ExampleStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
