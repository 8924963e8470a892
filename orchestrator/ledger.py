"""The job ledger: what a job cost, in small-model work and in big-model calls.

Every job result carries one. The big-model fields (calls, tokens, cost) are filled by the LLM
gateway once escalation is configured; they are always present, zero when nothing was escalated,
so dashboards and reports never have to guess.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from orchestrator.state import StepStats

__all__ = ["Ledger"]


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

    def add_steps(self, stats: list[StepStats]) -> None:
        """Fold one chunk's step statistics in."""
        for s in stats:
            self.skill_calls[s.skill] += s.calls
            self.skill_items[s.skill] += s.items
            self.skill_escalated[s.skill] += s.escalated
            self.skill_seconds[s.skill] = self.skill_seconds.get(s.skill, 0.0) + s.seconds

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
        }
