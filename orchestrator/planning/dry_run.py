"""The dry run: a plan runs on a few sample items, in this process, before anyone relies on it.

A plan that validates can still fail every item (a skill that rejects what it is fed). So before a
plan is cached or written, it runs on samples: the job's own items, a sample file
(``orchestrator plan --sample FILE``), or items made up from the field types. Skills run on the
local executor; unsure items are only flagged (the dry run never calls a big model).

What comes back for the planner is an error code and a step per failure, never item contents:
the planner's prompts must not carry items (transcripts are untrusted and may hold PII).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from orchestrator.accounting.ledger import Ledger
from orchestrator.executors.local import LocalExecutor
from orchestrator.graph.aggregate import Scorecard, collect_chunk
from orchestrator.graph.compiler import CompiledGraph, RunContext
from orchestrator.graph.intake import prepare_chunk
from orchestrator.graph.spec import InputField
from orchestrator.store.item import Item

__all__ = ["DryRun", "dry_run", "synthesize"]

#: Stand-in turns for text fields when the job gave no items: varied, and holding no PII.
_TEXTS = (
    "hello, who is this?",
    "what is my account balance",
    "please stop calling me",
    "sure, tell me more about the offer",
    "i am busy right now, call me back tomorrow",
    "how did you get my number",
)
_VALUES: dict[str, Any] = {"int": 1, "float": 0.5, "bool": False}
_STEP = re.compile(r"step '([a-z0-9_]+)'")


@dataclass(frozen=True)
class DryRun:
    """How a plan fared on samples: counts, and one ``code at step`` line per kind of failure."""

    items: int
    failed: int
    #: e.g. ``["skill_failed at step 'next_action' (6 items)"]``: codes and steps only
    failures: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.items > 0 and self.failed == 0


def synthesize(fields: Mapping[str, InputField], count: int = len(_TEXTS)) -> list[dict[str, Any]]:
    """Sample items made up from the field types (text: stand-in turns; others: a plain value)."""
    items = []
    for i in range(count):
        item: dict[str, Any] = {"id": f"sample-{i}"}
        for name, field in fields.items():
            item[name] = _TEXTS[i % len(_TEXTS)] if field.type == "str" else _VALUES[field.type]
        items.append(item)
    return items


async def dry_run(graph: CompiledGraph, samples: Sequence[Mapping[str, Any]]) -> DryRun:
    """Run a compiled plan on ``samples`` with the local executor; what failed, by code and step."""
    resolved = graph.resolved
    raw = [Item(index=i, value=dict(s)) for i, s in enumerate(samples)]
    for item in raw:
        if isinstance(item.value, dict):
            item.value.setdefault("id", f"sample-{item.index}")
    chunk = prepare_chunk(raw, resolved.item_model)
    executor = LocalExecutor()
    await executor.start(resolved.skills)
    try:
        state: dict[str, Any] = {"columns": {}, "errors": {}, "stats": []}
        if chunk.rows:
            start = {"size": len(chunk.rows), "columns": chunk.columns, "errors": {}, "stats": []}
            config = {"recursion_limit": len(resolved.steps) + 10}
            context = RunContext(executor=executor)
            state = await graph.langgraph.ainvoke(start, config, context=context)
    finally:
        await executor.close()
    ledger = Ledger(job_id="dry-run", graph=graph.name)
    results = collect_chunk(resolved, chunk, state, ledger, Scorecard(None))
    kinds: Counter[str] = Counter()
    for position, result in enumerate(results):
        # an item the graph's input model rejects is the item's fault, not the plan's
        if result.error is not None and position not in chunk.rejected:
            step = _STEP.search(result.error.message)
            where = f" at step {step.group(1)!r}" if step else ""
            kinds[f"{result.error.code}{where}"] += 1
    failures = tuple(f"{kind} ({n} item{'s' * (n != 1)})" for kind, n in sorted(kinds.items()))
    return DryRun(items=len(chunk.rows), failed=sum(kinds.values()), failures=failures)
