"""Compile a graph spec into a LangGraph ``StateGraph`` that runs one chunk of items as columns.

Build -> validate -> compile -> run, as four separate moments: :func:`compile_graph` validates the
spec against the registry (every problem named by step, before any worker starts), then wires one
LangGraph node per step. A step waits for exactly the steps it reads from, so independent steps run
in parallel. The executor is not part of the compiled graph: it comes in at run time through
LangGraph's runtime context, so one compiled graph runs on ``local`` or ``ray`` alike.

Example::

    graph = compile_graph(load_graph("graphs/outbound_call_turn.yaml"), registry)
    graph.resolved.skills  # the skill versions workers must host
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from orchestrator.accounting.ledger import StepStats
from orchestrator.executors.base import Executor
from orchestrator.executors.batching import predict_sliced
from orchestrator.graph.cascade import CascadeOutcome, Escalator, run_cascade
from orchestrator.graph.spec import GraphSpec
from orchestrator.graph.state import ChunkState
from orchestrator.graph.validation import ResolvedGraph, ResolvedStep, resolve_graph
from orchestrator.registry.registry import Registry

__all__ = ["CompiledGraph", "RunContext", "compile_graph", "step_nodes"]


@dataclass(frozen=True)
class RunContext:
    """What a compiled graph needs at run time (LangGraph runtime context)."""

    executor: Executor
    #: the job's line to the big model; None: unsure items are only flagged
    escalator: Escalator | None = None


@dataclass(frozen=True)
class CompiledGraph:
    """A validated graph and its compiled LangGraph; run it with :mod:`orchestrator.runtime.runtime`."""

    resolved: ResolvedGraph
    langgraph: Any  # langgraph CompiledStateGraph
    #: the StateGraph builder, for variants compiled with a checkpointer
    builder: Any = None

    def with_checkpointer(self, checkpointer: Any) -> Any:
        """The same graph compiled with ``checkpointer`` (state saved after every step)."""
        return self.builder.compile(checkpointer=checkpointer, name=self.name)

    @property
    def spec(self) -> GraphSpec:
        return self.resolved.spec

    @property
    def name(self) -> str:
        return self.resolved.spec.name


def compile_graph(spec: GraphSpec, registry: Registry) -> CompiledGraph:
    """Validate ``spec`` against ``registry`` and build its LangGraph. Starts no worker."""
    from langgraph.graph import END, START, StateGraph

    resolved = resolve_graph(spec, registry)
    builder = StateGraph(ChunkState, context_schema=RunContext)
    has_dependents: set[str] = set()
    for step in resolved.steps:
        builder.add_node(step.id, _step_node(step, spec.known_pii))
        if step.depends_on:
            # A list edge is a join: the step runs once, after all of its sources finished.
            builder.add_edge(list(step.depends_on), step.id)
            has_dependents.update(step.depends_on)
        else:
            builder.add_edge(START, step.id)
    for step in resolved.steps:
        if step.id not in has_dependents:
            builder.add_edge(step.id, END)
    return CompiledGraph(
        resolved=resolved, langgraph=builder.compile(name=spec.name), builder=builder
    )


def step_nodes(graph: CompiledGraph) -> dict[str, Any]:
    """Each step's node function (the one LangGraph runs), by step id: for the real-time path,
    which runs one item through the steps in-process without LangGraph's superstep loop."""
    known = graph.spec.known_pii
    return {step.id: _step_node(step, known) for step in graph.resolved.steps}


