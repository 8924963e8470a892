"""The cascade: unsure items go up the chain to the big model; the big model failing never fails
an item (it keeps the small answer, marked degraded)."""

from __future__ import annotations

import json

import pytest
from toy_skills import TOY_GRAPH, Length, Text

from orchestrator import GraphSpec, LocalExecutor, Predictions, Runtime, Skill
from orchestrator.errors import GraphValidationError
from orchestrator.llm.gateway import LLMGateway, Provider
from orchestrator.testing import Reply, StubLLMServer


class CarefulLength(Skill):
    """A dearer stand-in for `length`: sure of itself on words of 4+ characters."""

    name = "careful_length"
    version = "1.0.0"
    description = "Counts characters carefully."
    Input = Text
    Output = Length

    def predict(self, batch):
        texts = batch["text"]
        return Predictions(
            {"length": [len(t) for t in texts]}, [0.9 if len(t) >= 4 else 0.2 for t in texts]
        )


def oracle(request):
    """The big model, played by an oracle that knows the answers: the length of each item."""
    prompt = request["messages"][-1]["content"]
    items = json.loads(prompt.split("Items:\n", 1)[1])
    return {"answers": {str(i["index"]): {"length": len(i["text"]) * 100} for i in items}}


def _graph(**escalation):
    steps = [dict(s) for s in TOY_GRAPH["steps"]]
    steps[0] = {**steps[0], "escalation": {"threshold": 0.5, **escalation}}
    outputs = {**TOY_GRAPH["outputs"], "by": "len.answered_by", "degraded": "len.degraded"}
    return GraphSpec.from_dict({**TOY_GRAPH, "steps": steps, "outputs": outputs})


def _run(stub, registry, graph, items, learned=None, **provider):
    spec = {"name": "stub", "base_url": stub.base_url, "model": "m", "max_attempts": 1, **provider}
    gateway = LLMGateway([Provider(**spec)])
    with Runtime(registry=registry, executor=LocalExecutor(), gateway=gateway) as runtime:
        runtime.settings = runtime.settings.model_copy(update={"escalate": True})
        result = runtime.run(graph, items)
        if learned is not None:
            learned.extend(runtime.examples.for_skill("length"))
        return result


ITEMS = [
    {"id": i, "utterance": text} for i, text in enumerate(["hi", "a long sentence", "yo", "abcd"])
]


@pytest.fixture
def registry(toy_registry):
    toy_registry.register(CarefulLength, aliases=["prod"])
    return toy_registry


def test_only_unsure_items_reach_the_big_model_in_batches(registry, tmp_path, monkeypatch):
    monkeypatch.setenv("ORCHESTRATOR_DATA_DIR", str(tmp_path))
    learned = []
    with StubLLMServer(default=oracle) as stub:
        result = _run(stub, registry, _graph(items_per_call=2), ITEMS, learned)
        sent = [
            json.loads(r.json["messages"][-1]["content"].split("Items:\n", 1)[1])
            for r in stub.chat_requests
        ]
    # two calls (items_per_call=2), in flight at once: their order is not fixed
    assert sorted([i["text"] for i in batch] for batch in sent) == [["abcd"], ["hi", "yo"]]
    by_id = {r.id: r for r in result.results}
    assert by_id[1].outputs["length"] == 15 and by_id[1].outputs["by"] == "length@1.0.0"
    assert not by_id[1].escalate
    assert by_id[0].outputs == {
        "length": 200,
        "verdict": "calm-200",
        "conf": 1.0,
        "by": "llm:stub",
        "degraded": False,
    }
    assert by_id[0].escalate and by_id[3].outputs["length"] == 400
    assert result.ledger.llm_calls == 2 and result.ledger.escalated == 3
    assert result.ledger.llm_prompt_tokens > 0
    # the big model's answers are kept as labelled examples for the next version (distillation)
    assert sorted((e.inputs["text"], e.outputs["length"]) for e in learned) == [
        ("abcd", 400),
        ("hi", 200),
        ("yo", 200),
    ]
    assert {(e.skill, e.source, e.job_id) for e in learned} == {
        ("length@1.0.0", "llm:stub", result.job_id)
    }


