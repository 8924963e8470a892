"""The review queue: items held for a person, one ticket per (job, item, step), in SQLite.

A ticket carries what a reviewer needs to decide (the skill's inputs, the proposed answer and how
sure the models were) and what the runtime needs to finish the item afterwards (the graph as YAML,
the LangGraph thread that waits for the answer). Filing is idempotent: a chunk that runs again
after a crash files the same tickets, never new ones.

It lives in the store file next to the audit log and the examples (``<data dir>/orchestrator.db``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from orchestrator.accounting.escalation_value import DEFAULT_MARGIN, PairedScore, verdict
from orchestrator.config.locations import db_location
from orchestrator.store.location import open_db
from orchestrator.store.measurements import REVIEW_MIN_ITEMS, ProviderMeasurement
from orchestrator.store.migrations import Schema
from orchestrator.store.sql_text import skill_filter
from orchestrator.store.sqlite_file import Run

__all__ = ["CLAIM_TIMEOUT_S", "ReviewQueue", "Ticket", "TicketDraft", "review_thread"]

#: ``answering``: a reviewer's answer is being applied (claimed, so no second answer resumes the
#: item); it falls back to ``waiting`` if that fails, and may be claimed again after
#: ``CLAIM_TIMEOUT_S`` if the process died meanwhile
Status = Literal["waiting", "answering", "answered"]
CLAIM_TIMEOUT_S = 300.0

#: version 1: the table as it stood before versions (see orchestrator.store.migrations)
_V1 = """
CREATE TABLE IF NOT EXISTS reviews (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id      TEXT NOT NULL,
    item_idx    INTEGER NOT NULL,   -- the item's position in its job
    item_id     TEXT NOT NULL,      -- JSON: the item's own id
    graph       TEXT NOT NULL,      -- graph name
    spec_yaml   TEXT NOT NULL,      -- the graph, to finish the item in any process
    step        TEXT NOT NULL,
    skill       TEXT NOT NULL,      -- name@version that held it
    inputs      TEXT NOT NULL,      -- JSON: the skill's inputs
    proposed    TEXT NOT NULL,      -- JSON: the cascade's answer
    confidence  REAL NOT NULL,
    answered_by TEXT NOT NULL,      -- who proposed: a skill key or llm:<provider>
    status      TEXT NOT NULL DEFAULT 'waiting',
    answer      TEXT,
    reviewer    TEXT,
    result      TEXT,               -- JSON: the finished item's result line
    created_at  REAL NOT NULL,
    answered_at REAL,
    UNIQUE (job_id, item_idx, step)
);
CREATE INDEX IF NOT EXISTS reviews_status ON reviews (status, id);
CREATE INDEX IF NOT EXISTS reviews_job ON reviews (job_id, item_idx);
"""
#: version 2: what a provider's answer is scored against when a person answers (a held item a
#: provider answered): the small tiers' answer it replaced, the provider's model, the tiers' key
#: (``orchestrator.graph.tiers_key``), and, once answered, who of the two was right
_V2 = """
ALTER TABLE reviews ADD COLUMN small TEXT;
ALTER TABLE reviews ADD COLUMN model TEXT;
ALTER TABLE reviews ADD COLUMN fingerprint TEXT;
ALTER TABLE reviews ADD COLUMN small_right INTEGER;
ALTER TABLE reviews ADD COLUMN provider_right INTEGER;
CREATE INDEX IF NOT EXISTS reviews_paired ON reviews (skill, fingerprint, small_right);
"""
_SCHEMA = Schema("review_queue", [_V1, _V2])

_COLUMNS = (
    "id, job_id, item_idx, item_id, graph, spec_yaml, step, skill, inputs, proposed, confidence, "
    "answered_by, status, answer, reviewer, result, created_at, answered_at, small, model, "
    "fingerprint, small_right, provider_right"
)


@dataclass(frozen=True, kw_only=True)
class TicketDraft:
    """What the runtime files for one held item."""

    job_id: str
    item_idx: int
    item_id: Any
    graph: str
    spec_yaml: str
    step: str
    skill: str
    inputs: dict[str, Any]
    proposed: dict[str, Any]
    confidence: float
    answered_by: str
    #: when a provider answered (``answered_by`` ``llm:<provider>``): the small tiers' answer it
    #: replaced, the provider's model and the tiers' measurement key; None otherwise
    small: dict[str, Any] | None = None
    model: str | None = None
    fingerprint: str | None = None


@dataclass(frozen=True, kw_only=True)
class Ticket(TicketDraft):
    """One filed review: the draft, its id and where it stands."""

    id: int
    status: Status
    answer: dict[str, Any] | None
    reviewer: str | None
    result: dict[str, Any] | None
    created_at: float
    answered_at: float | None
    #: once answered, for a ticket with ``small``: whether each of the two had the person's label
    small_right: bool | None = None
    provider_right: bool | None = None

    @property
    def paired(self) -> bool:
        """Whether a person's answer can score the provider against the small tiers here."""
        return self.small is not None and self.answered_by.startswith("llm:")

    @property
    def thread_id(self) -> str:
        """The LangGraph thread that waits for this ticket's answer."""
        return review_thread(self.job_id, self.item_idx, self.step)

    def to_dict(self) -> dict[str, Any]:
        """The JSON view (API, CLI ``--json``, dashboard); the graph YAML is left out."""
        return {
            "id": self.id,
            "job_id": self.job_id,
            "item": self.item_idx,
            "item_id": self.item_id,
            "graph": self.graph,
            "step": self.step,
            "skill": self.skill,
            "inputs": self.inputs,
            "proposed": self.proposed,
            "confidence": round(self.confidence, 4),
            "answered_by": self.answered_by,
            "small": self.small,
            "status": self.status,
            "answer": self.answer,
            "reviewer": self.reviewer,
            "result": self.result,
            "created_at": self.created_at,
            "answered_at": self.answered_at,
        }


