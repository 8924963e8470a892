"""Provider measurements: what escalating a skill's unsure items to each provider is worth.

``orchestrator providers eval`` (:mod:`orchestrator.learning.bakeoff`) writes one row per
provider and run; the runtime reads the newest per provider before a job escalates, and the
dashboard lists them (``GET /v1/dashboard/providers``). A row is keyed to the small tiers it was
measured against: the skill (``name@version``) and a fingerprint of the tiers' artifacts (the
skill's and its chain's, :func:`tiers_fingerprint`), so a retrained skill, or another chain,
never reuses an old measurement: it reads as unmeasured.

One table in the store file next to the examples and the audit log (SQLite or Postgres, portable
SQL). Rows are only added, never updated: the history of a skill's bake-offs stays readable.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from orchestrator.accounting.escalation_value import PairedScore, verdict
from orchestrator.config.locations import db_location
from orchestrator.store.location import open_db
from orchestrator.store.migrations import Schema
from orchestrator.store.sql_text import skill_filter

__all__ = [
    "REVIEW_MIN_ITEMS",
    "MeasurementStore",
    "ProviderMeasurement",
    "pooled",
    "tiers_fingerprint",
]

#: reviewed items a provider needs before the reviewers' answers alone decide its route (with a
#: bake-off beside them, they count from the first): a handful of answers is mostly chance
REVIEW_MIN_ITEMS = 20

#: version 1 (see orchestrator.store.migrations: append steps, never edit one that shipped)
_V1 = """
CREATE TABLE IF NOT EXISTS provider_measurements (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    skill TEXT NOT NULL,          -- name@version of the step's skill (the first tier)
    fingerprint TEXT NOT NULL,    -- tiers_fingerprint: the small tiers' artifacts measured
    provider TEXT NOT NULL,       -- the provider's name in the gateway config
    model TEXT NOT NULL,
    verdict TEXT NOT NULL,        -- pays | unproven | worse (orchestrator.accounting.escalation_value)
    margin REAL NOT NULL,
    items INTEGER NOT NULL,       -- unsure items measured
    small_correct INTEGER NOT NULL,
    provider_correct INTEGER NOT NULL,
    provider_only INTEGER NOT NULL,
    small_only INTEGER NOT NULL,
    failures INTEGER NOT NULL,    -- items the provider did not answer
    calls INTEGER NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cost_usd REAL NOT NULL,
    latency_p50_s REAL,
    latency_p95_s REAL,
    source TEXT NOT NULL,         -- bakeoff:<csv file name>
    detail TEXT NOT NULL,         -- JSON: tiers, thresholds, the small model's side, labels left out
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS provider_measurements_skill ON provider_measurements (skill, fingerprint);
"""
_SCHEMA = Schema("provider_measurements", [_V1])

_COLUMNS = (
    "skill, fingerprint, provider, model, verdict, margin, items, small_correct, "
    "provider_correct, provider_only, small_only, failures, calls, prompt_tokens, "
    "completion_tokens, cost_usd, latency_p50_s, latency_p95_s, source, detail, created_at"
)


def tiers_fingerprint(tiers: Sequence[tuple[str, str | None]]) -> str:
    """A short digest of the small tiers, in cascade order: ``(name@version, artifacts
    fingerprint)`` each (``registry.build_record.artifacts_fingerprint``; None for a skill
    defined in code, without artifacts)."""
    digest = hashlib.sha256()
    for key, fingerprint in tiers:
        digest.update(f"{key}:{fingerprint or 'code'}\n".encode())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class ProviderMeasurement:
    """One provider measured against the small tiers on their unsure items."""

    skill: str
    fingerprint: str
    provider: str
    model: str
    score: PairedScore
    verdict: str
    margin: float
    failures: int = 0
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    latency_p50_s: float | None = None
    latency_p95_s: float | None = None
    source: str = "bakeoff"
    #: what else the report says: tiers, thresholds, the small model's latency, labels left out
    detail: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (the dashboard's rows): the score's counts and accuracies inline."""
        data = asdict(self)
        score = data.pop("score")
        return {
            **data,
            **score,
            "small_accuracy": round(self.score.small_accuracy, 4),
            "provider_accuracy": round(self.score.provider_accuracy, 4),
            "gain": round(self.score.gain, 4),
            "p_value": round(self.score.p_value, 6),
        }


class MeasurementStore:
    """Append-only provider measurements (thread-safe; one connection behind a lock)."""

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = db_location(path)
        self._db = open_db(self.path, _SCHEMA)

    def add(self, measurement: ProviderMeasurement) -> ProviderMeasurement:
        """Store one measurement; returns it with its id and time."""
        now = measurement.created_at or time.time()
        m, s = measurement, measurement.score
        row = (
            m.skill, m.fingerprint, m.provider, m.model, m.verdict, m.margin, s.items,
            s.small_correct, s.provider_correct, s.provider_only, s.small_only, m.failures,
            m.calls, m.prompt_tokens, m.completion_tokens, m.cost_usd, m.latency_p50_s,
            m.latency_p95_s, m.source, json.dumps(m.detail, sort_keys=True, default=str), now,
        )  # fmt: skip
        placeholders = ", ".join("?" * len(row))
        rows = self._db.execute(
            f"INSERT INTO provider_measurements ({_COLUMNS}) VALUES ({placeholders}) RETURNING id",
            row,
        )
        return replace(measurement, id=int(rows[0][0]), created_at=now)

    def latest(self, skill: str, fingerprint: str) -> dict[str, ProviderMeasurement]:
        """The newest measurement of each provider for these small tiers (provider -> row)."""
        rows = self._db.execute(
            f"SELECT id, {_COLUMNS} FROM provider_measurements "
            "WHERE skill = ? AND fingerprint = ? ORDER BY id",
            (skill, fingerprint),
        )
        return {m.provider: m for m in map(_from_row, rows)}  # later rows win

    def recent(self, limit: int = 100, skill: str | None = None) -> list[ProviderMeasurement]:
        """The newest measurements, newest first (of one skill ``name`` or ``name@version``)."""
        where, params = ("1 = 1", []) if skill is None else skill_filter(skill)
        rows = self._db.execute(
            f"SELECT id, {_COLUMNS} FROM provider_measurements WHERE {where} "
            "ORDER BY id DESC LIMIT ?",
            [*params, limit],
        )
        return [_from_row(r) for r in rows]

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> MeasurementStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def pooled(
    measured: ProviderMeasurement | None, reviewed: ProviderMeasurement | None
) -> ProviderMeasurement | None:
    """One provider's value from both sources of paired answers on the same small tiers and model:
    the newest bake-off (``measured``) and the reviewers' answers (``reviewed``, source
    ``review``, :meth:`orchestrator.review.queue.ReviewQueue.measured`).

    Both present: their counts pooled, the verdict taken again at the bake-off's margin. Reviews
    alone: they count from :data:`REVIEW_MIN_ITEMS` answers on (None before: unmeasured)."""
    if reviewed is None:
        return measured
    if measured is None:
        return reviewed if reviewed.score.items >= REVIEW_MIN_ITEMS else None
    score = measured.score + reviewed.score
    return replace(
        measured,
        score=score,
        verdict=verdict(score, measured.margin),
        source=f"{measured.source} + review",
        detail={**measured.detail, "reviewed_items": reviewed.score.items},
    )


def _from_row(row: Sequence[Any]) -> ProviderMeasurement:
    (ident, skill, fingerprint, provider, model, verdict, margin, items, small_correct,
     provider_correct, provider_only, small_only, failures, calls, prompt_tokens,
     completion_tokens, cost_usd, p50, p95, source, detail, created_at) = row  # fmt: skip
    score = PairedScore(items, small_correct, provider_correct, provider_only, small_only)
    return ProviderMeasurement(
        skill=skill,
        fingerprint=fingerprint,
        provider=provider,
        model=model,
        score=score,
        verdict=verdict,
        margin=float(margin),
        failures=failures,
        calls=calls,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        cost_usd=float(cost_usd),
        latency_p50_s=p50,
        latency_p95_s=p95,
        source=source,
        detail=json.loads(detail),
        created_at=float(created_at),
        id=int(ident),
    )
