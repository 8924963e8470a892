"""Replies to the customers' questions: the campaign's FAQ, or the big model grounded in it.

The turn graph's ``faq`` step (the ``outbound_faq`` knowledge base, built from ``faq.csv`` and
calibrated on ``faq_questions.csv``) answers every turn whose action is ``answer_question``. On
the real-time path an unsure answer is only flagged (a call turn never waits for the big model);
after the calls, :func:`ground_replies` sends up to ``limit`` of those questions to the big model
the way the cascade would (:mod:`orchestrator.graph.grounding`): with each question's top-5 FAQ
passages, "answer only from these, cite the id, else say unknown", behind the PII guard. The
campaign report counts where every reply came from (:func:`reply_counts`).
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Sequence
from typing import Any

from orchestrator.accounting.ledger import Ledger
from orchestrator.errors import RunError
from orchestrator.graph.compiler import CompiledGraph
from orchestrator.graph.grounding import grounded_request
from orchestrator.llm.gateway import Budget
from orchestrator.llm.privacy import guarded_complete
from orchestrator.runtime.runtime import Runtime

__all__ = ["FAQ_STEP", "ITEMS_PER_CALL", "ground_replies", "reply_counts", "reply_source"]

#: the turn graph's step that answers questions from the FAQ
FAQ_STEP = "faq"
#: unsure questions per grounded call (the turn graph's escalation default)
ITEMS_PER_CALL = 10


def reply_source(outputs: dict[str, Any]) -> str | None:
    """Where a turn's reply comes from after the real-time path: ``kb`` (the FAQ was sure),
    ``unsure`` (flagged for the big model) or None (not a question)."""
    if outputs.get("action") != "answer_question":
        return None
    return "unsure" if outputs.get("reply_unsure") else "kb"


async def ground_replies(
    turns: Sequence[Any], runtime: Runtime, graph: CompiledGraph, ledger: Ledger, campaign_id: str
) -> int:
    """Grounded big-model replies for ``turns`` (each with ``utterance``, ``reply_candidates``;
    ``reply``, ``reply_id`` and ``reply_by`` are set on the answered ones, ``reply_by`` becomes
    ``failed`` on the others). Returns the calls made."""
    if not turns:
        return 0
    step = next(s for s in graph.resolved.steps if s.id == FAQ_STEP)
    complete = functools.partial(guarded_complete, runtime.gateway, policy=runtime.settings.privacy)
    budget = Budget(max_calls=2 * len(turns))  # a re-ask each at most
    calls = 0
    for start in range(0, len(turns), ITEMS_PER_CALL):
        group = list(turns[start : start + ITEMS_PER_CALL])
        batch = {
            "text": [t.utterance for t in group],
            "candidates": [t.reply_candidates for t in group],
        }
        request = grounded_request(step, batch, list(range(len(group))))
        assert request is not None  # the faq step is a knowledge base
        calls += 1
        try:
            answer = await complete(
                request.messages,
                schema=request.schema,
                budget=budget,
                purpose=f"escalate:{step.skill.key}",
                job_id=campaign_id,
                ledger=ledger,
            )
        except RunError:
            for turn in group:
                turn.reply_by = "failed"  # the FAQ's unsure answer is not said
            continue
        for i, outputs in request.answers(answer.parsed).items():
            turn = group[i]
            turn.reply, turn.reply_id = outputs["answer"], outputs["answer_id"]
            turn.reply_by = f"llm:{answer.provider}"
    return calls


def reply_counts(turns: Sequence[Any], grounded_calls: int) -> dict[str, Any]:
    """Replies by source: the knowledge base alone, the big model grounded in it (and how many of
    those said the FAQ does not hold the answer), unsure ones left over, failed; the calls."""
    sources = Counter(
        "big_model" if str(t.reply_by).startswith("llm:") else t.reply_by
        for t in turns
        if t.reply_by is not None
    )
    return {
        "questions": sum(sources.values()),
        "kb": sources["kb"],
        "big_model": sources["big_model"],
        "big_model_unknown": sum(
            1 for t in turns if str(t.reply_by).startswith("llm:") and t.reply_id == "unknown"
        ),
        "not_sent": sources["unsure"],
        "failed": sources["failed"],
        "grounded_calls": grounded_calls,
    }
