"""The checked-in graphs on real data: the runtime gives exactly the answers the models give."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from orchestrator import RayExecutor, Runtime
from skills.data import bank_marketing, clinc150_eval

GRAPHS = Path(__file__).resolve().parent.parent / "graphs"


def test_turn_graph_on_ray_matches_the_models_called_directly(ray_cluster, builtin_registry):
    """Each turn's intent is turn_intent's where it is sure enough, else turn_intent_minilm's
    where that one is, else turn_intent's flagged for escalation: the two tiers called directly,
    at the thresholds calibrated together and stored with turn_intent_minilm."""
    from orchestrator.registry.calibrations import stored_chain_thresholds

    turns = clinc150_eval("test")[::11]  # 500 turns across all intents and out-of-scope
    texts = [text for text, _ in turns]
    items = [
        {"id": n, "utterance": text, "label": intent} for n, (text, intent) in enumerate(turns)
    ]
    first, second = (builtin_registry.resolve(n) for n in ("turn_intent", "turn_intent_minilm"))
    pair = stored_chain_thresholds(second, first)
    assert pair is not None
    tiers = []
    for version in (first, second):
        skill = version.create()
        skill.ensure_setup()
        got = skill.predict({"text": texts})
        tiers.append((list(got.outputs["intent"]), np.asarray(got.confidence)))
    (l1, c1), (l2, c2) = tiers
    by_second = (c1 < pair[0]) & (c2 >= pair[1])
    expected = [b if use else a for a, b, use in zip(l1, l2, by_second, strict=True)]
    escalate = (c1 < pair[0]) & ~by_second
    with Runtime(registry=builtin_registry, executor=RayExecutor()) as runtime:
        runtime.settings = runtime.settings.model_copy(update={"chunk_size": 128})
        result = runtime.run(GRAPHS / "outbound_call_turn.yaml", items)
    assert [r.outputs["intent"] for r in result.results] == expected
    assert [r.escalate for r in result.results] == escalate.tolist()
    assert by_second.sum() > 0 and escalate.sum() > 0
    correct = sum(i == label for i, (_, label) in zip(expected, turns, strict=True))
    assert result.accuracy == correct / len(turns)
    assert result.ledger.chunks == 4 and result.ledger.skill_calls["turn_intent@1.0.0"] == 4
    assert result.ledger.skill_calls["turn_intent_minilm@1.0.0"] == 4  # each chunk's unsure turns


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
