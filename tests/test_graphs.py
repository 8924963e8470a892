"""The checked-in graphs on real data: the runtime gives exactly the answers the models give."""

from __future__ import annotations

from pathlib import Path

from orchestrator import RayExecutor, Runtime
from skills.data import bank_marketing, clinc150_eval

GRAPHS = Path(__file__).resolve().parent.parent / "graphs"


def test_turn_graph_on_ray_matches_the_model_called_directly(ray_cluster, builtin_registry):
    turns = clinc150_eval("test")[::11]  # 500 turns across all intents and out-of-scope
    items = [
        {"id": n, "utterance": text, "label": intent} for n, (text, intent) in enumerate(turns)
    ]
    direct = builtin_registry.resolve("turn_intent").create()
    direct.ensure_setup()
    expected = direct.predict({"text": [text for text, _ in turns]})
    with Runtime(registry=builtin_registry, executor=RayExecutor()) as runtime:
        runtime.settings = runtime.settings.model_copy(update={"chunk_size": 128})
        result = runtime.run(GRAPHS / "outbound_call_turn.yaml", items)
    assert [r.outputs["intent"] for r in result.results] == list(expected.outputs["intent"])
    correct = sum(
        i == label for i, (_, label) in zip(expected.outputs["intent"], turns, strict=True)
    )
    assert result.accuracy == correct / len(turns)
    assert result.ledger.chunks == 4 and result.ledger.skill_calls["turn_intent@1.0.0"] == 4
    # the graph asks for the calibrated threshold: the one stored with turn_intent's artifacts
    from orchestrator.calibration import stored_threshold

    threshold = stored_threshold(builtin_registry.resolve("turn_intent"))
    assert threshold is not None and 0.3 < threshold < 0.9
    escalated = [r for r in result.results if r.escalate]
    assert escalated and all(r.outputs["intent_confidence"] < threshold for r in escalated)
    kept = [r for r in result.results if not r.escalate]
    assert all(r.outputs["intent_confidence"] >= threshold for r in kept)


def test_lead_scoring_ranks_subscribers_higher(builtin_registry):
    rows = bank_marketing()[::20]  # ~2,000 leads
    items = [{**row, "id": n} for n, row in enumerate(rows)]
    with Runtime(registry=builtin_registry, executor="local") as runtime:
        result = runtime.run(GRAPHS / "lead_scoring.yaml", items)
    assert result.ledger.failed == 0
    scores = [r.outputs["subscribe_probability"] for r in result.results]
    yes = [s for s, row in zip(scores, rows, strict=True) if row["subscribed"]]
    no = [s for s, row in zip(scores, rows, strict=True) if not row["subscribed"]]
    # probability that a random subscriber outranks a random non-subscriber (ROC AUC)
    auc = sum((y > n) + 0.5 * (y == n) for y in yes for n in no) / (len(yes) * len(no))
    assert auc > 0.75
