"""The turn graph with the cascade on CLINC150 test: what stays small, what escalates, at what accuracy.

    .venv/bin/python bench/cascade.py [--threshold T] [--items-per-call 20]

Two designs side by side in one run, each on all 5,500 test turns:

- ``tier1``: turn_intent alone, at its own calibrated threshold;
- ``tier1+minilm`` (the graph as shipped): turn_intent, then turn_intent_minilm on what it is
  unsure of, at the two thresholds calibrated together
  (``orchestrator skills calibrate turn_intent_minilm --after turn_intent``).

The big model is played by an ORACLE: a stub OpenAI-compatible server on loopback that answers
every escalated turn with its CLINC150 gold label. It measures the cascade's routing (how many
items escalate, how accurate the kept ones are, how many big-model calls), not a real model's
quality. Thresholds come from the manifests, calibrated on CLINC150 val (never on test);
``--threshold`` sets one number for every tier instead.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

os.environ.setdefault("ORCHESTRATOR_LOG_LEVEL", "WARNING")

from orchestrator import GraphSpec, LocalExecutor, Registry, Runtime
from orchestrator.config import Settings
from orchestrator.llm import LLMGateway, Provider
from orchestrator.telemetry import configure_logging
from orchestrator.testing import StubLLMServer
from skills.data import OOS_INTENT, clinc150_eval

# Found from this file, so the module imports from any working directory (bench/run_all.py).
TURN_GRAPH = Path(__file__).resolve().parent.parent / "graphs" / "outbound_call_turn.yaml"


def turn_graph(
    threshold: float | None, items_per_call: int, *, chain: bool = True, **escalation: Any
) -> GraphSpec:
    """graphs/outbound_call_turn.yaml with answered_by exposed and the intent step's policy set.

    ``threshold`` None keeps ``calibrated``; ``chain`` False drops the MiniLM tier; ``escalation``
    adds other keys of the intent step's policy (``max_concurrency``, ...).
    """
    with TURN_GRAPH.open(encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    for step in data["steps"]:
        if step["id"] == "intent":
            policy = step["escalation"]
            if threshold is not None:
                policy["threshold"] = threshold
            if not chain:
                policy.pop("chain", None)
            policy.update(items_per_call=items_per_call, **escalation)
    data["outputs"]["answered_by"] = "intent.answered_by"
    return GraphSpec.from_dict(data)


def measure(
    rt: Runtime, spec: GraphSpec, turns: list[tuple[str, str]], items_per_call: int
) -> dict[str, Any]:
    """Run every turn through ``spec`` once; the routing and accuracy figures."""
    items = [{"id": n, "utterance": t, "label": lab} for n, (t, lab) in enumerate(turns)]
    started = time.perf_counter()
    result = rt.run(spec, items)
    wall = time.perf_counter() - started
    oos = [lab == OOS_INTENT for _, lab in turns]
    escalated = [r.escalate for r in result.results]
    step = next(s for s in rt.compile(spec).resolved.steps if s.id == "intent")
    return {
        "thresholds": [round(step.threshold, 4), *(round(t, 4) for t in step.chain_thresholds)],
        "items": len(items),
        "kept": len(items) - sum(escalated),
        "kept_accuracy": round(result.kept_accuracy or 0.0, 4),
        "escalation_rate_all": round(sum(escalated) / len(items), 4),
        "escalation_rate_in_scope": round(
            sum(e for e, o in zip(escalated, oos, strict=True) if not o) / oos.count(False), 4
        ),
        "escalation_rate_oos": round(
            sum(e for e, o in zip(escalated, oos, strict=True) if o) / oos.count(True), 4
        ),
        "answered_by": dict(Counter(r.outputs["answered_by"] for r in result.results)),
        "llm_calls": result.ledger.llm_calls,
        "llm_calls_all_big_model": -(-len(items) // items_per_call),
        "final_accuracy_with_oracle": round(result.accuracy or 0.0, 4),
        "degraded": result.ledger.degraded,
        "wall_s": round(wall, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threshold", type=float, default=None)
    parser.add_argument("--items-per-call", type=int, default=20)
    args = parser.parse_args()
    configure_logging("console", "WARNING")
    registry = Registry.from_folder(Settings().skills_dir)
    turns = clinc150_eval("test")
    gold = {text: label for text, label in turns}

    def oracle(request: dict) -> dict:
        items = json.loads(request["messages"][-1]["content"].split("Items:\n", 1)[1])
        return {"answers": {str(i["index"]): {"intent": gold[i["text"]]} for i in items}}

    report: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "big_model": "ORACLE (stub server answering with CLINC150 gold labels)",
    }
    with StubLLMServer(default=oracle) as stub:
        gateway = LLMGateway([Provider(name="oracle", base_url=stub.base_url, model="oracle")])
        settings = Settings(escalate=True, executor="local")
        with Runtime(
            registry=registry, executor=LocalExecutor(), gateway=gateway, settings=settings
        ) as rt:
            for name, chain in (("tier1", False), ("tier1+minilm", True)):
                spec = turn_graph(args.threshold, args.items_per_call, chain=chain)
                first = {"id": 0, "utterance": turns[0][0], "label": turns[0][1]}
                rt.run(spec, [first])  # untimed: the skills load
                report[name] = measure(rt, spec, turns, args.items_per_call)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
