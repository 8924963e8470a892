"""The naive baseline: a hand-written LangGraph over the turn skills, invoked once per item.

This is how someone would wire the outbound-call turn without the runtime: one LangGraph node per
skill (turn_intent and opt_out in parallel from the start, next_action joining them), each node
calling its skill's ``predict`` in-process on a batch of one, and ``graph.invoke`` once per item.
No Ray, no chunking, no escalation. ``bench/run_all.py`` measures it next to the runtime's batch
path; it is a module, not a script.
"""

from __future__ import annotations

import statistics
import time
from typing import Any, TypedDict

SKILLS = ("turn_intent@prod", "opt_out@prod", "next_action@prod")


class TurnState(TypedDict, total=False):
    """One turn: the utterance in, each node's answers out."""

    utterance: str
    intent: str
    intent_confidence: float
    opted_out: bool
    action: str
    reason: str


def load_skills(registry: Any) -> dict[str, Any]:
    """The turn graph's skills, set up in this process (name -> skill instance)."""
    found = {}
    for ref in SKILLS:
        instance = registry.resolve(ref).create()
        instance.ensure_setup()
        found[ref.split("@")[0]] = instance
    return found


def build_graph(skills: dict[str, Any]) -> Any:
    """The compiled StateGraph: intent and opt_out from START, action after both, then END."""
    from langgraph.graph import END, START, StateGraph

    def intent(state: TurnState) -> dict[str, Any]:
        preds = skills["turn_intent"].predict({"text": [state["utterance"]]})
        return {
            "intent": str(preds.outputs["intent"][0]),
            "intent_confidence": float(preds.confidence[0]),
        }

    def opt_out(state: TurnState) -> dict[str, Any]:
        preds = skills["opt_out"].predict({"text": [state["utterance"]]})
        return {"opted_out": bool(preds.outputs["opted_out"][0])}

    def action(state: TurnState) -> dict[str, Any]:
        preds = skills["next_action"].predict(
            {
                "intent": [state["intent"]],
                "intent_confidence": [state["intent_confidence"]],
                "opted_out": [state["opted_out"]],
            }
        )
        return {"action": preds.outputs["action"][0], "reason": preds.outputs["reason"][0]}

    builder = StateGraph(TurnState)
    builder.add_node("intent", intent)
    builder.add_node("opt_out", opt_out)
    builder.add_node("action", action)
    builder.add_edge(START, "intent")
    builder.add_edge(START, "opt_out")
    builder.add_edge(["intent", "opt_out"], "action")
    builder.add_edge("action", END)
    return builder.compile()


def run_items(graph: Any, texts: list[str]) -> list[dict[str, Any]]:
    """``graph.invoke`` once per utterance, in order."""
    return [graph.invoke({"utterance": text}) for text in texts]


def measure(registry: Any, texts: list[str], labels: list[str], repeat: int) -> dict[str, Any]:
    """Items/s of the per-item LangGraph over ``texts`` (median of ``repeat`` runs) and accuracy.

    One untimed warm-up item first: LangGraph and ONNX Runtime do one-time work on the first call.
    """
    graph = build_graph(load_skills(registry))
    run_items(graph, texts[:1])
    rates: list[float] = []
    outputs: list[dict[str, Any]] = []
    for _ in range(repeat):
        started = time.perf_counter()
        outputs = run_items(graph, texts)
        rates.append(len(texts) / (time.perf_counter() - started))
    correct = sum(out["intent"] == label for out, label in zip(outputs, labels, strict=True))
    return {
        "items": len(texts),
        "median": statistics.median(rates),
        "runs": [round(r, 1) for r in rates],
        "accuracy": round(correct / len(texts), 4),
    }
