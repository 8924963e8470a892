"""What a job gives back: one :class:`ItemResult` per input item, in input order, and a summary."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from orchestrator.accounting.ledger import Ledger

__all__ = ["HeldForReview", "ItemError", "ItemResult", "JobResult"]


@dataclass(frozen=True, slots=True)
class ItemError:
    """Why one item has no outputs. ``code`` is stable (``invalid_item``, ``skill_failed``, ...)."""

    code: str
    message: str


@dataclass(frozen=True, slots=True)
class HeldForReview:
    """An item waiting for a person: the step that held it and its review ticket."""

    step: str
    #: the ticket in the review queue (None until the runtime filed it)
    ticket: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"status": "waiting", "step": self.step, "ticket": self.ticket}


@dataclass(frozen=True, slots=True)
class ItemResult:
    """The graph's outputs for one item, or the error that item hit (never both)."""

    id: Any
    outputs: dict[str, Any] | None = None
    escalate: bool = False
    error: ItemError | None = None
    #: escalated, but the big model could not answer: the small model's answer stands
    degraded: bool = False
    #: held for human review: outputs of the steps after the holding step are still None
    review: HeldForReview | None = None
    #: unsure, yet not escalated although the job escalates: why (``provider_measured_worse``)
    escalation_held: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        """The JSON line written for this item: ``id`` plus the outputs, or ``id`` plus ``error``."""
        if self.error is not None:
            return {
                "id": self.id,
                "error": {"code": self.error.code, "message": self.error.message},
            }
        line = {"id": self.id, **(self.outputs or {}), "escalate": self.escalate}
        if self.degraded:
            line["degraded"] = True
        if self.escalation_held is not None:
            line["escalation_held"] = self.escalation_held
        if self.review is not None:
            line["review"] = self.review.to_dict()
        return line


@dataclass
class JobResult:
    """A finished job: every item's result and the ledger."""

    job_id: str
    graph: str
    results: list[ItemResult]
    ledger: Ledger
    accuracy: float | None = None
    labelled: int = 0
    kept_accuracy: float | None = None
    startup_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """The one-line JSON summary the CLI prints with ``--json``."""
        ledger = self.ledger
        return {
            "job_id": self.job_id,
            "graph": self.graph,
            "items": ledger.items,
            "succeeded": ledger.succeeded,
            "failed": ledger.failed,
            "items_per_s": round(ledger.items_per_s, 1),
            "wall_s": round(ledger.wall_s, 3),
            "startup_s": round(self.startup_s, 3),
            "escalated": ledger.escalated,
            "escalation_rate": round(ledger.escalation_rate, 4),
            "degraded": ledger.degraded,
            "held_for_review": ledger.held_for_review,
            # unsure items kept with the small answer: every provider measured worse on them
            "escalation_held": ledger.answered.get("held_back", 0),
            "llm_calls": ledger.llm_calls,
            "llm_tokens": ledger.llm_prompt_tokens + ledger.llm_completion_tokens,
            "llm_cost_usd": round(ledger.llm_cost_usd, 6),
            "accuracy": round(self.accuracy, 4) if self.accuracy is not None else None,
            "kept_accuracy": _round(self.kept_accuracy),
            "labelled": self.labelled,
            **self.extra,
        }


def _round(value: float | None) -> float | None:
    return round(value, 4) if value is not None else None