def test_the_chain_answers_before_the_big_model(registry):
    with StubLLMServer(default=oracle) as stub:
        result = _run(stub, registry, _graph(chain=["careful_length"]), ITEMS)
        assert len(stub.chat_requests) == 1
    by_id = {r.id: r for r in result.results}
    assert by_id[0].outputs["by"] == "llm:stub"  # "hi": careful_length unsure too
    assert by_id[3].outputs["by"] == "careful_length@1.0.0" and by_id[3].outputs["length"] == 4
    assert by_id[3].outputs["conf"] == pytest.approx(0.9)


@pytest.mark.parametrize(
    "behaviour",
    [Reply.error(500), Reply.hang(10), Reply.malformed(), {"answers": []}],
    ids=["server-error", "hang", "malformed", "schema-invalid"],
)
def test_a_failing_big_model_degrades_items_never_fails_them(registry, behaviour):
    with StubLLMServer(default=behaviour) as stub:
        result = _run(stub, registry, _graph(timeout_s=2), ITEMS, timeout_s=1)
    assert result.ledger.failed == 0 and result.ledger.degraded == 3
    by_id = {r.id: r for r in result.results}
    assert by_id[0].degraded and by_id[0].outputs["length"] == 2  # the small model's answer
    assert by_id[0].outputs["by"] == "length@1.0.0" and not by_id[1].degraded


def test_without_a_big_model_items_are_only_flagged(registry):
    with Runtime(registry=registry, executor=LocalExecutor()) as runtime:
        result = runtime.run(_graph(), ITEMS)
    assert result.ledger.escalated == 3 and result.ledger.degraded == 0
    assert result.ledger.llm_calls == 0
    assert all(r.outputs["by"] == "length@1.0.0" for r in result.results)


def test_answers_are_limited_to_the_skills_labels(builtin_registry):
    from orchestrator import compile_graph, load_graph
    from orchestrator.graph.cascade import answer_schema

    graph = compile_graph(load_graph("graphs/outbound_call_turn.yaml"), builtin_registry)
    intent_step = next(s for s in graph.resolved.steps if s.id == "intent")
    schema = answer_schema(intent_step, [4, 7]).model_json_schema()
    answer = next(iter(schema["$defs"].values()))["properties"]
    assert len(answer["intent"]["enum"]) == 151 and "oos" in answer["intent"]["enum"]
    by_index = schema["$defs"]["turn_intent_answers_by_index"]
    assert sorted(by_index["required"]) == ["4", "7"] and by_index["additionalProperties"] is False


def test_known_customer_values_are_redacted_before_the_big_model(registry, tmp_path, monkeypatch):
    """``known_pii`` inputs feed the PII guard: names no pattern recognizer knows never leave."""
    monkeypatch.setenv("ORCHESTRATOR_DATA_DIR", str(tmp_path))
    graph = _graph(threshold=1.0).model_dump()
    graph["inputs"] = {"utterance": {"type": "str"}, "customer": {"type": "str"}}
    graph["known_pii"] = {"customer": "name"}
    items = [
        {"id": 1, "utterance": "Ana Sousa", "customer": "Ana Sousa"},
        {"id": 2, "utterance": "Ida Kowal", "customer": "Ida Kowal"},
    ]
    with StubLLMServer(default=oracle) as stub:
        spec = {"name": "stub", "base_url": stub.base_url, "model": "m", "max_attempts": 1}
        gateway = LLMGateway([Provider(**spec)])
        with Runtime(registry=registry, executor=LocalExecutor(), gateway=gateway) as runtime:
            runtime.settings = runtime.settings.model_copy(
                update={"escalate": True, "privacy": "redact"}
            )
            result = runtime.run(GraphSpec.from_dict(graph), items)
        sent = " ".join(json.dumps(r.json) for r in stub.chat_requests)
    assert len(stub.chat_requests) == 1
    assert "Sousa" not in sent and "Ida" not in sent and "Kowal" not in sent
    assert "PERSON_1" in sent and "PERSON_2" in sent
    assert [r.outputs["by"] for r in result.results] == ["llm:stub", "llm:stub"]


def test_known_pii_must_name_an_input(registry):
    graph = _graph().model_dump()
    graph["known_pii"] = {"phone_number": "phone"}
    with pytest.raises(GraphValidationError, match="known_pii: 'phone_number' is not one of"):
        Runtime(registry=registry, executor=LocalExecutor()).compile(GraphSpec.from_dict(graph))