def _step_node(step: ResolvedStep, known_pii: Mapping[str, str]) -> Any:
    """The LangGraph node for one step: gather bound columns, predict live rows, run the cascade
    on the unsure ones, scatter back to full length."""
    from langgraph.runtime import Runtime

    # what the items know about their customers, for the PII guard (only a cascade sends text out)
    known_fields = known_pii if step.spec.escalation is not None else {}

    bindings = [(name, binding.key) for name, binding in step.spec.inputs.items()]
    where = f"step {step.id!r}"

    async def run_step(state: ChunkState, runtime: Runtime[RunContext]) -> dict[str, Any]:
        size, columns = state["size"], state["columns"]
        live = _live_rows(step, size, state.get("errors") or {}, state.get("held") or {})
        batch = {name: _take(columns[key], live) for name, key in bindings}
        count = size if live is None else len(live)
        started = time.perf_counter()
        outcome, item_errors, calls, held = None, None, 0, {}
        if count:
            context = runtime.context
            preds, calls = await predict_sliced(context.executor, step.skill, batch, count, where)
            item_errors = preds.errors
            if step.review_below > 0:
                held = _held_rows(step, preds, live)
            known = _known_values(columns, known_fields, live) if known_fields else None
            outcome = await run_cascade(
                step, batch, preds, context.executor, context.escalator, known=known
            )
        seconds = time.perf_counter() - started
        update, new_errors = _scatter(step, outcome, item_errors, size, live)
        escalated = int(outcome.escalate.sum()) if outcome is not None else 0
        chain = outcome.chain_stats if outcome is not None else []
        seconds -= sum(s.seconds for s in chain)  # each chain skill's time is its own
        stats = StepStats(step.id, step.skill.key, count, calls, escalated, seconds)
        return {"columns": update, "errors": new_errors, "held": held, "stats": [stats, *chain]}

    run_step.__name__ = f"step_{step.id}"
    return run_step


def _live_rows(
    step: ResolvedStep, size: int, errors: dict[int, str], held: dict[int, str]
) -> list[int] | None:
    """Rows the step predicts: not failed, and not held for review by a step it reads from
    (None: every row, the common case, without building a list)."""
    if not errors and not held:
        return None
    waiting = {row for row, by in held.items() if by in step.ancestors}
    if not errors and not waiting:
        return None
    return [i for i in range(size) if i not in errors and i not in waiting]


def _held_rows(step: ResolvedStep, preds: Any, live: list[int] | None) -> dict[int, str]:
    """Rows the skill answered with less confidence than ``review_below``: held for a person."""
    confidence = np.asarray(preds.confidence, dtype=np.float64)
    failed = preds.errors or [None] * len(confidence)
    rows = range(len(confidence)) if live is None else live
    return {
        row: step.id
        for j, row in enumerate(rows)
        if confidence[j] < step.review_below and failed[j] is None
    }


def _known_values(
    columns: Mapping[str, Sequence[Any]], fields: Mapping[str, str], live: list[int] | None
) -> list[Any]:
    """One :class:`~orchestrator.llm.pii.KnownValues` per live row, from the ``known_pii`` inputs."""
    from orchestrator.llm.pii import KnownValues

    picked = {name: _take(columns[f"input.{name}"], live) for name in fields}
    rows = len(next(iter(picked.values())))
    return [
        KnownValues.from_record({name: values[j] for name, values in picked.items()}, fields)
        for j in range(rows)
    ]


def _take(column: Sequence[Any], rows: list[int] | None) -> Sequence[Any]:
    if rows is None:
        return column
    return [column[i] for i in rows]


def _scatter(
    step: ResolvedStep,
    outcome: CascadeOutcome | None,
    item_errors: Sequence[str | None] | None,
    size: int,
    live: list[int] | None,
) -> tuple[dict[str, list[Any]], dict[int, str]]:
    """Full-length columns for the step (None where a row was skipped or failed), and new errors."""
    prefix = f"{step.id}."
    names = [*step.skill.skill_cls.Output.model_fields, *_EXTRAS]
    if outcome is None:
        return {prefix + f: [None] * size for f in names}, {}
    live_columns: dict[str, list[Any]] = {
        **outcome.outputs,
        "confidence": outcome.confidence.tolist(),
        "escalate": outcome.escalate.tolist(),
        "answered_by": outcome.answered_by,
        "degraded": outcome.degraded,
        "escalation_held": outcome.escalation_held,
        "escalation": outcome.escalation,
    }
    rows = list(range(size)) if live is None else live
    new_errors = {
        rows[j]: f"step {step.id!r} ({step.skill.key}): {message}"
        for j, message in enumerate(item_errors or [])
        if message is not None
    }
    if live is None and not new_errors:  # fast path: every row alive and fine
        return {prefix + f: live_columns[f] for f in names}, new_errors
    update: dict[str, list[Any]] = {prefix + f: [None] * size for f in names}
    for j, row in enumerate(rows):
        if row in new_errors:
            continue
        for f in names:
            update[prefix + f][row] = live_columns[f][j]
    return update, new_errors


#: Columns every step adds next to its skill's outputs.
_EXTRAS = ("confidence", "escalate", "answered_by", "degraded", "escalation_held", "escalation")
