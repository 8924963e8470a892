"""Aggregate: turn one chunk's final graph state into per-item results and fold it into the ledger.

Pure functions over the state the reducers built; the executor never assembles results itself.
This is also the one place a chunk's all-big-model baseline is counted into the ledger
(:func:`orchestrator.graph.baseline.count_chunk`).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from orchestrator.accounting.ledger import Ledger
from orchestrator.accounting.result import HeldForReview, ItemError, ItemResult
from orchestrator.graph.baseline import count_chunk
from orchestrator.graph.intake import Chunk
from orchestrator.graph.spec import Evaluation
from orchestrator.graph.validation import ResolvedGraph

__all__ = ["Scorecard", "collect_chunk", "failed_chunk"]


class Scorecard:
    """Counts correct answers when items carry a gold label (``label``)."""

    def __init__(self, evaluation: Evaluation | None) -> None:
        self.evaluation = evaluation
        self.labelled = 0
        self.correct = 0
        self.kept = 0
        self.kept_correct = 0

    def add(self, result: ItemResult, label: Any) -> None:
        if self.evaluation is None or label is None or result.outputs is None:
            return
        right = int(result.outputs.get(self.evaluation.output) == label)
        self.labelled += 1
        self.correct += right
        if not result.escalate:  # answered by the small models alone
            self.kept += 1
            self.kept_correct += right

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.labelled if self.labelled else None

    @property
    def kept_accuracy(self) -> float | None:
        """Accuracy on the items no step escalated: what the small models get right alone."""
        return self.kept_correct / self.kept if self.kept else None


def collect_chunk(
    graph: ResolvedGraph, chunk: Chunk, state: dict[str, Any], ledger: Ledger, score: Scorecard
) -> list[ItemResult]:
    """Per-item results of one chunk, in input order, and the ledger updated."""
    columns, errors, held = state["columns"], state.get("errors") or {}, state.get("held") or {}
    outputs = [(name, binding.key) for name, binding in graph.spec.outputs.items()]
    escalate_keys = [f"{s.id}.escalate" for s in graph.steps if s.threshold > 0]
    degraded_keys = [f"{s.id}.degraded" for s in graph.steps if s.threshold > 0]
    # (a state saved before steps had this column lacks it)
    held_columns = [columns.get(f"{s.id}.escalation_held") for s in graph.steps if s.threshold > 0]
    graph_row = {position: row for row, position in enumerate(chunk.rows)}
    results: list[ItemResult] = []
    for position, item_id in enumerate(chunk.ids):
        row = graph_row.get(position)
        if row is None:
            result = ItemResult(item_id, error=chunk.rejected[position])
        elif row in errors:
            result = ItemResult(item_id, error=ItemError("skill_failed", errors[row]))
        else:
            values = {name: columns[key][row] for name, key in outputs}
            escalate = any(columns[key][row] for key in escalate_keys)
            degraded = any(columns[key][row] for key in degraded_keys)
            review = HeldForReview(held[row]) if row in held else None
            reason = next((c[row] for c in held_columns if c is not None and c[row]), None)
            result = ItemResult(
                item_id,
                outputs=values,
                escalate=escalate,
                degraded=degraded,
                review=review,
                escalation_held=reason,
            )
        results.append(result)
        score.add(result, chunk.labels[position])
    _count(ledger, results)
    _count_answered(graph, chunk, columns, results, ledger)
    count_chunk(graph, columns, len(chunk.rows), ledger)
    ledger.add_steps(state.get("stats") or [])
    ledger.chunks += 1
    return results


def failed_chunk(chunk: Chunk, error: ItemError, ledger: Ledger) -> list[ItemResult]:
    """Results for a chunk whose graph run failed as a whole: every item carries the error."""
    results = [
        ItemResult(item_id, error=chunk.rejected.get(position, error))
        for position, item_id in enumerate(chunk.ids)
    ]
    _count(ledger, results)
    ledger.chunks += 1
    return results


def _count(ledger: Ledger, results: list[ItemResult]) -> None:
    ledger.items += len(results)
    ok = sum(1 for r in results if r.ok)
    ledger.succeeded += ok
    ledger.failed += len(results) - ok
    ledger.escalated += sum(1 for r in results if r.escalate)
    ledger.degraded += sum(1 for r in results if r.degraded)
    ledger.held_for_review += sum(1 for r in results if r.review is not None)


def _count_answered(
    graph: ResolvedGraph,
    chunk: Chunk,
    columns: dict[str, Any],
    results: list[ItemResult],
    ledger: Ledger,
) -> None:
    """Where each answered item's final answer came from (``ledger.answered``)."""
    steps = [
        (f"{s.id}.escalate", f"{s.id}.answered_by", s.skill.key)
        for s in graph.steps
        if s.threshold > 0
    ]
    sources: Counter[str] = Counter()
    for row, position in enumerate(chunk.rows):
        result = results[position]
        if not result.ok:
            continue
        if result.review is not None:
            sources["review"] += 1
        elif not result.escalate:
            sources["small_model"] += 1
        elif result.degraded:
            sources["degraded"] += 1
        elif result.escalation_held is not None:  # measured not to pay: not sent
            sources["held_back"] += 1
        else:
            who = [(columns[by][row], key) for esc, by, key in steps if columns[esc][row]]
            if any(str(w).startswith("llm:") for w, _ in who):
                sources["big_model"] += 1
            elif any(w != key for w, key in who):
                sources["chain"] += 1
            else:
                sources["flagged"] += 1
    ledger.answered.update(sources)