class ReviewQueue:
    """Tickets in SQLite (thread-safe: one connection behind a lock)."""

    def __init__(self, path: Path | str) -> None:
        self.path = db_location(path)
        self._db = open_db(self.path, _SCHEMA)

    def file(self, draft: TicketDraft) -> tuple[Ticket, bool]:
        """File a ticket; returns it and whether it is new (False: the item was already filed)."""
        rows = self._db.execute(
            "INSERT INTO reviews (job_id, item_idx, item_id, graph, spec_yaml, step, skill, "
            "inputs, proposed, confidence, answered_by, created_at, small, model, fingerprint) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (job_id, item_idx, step) DO NOTHING RETURNING id",
            (
                draft.job_id,
                draft.item_idx,
                _dump(draft.item_id),
                draft.graph,
                draft.spec_yaml,
                draft.step,
                draft.skill,
                _dump(draft.inputs),
                _dump(draft.proposed),
                float(draft.confidence),
                draft.answered_by,
                time.time(),
                None if draft.small is None else _dump(draft.small),
                draft.model,
                draft.fingerprint,
            ),
        )
        if rows:
            return self._must(int(rows[0][0])), True
        found = self.find(draft.job_id, draft.item_idx, draft.step)
        assert found is not None
        return found, False

    def find(self, job_id: str, item_idx: int, step: str) -> Ticket | None:
        """The ticket of an item held by ``step``, if it was filed."""
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM reviews WHERE job_id = ? AND item_idx = ? AND step = ?",
            (job_id, item_idx, step),
        )
        return _ticket(rows[0]) if rows else None

    def get(self, ticket_id: int) -> Ticket | None:
        rows = self._db.execute(f"SELECT {_COLUMNS} FROM reviews WHERE id = ?", (ticket_id,))
        return _ticket(rows[0]) if rows else None

    def list(
        self,
        *,
        status: Status | None = "waiting",
        job_id: str | None = None,
        limit: int = 100,
        after: int = 0,
        owner: str | None = None,
    ) -> list[Ticket]:
        """Tickets oldest first, from id ``after`` on (paging), filtered by status and job;
        ``owner``: only tickets of that key's jobs (the job store shares this database)."""
        where: list[str] = ["id > ?"]
        params: list[Any] = [after]
        if status is not None:
            where.append("status = ?")
            params.append(status)
        if job_id is not None:
            where.append("job_id = ?")
            params.append(job_id)
        if owner is not None:
            where.append("job_id IN (SELECT id FROM jobs WHERE owner = ?)")
            params.append(owner)
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM reviews WHERE {' AND '.join(where)} ORDER BY id LIMIT ?",
            (*params, limit),
        )
        return [_ticket(r) for r in rows]

    def counts(self) -> dict[str, int]:
        """Tickets per status (gauges, dashboard)."""
        rows = self._db.execute("SELECT status, COUNT(*) FROM reviews GROUP BY status")
        return {str(status): int(n) for status, n in rows}

    def claim(self, ticket_id: int, reviewer: str) -> bool:
        """Take a waiting ticket for one answer (``answering``); False when another answer has
        it or had it. Of two concurrent answers exactly one claims the ticket."""
        now = time.time()
        rows = self._db.execute(
            "UPDATE reviews SET status = 'answering', reviewer = ?, answered_at = ? WHERE id = ?"
            " AND (status = 'waiting' OR (status = 'answering' AND answered_at < ?)) RETURNING id",
            (reviewer, now, ticket_id, now - CLAIM_TIMEOUT_S),
        )
        return bool(rows)

    def unclaim(self, ticket_id: int) -> None:
        """An answer failed before it closed the ticket: it waits again."""
        self._db.execute(
            "UPDATE reviews SET status = 'waiting', reviewer = NULL, answered_at = NULL"
            " WHERE id = ? AND status = 'answering'",
            (ticket_id,),
        )

    def close_ticket(
        self,
        ticket_id: int,
        *,
        answer: dict[str, Any],
        reviewer: str,
        result: dict[str, Any],
        paired: tuple[bool, bool] | None = None,
        also: Callable[[Run], object] | None = None,
    ) -> bool:
        """Record the answer and the finished result; False when it was already answered.

        ``paired``: (small tiers right, provider right) by the answer, for a paired ticket.
        ``also(run)`` runs more statements in the same transaction (the job store's copy of the
        result, when it shares this database): the ticket closes and they apply together, or
        neither does."""
        small_right, provider_right = (
            (None, None) if paired is None else (int(paired[0]), int(paired[1]))
        )
        with self._db.transaction() as run:
            rows = run(
                "UPDATE reviews SET status = 'answered', answer = ?, reviewer = ?, result = ?,"
                " answered_at = ?, small_right = ?, provider_right = ?"
                " WHERE id = ? AND status IN ('waiting', 'answering') RETURNING id",
                (
                    _dump(answer),
                    reviewer,
                    _dump(result),
                    time.time(),
                    small_right,
                    provider_right,
                    ticket_id,
                ),
            )
            if rows and also is not None:
                also(run)
        return bool(rows)

    def measured(
        self, skill: str | None = None, fingerprint: str | None = None
    ) -> tuple[ProviderMeasurement, ...]:
        """What people's answers say of each provider against the small tiers, one row per
        (skill, tiers, provider, model), newest answer first (source ``review``): the answered
        tickets a provider had answered, paired. The verdict is taken at the default margin, and
        is ``unproven`` under :data:`~orchestrator.store.measurements.REVIEW_MIN_ITEMS` items."""
        where: list[str] = ["small_right IS NOT NULL"]
        params: list[object] = []
        if skill is not None:
            condition, params = skill_filter(skill)
            where.append(condition)
        if fingerprint is not None:
            where.append("fingerprint = ?")
            params.append(fingerprint)
        rows = self._db.execute(
            "SELECT skill, fingerprint, answered_by, model, COUNT(*), SUM(small_right), "
            "SUM(provider_right), SUM(provider_right * (1 - small_right)), "
            "SUM(small_right * (1 - provider_right)), MAX(answered_at) FROM reviews "
            f"WHERE {' AND '.join(where)} GROUP BY skill, fingerprint, answered_by, model "
            "ORDER BY MAX(answered_at) DESC",
            params,
        )
        return tuple(_measured(row) for row in rows)

    def delete_job(self, job_id: str) -> tuple[Ticket, ...]:
        """Forget one job's tickets (``DELETE /v1/jobs/{id}``, retention); returns them, so their
        paused threads can go too."""
        tickets = tuple(self.list(status=None, job_id=job_id, limit=2**62))
        self._db.execute("DELETE FROM reviews WHERE job_id = ?", (job_id,))
        return tickets

    def close(self) -> None:
        self._db.close()

    def _must(self, ticket_id: int) -> Ticket:
        ticket = self.get(ticket_id)
        assert ticket is not None
        return ticket


