"""A wiring as a graph spec: steps in planning order, escalation for calibrated tiers, outputs named.

What the job returns: every planned step's deliverables (a step pulled in to feed another still
says what it found: the intent behind an action), the notes of the steps that make what the task
asked for (an action's reason), and the confidence of each step that escalates, named after its
answer (``intent_confidence``).
"""

from __future__ import annotations

import graphlib
from collections.abc import Mapping, Sequence
from typing import Any

from orchestrator.graph.meanings import skill_output_meanings
from orchestrator.graph.spec import GraphSpec, InputField
from orchestrator.planning.wiring import Wiring
from orchestrator.ports import STEP_EXTRAS

__all__ = ["output_names", "plan_spec"]


def plan_spec(
    wiring: Wiring,
    inputs: Mapping[str, InputField],
    returns: Sequence[str],
    task: str,
    name: str,
) -> GraphSpec:
    """The graph spec of a wiring; ``returns`` are the deliverable ids the task asked for."""
    steps: list[dict[str, Any]] = []
    sources: list[str] = []
    asked = {r.partition(".")[0] for r in returns} | set(returns)
    for step in _dependency_order(wiring):
        producer = wiring.steps[step]
        entry: dict[str, Any] = {
            "id": step,
            "skill": producer.name,
            "inputs": dict(wiring.bindings.get(step, {})),
        }
        if producer.calibrated:
            entry["escalation"] = {
                "threshold": "calibrated",
                "chain": [v.name for v in producer.chain],
            }
        steps.append(entry)
        meanings = skill_output_meanings(producer.skill)
        makes_asked = any(m.name in asked or f"{step}.{f}" in asked for f, m in meanings.items())
        for field, meaning in meanings.items():
            if field in STEP_EXTRAS:
                continue
            if meaning.kind != "note" or makes_asked:
                sources.append(f"{step}.{field}")
        if producer.calibrated:
            sources.append(f"{step}.confidence")
    data = {
        "name": name,
        "description": task[:500],
        "inputs": {
            n: f.model_dump(exclude_defaults=True) or {"type": f.type} for n, f in inputs.items()
        },
        "steps": steps,
        "outputs": output_names(sources),
    }
    return GraphSpec.from_dict(data, source="plan")


def _dependency_order(wiring: Wiring) -> list[str]:
    """Steps with their producers first (planning order among equals); a cycle keeps plan order
    and is reported by the validator, naming the steps."""
    graph = {
        step: {s.partition(".")[0] for s in wiring.bindings.get(step, {}).values()}
        & set(wiring.steps)
        for step in wiring.steps
    }
    try:
        return list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError:
        return list(wiring.steps)


def output_names(sources: Sequence[str]) -> dict[str, str]:
    """Name each output after its field (``turn_intent.intent`` → ``intent``), a confidence after
    the answer before it (``intent_confidence``), or after step and field when the short name is
    taken (``opt_out_confidence``)."""
    names: dict[str, str] = {}
    last_field: dict[str, str] = {}
    for source in dict.fromkeys(sources):  # keep order, drop repeats
        step, _, field = source.partition(".")
        if field in STEP_EXTRAS or field in {"id"}:
            short = f"{last_field[step]}_{field}" if step in last_field else ""
        else:
            short = field
            last_field.setdefault(step, field)
        names[short if short and short not in names else f"{step}_{field}"] = source
    return names
