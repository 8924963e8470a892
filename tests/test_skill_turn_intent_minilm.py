"""turn_intent_minilm, the intent cascade's second tier, and the turn graph's routing on CLINC150 test.

The artifacts are built by the fixture when missing or stale (~1.5 min: all-MiniLM-L6-v2 exported
with torch, CLINC150 train + val embedded, the head fitted; the build then calibrates it alone and
after turn_intent, on val).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from orchestrator import GraphSpec, LocalExecutor, Runtime, load_graph
from orchestrator.config import Settings
from orchestrator.llm.gateway import LLMGateway, Provider
from orchestrator.testing import StubLLMServer
from skills.data import OOS_INTENT, clinc150_eval
from skills.turn_intent_minilm import TurnIntentMiniLM

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def tier2(builtin_registry) -> TurnIntentMiniLM:
    skill = builtin_registry.resolve("turn_intent_minilm").create()
    skill.ensure_setup()
    return skill


def test_clear_turns_get_their_intent(tier2: TurnIntentMiniLM) -> None:
    got = tier2.predict(
        {"text": ["what's my checking account balance", "please book me a flight to paris"]}
    )
    assert got.outputs["intent"] == ["balance", "book_flight"]
    assert np.all(np.asarray(got.confidence) > 0.5)


def test_a_result_does_not_depend_on_its_batch(tier2: TurnIntentMiniLM) -> None:
    texts = [t for t, _ in clinc150_eval("val")[::97]]  # 32 turns of different lengths
    together = tier2.probabilities(texts)
    alone = np.concatenate([tier2.probabilities([t]) for t in texts])
    assert np.abs(together - alone).max() < 1e-5


def test_long_empty_and_odd_turns_get_an_answer(tier2: TurnIntentMiniLM) -> None:
    long_turn = "I would like to know my balance please " * 80  # > 256 tokens: truncated
    got = tier2.predict({"text": [long_turn, "", "🙂 ¿qué?"]})
    assert len(got.outputs["intent"]) == 3
    assert got.outputs["intent"][0] == "balance"
    assert tier2.predict({"text": []}).outputs["intent"] == []


def test_the_blend_weight_and_classes_come_from_the_build(tier2: TurnIntentMiniLM) -> None:
    blend = json.loads((ROOT / "skills/turn_intent_minilm/artifacts/blend.json").read_text())
    assert tier2.tfidf_weight == blend["tfidf_weight"] and 0.0 <= tier2.tfidf_weight < 1.0
    labels = TurnIntentMiniLM.output_labels()["intent"]
    assert sorted(blend["classes"]) == sorted(labels) and OOS_INTENT in labels


def test_the_build_chose_the_chain_pair_on_val_with_its_margin(builtin_registry) -> None:
    """The pair stored with turn_intent_minilm is what the chain calibration gives on the val split
    its manifest declares, from these very artifacts, with the chain's margin; its kept answers
    on val reach the target."""
    from orchestrator.learning.calibrate import predict_labels, same_label, share_weights
    from orchestrator.learning.chain_calibrate import choose_chain_thresholds
    from orchestrator.learning.evaluate import validation_data
    from orchestrator.registry.calibrations import stored_chain_record

    first, second = (builtin_registry.resolve(n) for n in ("turn_intent", "turn_intent_minilm"))
    record = stored_chain_record(second, first)
    assert record is not None and record["by"] == "build" and record["reachable"]
    data, labels, _, shares = validation_data(second)
    tiers = []
    for version in (first, second):
        predicted, confidence = predict_labels(version.create(), data)
        tiers += [confidence, [same_label(p, y) for p, y in zip(predicted, labels, strict=True)]]
    again = choose_chain_thresholds(
        *tiers,
        record["target_accuracy"],
        after=first.key,
        weights=share_weights(labels, shares),
        confidence_level=record["confidence_level"],
    )
    assert (again.first_threshold, again.threshold) == (
        record["first_threshold"],
        record["threshold"],
    )
    assert again.selective_accuracy >= record["target_accuracy"] == 0.97
    assert record["confidence_level"] > 0.5  # a margin under the target, not the point estimate


def test_the_turn_graph_routes_through_both_tiers_on_clinc150_test(builtin_registry) -> None:
    """The shipped graph at the thresholds the build chose on val, on CLINC150 test with an oracle
    big model (a stub answering gold labels): the second tier settles a share of the turns, every
    escalated turn gets the big model's answer. The test split's figures move with the machine
    that built the skills (bench/cascade.py reports them with their spread across builds); the
    floors here are sanity bounds far outside that spread, not the targets."""
    turns = clinc150_eval("test")
    gold = dict(turns)

    def oracle(request: dict) -> dict:
        items = json.loads(request["messages"][-1]["content"].split("Items:\n", 1)[1])
        return {"answers": {str(i["index"]): {"intent": gold[i["text"]]} for i in items}}

    data = load_graph(ROOT / "graphs" / "outbound_call_turn.yaml").model_dump()
    data["outputs"]["answered_by"] = "intent.answered_by"
    spec = GraphSpec.model_validate(data)
    items = [{"id": n, "utterance": t, "label": y} for n, (t, y) in enumerate(turns)]
    with StubLLMServer(default=oracle) as stub:
        gateway = LLMGateway([Provider(name="oracle", base_url=stub.base_url, model="oracle")])
        settings = Settings(escalate=True, executor="local")
        with Runtime(
            registry=builtin_registry, executor=LocalExecutor(), gateway=gateway, settings=settings
        ) as rt:
            result = rt.run(spec, items)
    escalated = np.array([r.escalate for r in result.results])
    oos = np.array([y == OOS_INTENT for _, y in turns])
    by = [r.outputs["answered_by"] for r in result.results]
    assert result.kept_accuracy is not None and result.kept_accuracy >= 0.95
    assert escalated[~oos].mean() <= 0.25 and escalated.mean() <= 0.40
    assert by.count("turn_intent_minilm@1.0.0") > 0.1 * len(turns)  # the second tier pays
    assert sum(b.startswith("llm:") for b in by) == escalated.sum() == result.ledger.escalated
    assert result.ledger.degraded == 0 and result.accuracy is not None and result.accuracy > 0.95
    assert 0 < result.ledger.llm_calls < len(turns) / 20  # 20 turns a call when all escalate