def review_thread(job_id: str, item_idx: int, step: str) -> str:
    """The LangGraph thread of an item held by ``step`` (known before its ticket is filed)."""
    return f"review-{job_id}-{item_idx}-{step}"


def _dump(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _load(text: str | None) -> Any:
    return json.loads(text) if text is not None else None


def _measured(row: tuple[Any, ...]) -> ProviderMeasurement:
    skill, fingerprint, answered_by, model, items, small, provider, provider_only, small_only = row[
        :9
    ]
    score = PairedScore(*(int(n) for n in (items, small, provider, provider_only, small_only)))
    enough = score.items >= REVIEW_MIN_ITEMS
    return ProviderMeasurement(
        skill=skill,
        fingerprint=fingerprint,
        provider=answered_by.removeprefix("llm:"),
        model=model,
        score=score,
        verdict=verdict(score, DEFAULT_MARGIN) if enough else "unproven",
        margin=DEFAULT_MARGIN,
        source="review",
        detail={"answers_needed": max(0, REVIEW_MIN_ITEMS - score.items)},
        created_at=float(row[9]),
    )


def _ticket(row: tuple[Any, ...]) -> Ticket:
    (tid, job_id, idx, item_id, graph, spec_yaml, step, skill, inputs, proposed, conf) = row[:11]
    answered_by, status, answer, reviewer, result, created_at, answered_at = row[11:18]
    small, model, fingerprint, small_right, provider_right = row[18:]
    return Ticket(
        id=int(tid),
        job_id=job_id,
        item_idx=int(idx),
        item_id=_load(item_id),
        graph=graph,
        spec_yaml=spec_yaml,
        step=step,
        skill=skill,
        inputs=_load(inputs),
        proposed=_load(proposed),
        confidence=float(conf),
        answered_by=answered_by,
        status=status,
        answer=_load(answer),
        reviewer=reviewer,
        result=_load(result),
        created_at=float(created_at),
        answered_at=answered_at,
        small=_load(small),
        model=model,
        fingerprint=fingerprint,
        small_right=None if small_right is None else bool(small_right),
        provider_right=None if provider_right is None else bool(provider_right),
    )
