"""The job ledger: what a job cost, in small-model work and in big-model calls.

Every job result carries one. The big-model fields (calls, tokens, cost) are filled by the LLM
gateway once escalation is configured; they are always present, zero when nothing was escalated,
so dashboards and reports never have to guess.

Next to them, every ledger carries the **all-big-model baseline** (``baseline_*``): what the same
items would have cost with the big model doing every model step's work, counted chunk by chunk by
:mod:`orchestrator.graph.baseline` (``baseline_method: "counted"``; calls, estimated tokens, and the cost
at the reference price named in ``baseline_price_model``, see :mod:`orchestrator.config.prices`).
Compare ``llm_*`` with ``baseline_*`` for what the runtime saved.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, fields
from typing import Any

__all__ = ["Ledger", "StepStats"]


@dataclass(frozen=True, slots=True)
class StepStats:
    """What one step did to one chunk: how many items it sent to which skill, and how long it took."""

    step: str
    skill: str
    items: int
    calls: int
    escalated: int
    seconds: float


@dataclass
class Ledger:
    """Per-job accounting, accumulated chunk by chunk."""

    job_id: str
    graph: str
    items: int = 0
    succeeded: int = 0
    failed: int = 0
    escalated: int = 0
    #: escalated items the big model could not answer (they keep the small model's answer)
    degraded: int = 0
    #: items waiting for a person (``orchestrator review``); their later steps run once answered
    held_for_review: int = 0
    chunks: int = 0
    wall_s: float = 0.0
    #: skill key (``name@version``) -> batched calls sent to its workers
    skill_calls: Counter[str] = field(default_factory=Counter)
    #: skill key -> items it predicted
    skill_items: Counter[str] = field(default_factory=Counter)
    #: skill key -> items under the step's threshold
    skill_escalated: Counter[str] = field(default_factory=Counter)
    #: skill key -> seconds spent waiting for its predictions (summed over parallel steps)
    skill_seconds: dict[str, float] = field(default_factory=dict)
    llm_calls: int = 0
    llm_prompt_tokens: int = 0
    llm_completion_tokens: int = 0
    llm_cost_usd: float = 0.0
    #: where items' final answers came from: ``small_model`` (confident), ``flagged`` (unsure,
    #: no big model asked), ``chain`` (a cheaper chain skill), ``big_model``, ``degraded``
    answered: Counter[str] = field(default_factory=Counter)
    #: the all-big-model baseline: one call per item per model step (see orchestrator.graph.baseline)
    baseline_llm_calls: int = 0
    baseline_prompt_tokens: int = 0
    baseline_completion_tokens: int = 0
    #: baseline tokens at the price of ``baseline_price_model``
    baseline_cost_usd: float = 0.0
    #: how the baseline was obtained: ``counted`` (calls counted, tokens ~ characters / 4)
    baseline_method: str = "counted"
    #: the reference price of ``baseline_cost_usd`` (orchestrator.config.prices)
    baseline_price_model: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.answered, Counter):  # read back from JSON as a plain dict
            self.answered = Counter(self.answered)

    def add_steps(self, stats: list[StepStats]) -> None:
        """Fold one chunk's step statistics in."""
        for s in stats:
            self.skill_calls[s.skill] += s.calls
            self.skill_items[s.skill] += s.items
            self.skill_escalated[s.skill] += s.escalated
            self.skill_seconds[s.skill] = self.skill_seconds.get(s.skill, 0.0) + s.seconds

    def merge(self, other: Ledger) -> None:
        """Add ``other`` in (numbers and per-key maps add up; names and notes stay this one's
        unless empty): one ledger for work done as several jobs. Set ``wall_s`` afterwards."""
        for f in fields(self):
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            if isinstance(mine, dict):
                for key, value in theirs.items():
                    mine[key] = mine.get(key, 0) + value
            elif isinstance(mine, int | float) and not isinstance(mine, bool):
                setattr(self, f.name, mine + theirs)
            elif not mine:
                setattr(self, f.name, theirs)

    @property
    def items_per_s(self) -> float:
        return self.items / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def escalation_rate(self) -> float:
        return self.escalated / self.succeeded if self.succeeded else 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (counters as plain dicts, floats rounded for reading)."""
        return {
            "job_id": self.job_id,
            "graph": self.graph,
            "items": self.items,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "escalated": self.escalated,
            "escalation_rate": round(self.escalation_rate, 4),
            "degraded": self.degraded,
            "held_for_review": self.held_for_review,
            "chunks": self.chunks,
            "wall_s": round(self.wall_s, 4),
            "items_per_s": round(self.items_per_s, 1),
            "skill_calls": dict(self.skill_calls),
            "skill_items": dict(self.skill_items),
            "skill_escalated": dict(self.skill_escalated),
            "skill_seconds": {k: round(v, 4) for k, v in self.skill_seconds.items()},
            "llm_calls": self.llm_calls,
            "llm_prompt_tokens": self.llm_prompt_tokens,
            "llm_completion_tokens": self.llm_completion_tokens,
            "llm_cost_usd": round(self.llm_cost_usd, 6),
            "answered": dict(self.answered),
            "baseline_llm_calls": self.baseline_llm_calls,
            "baseline_prompt_tokens": self.baseline_prompt_tokens,
            "baseline_completion_tokens": self.baseline_completion_tokens,
            "baseline_cost_usd": round(self.baseline_cost_usd, 6),
            "baseline_method": self.baseline_method,
            "baseline_price_model": self.baseline_price_model,
        }
