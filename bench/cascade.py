"""The turn graph with the cascade on CLINC150 test: what stays small, what escalates, at what accuracy.

    .venv/bin/python bench/cascade.py [--threshold T] [--items-per-call 20]

The big model is played by an ORACLE: a stub OpenAI-compatible server on loopback that answers
every escalated turn with its CLINC150 gold label. It measures the cascade's routing (how many
items escalate, how accurate the kept ones are, how many big-model calls), not a real model's
quality. The threshold defaults to the one calibrated on CLINC150 val and stored in turn_intent's
manifest (never chosen on test).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
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


def calibrated_threshold(registry: Registry) -> float | None:
    from orchestrator.calibration import stored_threshold

    return stored_threshold(registry.resolve("turn_intent"))


def turn_graph(threshold: float, items_per_call: int, **escalation: Any) -> GraphSpec:
    """graphs/outbound_call_turn.yaml with the intent step's threshold set, answered_by exposed.

    ``escalation`` adds other keys of the intent step's policy (``max_concurrency``, ...).
    """
    with TURN_GRAPH.open(encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    for step in data["steps"]:
        if step["id"] == "intent":
            step["escalation"] = {
                "threshold": threshold,
                "items_per_call": items_per_call,
                **escalation,
            }
    data["outputs"]["answered_by"] = "intent.answered_by"
    return GraphSpec.from_dict(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threshold", type=float, default=None)
    parser.add_argument("--items-per-call", type=int, default=20)
    args = parser.parse_args()
    configure_logging("console", "WARNING")
    registry = Registry.from_folder(Settings().skills_dir)
    threshold = args.threshold or calibrated_threshold(registry) or 0.5
    turns = clinc150_eval("test")
    gold = {text: label for text, label in turns}

    def oracle(request: dict) -> dict:
        items = json.loads(request["messages"][-1]["content"].split("Items:\n", 1)[1])
        return {"answers": {str(i["index"]): {"intent": gold[i["text"]]} for i in items}}

    spec = turn_graph(threshold, args.items_per_call)
    items = [{"id": n, "utterance": t, "label": lab} for n, (t, lab) in enumerate(turns)]
    with StubLLMServer(default=oracle) as stub:
        gateway = LLMGateway([Provider(name="oracle", base_url=stub.base_url, model="oracle")])
        settings = Settings(escalate=True, executor="local")
        with Runtime(
            registry=registry, executor=LocalExecutor(), gateway=gateway, settings=settings
        ) as rt:
            result = rt.run(spec, items)
    in_scope = [r for r, (_, lab) in zip(result.results, turns, strict=True) if lab != OOS_INTENT]
    kept = [r for r in result.results if not r.escalate]
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "big_model": "ORACLE (stub server answering with CLINC150 gold labels)",
        "threshold": threshold,
        "items": len(items),
        "kept": len(kept),
        "kept_accuracy": result.kept_accuracy,
        "escalation_rate_all": round(result.ledger.escalated / len(items), 4),
        "escalation_rate_in_scope": round(sum(r.escalate for r in in_scope) / len(in_scope), 4),
        "escalation_rate_oos": round(
            sum(
                r.escalate
                for r, (_, lab) in zip(result.results, turns, strict=True)
                if lab == OOS_INTENT
            )
            / sum(1 for _, lab in turns if lab == OOS_INTENT),
            4,
        ),
        "llm_calls": result.ledger.llm_calls,
        "llm_calls_all_big_model": -(-len(items) // args.items_per_call),
        "final_accuracy_with_oracle": result.accuracy,
        "degraded": result.ledger.degraded,
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
