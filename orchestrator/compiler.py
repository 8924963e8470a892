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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from orchestrator.batching import predict_sliced
from orchestrator.errors import SkillRunError
from orchestrator.executors.base import Executor
from orchestrator.registry import Registry
from orchestrator.spec import GraphSpec
from orchestrator.state import ChunkState, StepStats
from orchestrator.validation import ResolvedGraph, ResolvedStep, resolve_graph

__all__ = ["CompiledGraph", "RunContext", "compile_graph"]


@dataclass(frozen=True)
class RunContext:
    """What a compiled graph needs at run time (LangGraph runtime context)."""

    executor: Executor


@dataclass(frozen=True)
class CompiledGraph:
    """A validated graph and its compiled LangGraph; run it with :mod:`orchestrator.runtime`."""

    resolved: ResolvedGraph
    langgraph: Any  # langgraph CompiledStateGraph

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
        builder.add_node(step.id, _step_node(step))
        if step.depends_on:
            # A list edge is a join: the step runs once, after all of its sources finished.
            builder.add_edge(list(step.depends_on), step.id)
            has_dependents.update(step.depends_on)
        else:
            builder.add_edge(START, step.id)
    for step in resolved.steps:
        if step.id not in has_dependents:
            builder.add_edge(step.id, END)
    return CompiledGraph(resolved=resolved, langgraph=builder.compile(name=spec.name))


def _step_node(step: ResolvedStep) -> Any:
    """The LangGraph node for one step: gather bound columns, predict live rows, scatter back."""
    from langgraph.runtime import Runtime

    bindings = [(name, binding.key) for name, binding in step.spec.inputs.items()]
    out_fields = list(step.skill.skill_cls.Output.model_fields)
    threshold = step.spec.threshold
    where = f"step {step.id!r}"

    async def run_step(state: ChunkState, runtime: Runtime[RunContext]) -> dict[str, Any]:
        size, columns, errors = state["size"], state["columns"], state.get("errors") or {}
        live = [i for i in range(size) if i not in errors] if errors else None
        batch = {name: _take(columns[key], live) for name, key in bindings}
        count = size if live is None else len(live)
        started = time.perf_counter()
        preds, calls = None, 0
        if count:
            executor = runtime.context.executor
            preds, calls = await predict_sliced(executor, step.skill, batch, count, where)
        seconds = time.perf_counter() - started
        update, new_errors, escalated = _scatter(step, preds, out_fields, threshold, size, live)
        stats = StepStats(step.id, step.skill.key, count, calls, escalated, seconds)
        return {"columns": update, "errors": new_errors, "stats": [stats]}

    run_step.__name__ = f"step_{step.id}"
    return run_step


def _take(column: Sequence[Any], rows: list[int] | None) -> Sequence[Any]:
    if rows is None:
        return column
    return [column[i] for i in rows]


def _scatter(
    step: ResolvedStep,
    preds: Any,
    out_fields: list[str],
    threshold: float,
    size: int,
    live: list[int] | None,
) -> tuple[dict[str, list[Any]], dict[int, str], int]:
    """Full-length columns for the step's outputs (None where a row was skipped or failed)."""
    import numpy as np

    rows = list(range(size)) if live is None else live
    confidence = (
        np.asarray(preds.confidence, dtype=np.float64) if preds is not None else np.zeros(0)
    )
    item_errors = list(preds.errors) if preds is not None and preds.errors is not None else None
    escalate_live = confidence < threshold
    new_errors: dict[int, str] = {}
    if item_errors is not None:
        for j, message in enumerate(item_errors):
            if message is not None:
                new_errors[rows[j]] = f"step {step.id!r} ({step.skill.key}): {message}"
                escalate_live[j] = False
    prefix = f"{step.id}."
    if live is None and not new_errors:  # fast path: every row alive and fine
        update: dict[str, list[Any]] = {
            prefix + f: _as_list(preds.outputs[f]) if preds is not None else [] for f in out_fields
        }
        update[prefix + "confidence"] = confidence.tolist()
        update[prefix + "escalate"] = escalate_live.tolist()
        return update, new_errors, int(escalate_live.sum())
    update = {prefix + f: [None] * size for f in [*out_fields, "confidence", "escalate"]}
    if preds is None:
        return update, new_errors, 0
    live_columns = {f: _as_list(preds.outputs[f]) for f in out_fields}
    live_columns["confidence"] = confidence.tolist()
    live_columns["escalate"] = escalate_live.tolist()
    for j, row in enumerate(rows):
        if row in new_errors:
            continue
        for f, column in live_columns.items():
            update[prefix + f][row] = column[j]
    return update, new_errors, int(escalate_live.sum())


def _as_list(column: Any) -> list[Any]:
    if isinstance(column, list):
        return column
    tolist = getattr(column, "tolist", None)
    if tolist is not None:
        return list(tolist())
    try:
        return list(column)
    except TypeError as exc:
        raise SkillRunError(f"skill output column is not a sequence: {exc}") from exc
