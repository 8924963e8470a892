"""The planner against the stub LLM server: validated plans, a bounded repair loop, the cache."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel
from toy_skills import Text, Verdict, decide, length, shout

from orchestrator import Predictions, Registry, Skill, skill
from orchestrator.accounting.ledger import Ledger
from orchestrator.errors import LLMOutputInvalid, PlanInvalid
from orchestrator.llm.gateway import LLMGateway, Provider
from orchestrator.planning.cache import PlanCache
from orchestrator.planning.planner import Planner
from orchestrator.testing import StubLLMServer

TASK = "measure each utterance, tell loud from calm, and combine both"
FIELDS = {"utterance": "str"}

CHOICE = {"skills": ["length", "shout", "decide"]}

GOOD_WIRING = {
    "steps": {
        "length": {"inputs": {"text": "input.utterance"}},
        "shout": {"inputs": {"text": "input.utterance"}},
        "decide": {"inputs": {"length": "length.length", "verdict": "shout.verdict"}},
    },
    "outputs": ["decide.verdict", "length.length"],
}


class Tagged(BaseModel):
    text: str
    strict: bool | None = None


@skill(name="tag", version="1.0.0", description="Tags a text; `strict` is an optional flag.")
def tag(item: Tagged) -> Verdict:
    return Verdict(verdict="tagged")


# Nothing produces a bool for tag's optional `strict`, so the schema lets any source through there
# and only graph validation sees the type mismatch; its problems go back to the model.
TAG_CHOICE = {"skills": ["tag"]}
BAD_WIRING = {
    "steps": {"tag": {"inputs": {"text": "input.utterance", "strict": "input.utterance"}}},
    "outputs": ["tag.verdict"],
}
GOOD_TAG_WIRING = {
    "steps": {"tag": {"inputs": {"text": "input.utterance"}}},
    "outputs": ["tag.verdict"],
}

UNKNOWN_SKILL_CHOICE = {"skills": ["shell"]}


def planner_stub(choice, *wirings):
    """A responder answering the planner's two questions: the skill choice, then the wiring(s)."""
    remaining = list(wirings)

    def respond(request):
        if "ChosenSkills" in json.dumps(request.get("response_format")):
            return choice
        return remaining.pop(0) if len(remaining) > 1 else remaining[0]

    return respond


GOOD_PLAN = planner_stub(CHOICE, GOOD_WIRING)


@pytest.fixture
def registry():
    registry = Registry()
    for cls in (length, shout, decide):
        registry.register(cls, aliases=["prod"])
    return registry


def _planner(stub, registry, tmp_path, **kwargs):
    provider = Provider(name="stub", base_url=stub.base_url, model="stub-model", max_attempts=1)
    gateway = LLMGateway([provider], sleep=_no_sleep)
    return Planner(gateway, registry, cache=PlanCache(tmp_path / "plans.db"), **kwargs)


async def _no_sleep(seconds):
    return None


def test_valid_plan_is_validated_and_cached(registry, tmp_path):
    with StubLLMServer(default=GOOD_PLAN) as stub:
        planner = _planner(stub, registry, tmp_path)
        ledger = Ledger(job_id="j1", graph="planned")
        first = planner.plan_sync(TASK, FIELDS, ledger=ledger)
        second = planner.plan_sync(TASK, FIELDS)
        assert len(stub.chat_requests) == 2  # choose + wire, once
    assert not first.cached and first.llm_calls == 2 and first.attempts == 1
    assert first.tokens > 0 and ledger.llm_calls == 2 and ledger.llm_prompt_tokens > 0
    assert second.cached and second.llm_calls == 0 and second.spec == first.spec
    assert [s.id for s in first.spec.steps] == ["length", "shout", "decide"]


def test_the_prompt_carries_the_registry_and_the_schema_enumerates_skills(registry, tmp_path):
    with StubLLMServer(default=GOOD_PLAN) as stub:
        _planner(stub, registry, tmp_path).plan_sync(TASK, FIELDS)
        choose, wire = (r.json for r in stub.chat_requests)
    prompt = json.dumps(choose["messages"])
    assert TASK in prompt and "utterance (str)" in prompt
    assert "Joins a verdict and a length." in prompt  # the skill's description
    choices = json.dumps(choose["response_format"])
    assert '"shout"' in choices and '"decide"' in choices and '"shell"' not in choices
    wiring = wire["response_format"]["json_schema"]["schema"]
    # decide's `length` input (int) may only read int sources that run before it
    decide = wiring["$defs"]["decide_inputs"]["properties"]
    assert decide["length"]["const"] == "length.length"
    assert decide["verdict"]["enum"] == ["input.utterance", "shout.verdict"]
    assert list(wiring["$defs"]["PlannedSteps"]["properties"]) == ["length", "shout", "decide"]


def test_changing_a_skill_version_invalidates_the_cached_plan(registry, tmp_path):
    class Shout2(Skill):
        name = "shout"
        version = "2.0.0"
        description = "'loud' when the text is upper case (v2)."
        Input = Text
        Output = Verdict

        def predict(self, batch):
            return Predictions(
                {"verdict": ["calm"] * len(batch["text"])}, [1.0] * len(batch["text"])
            )

    with StubLLMServer(default=GOOD_PLAN) as stub:
        planner = _planner(stub, registry, tmp_path)
        first = planner.plan_sync(TASK, FIELDS)
        registry.register(Shout2, aliases=["prod"])
        again = planner.plan_sync(TASK, FIELDS)
        assert len(stub.chat_requests) == 4
    assert not again.cached and again.key != first.key


def test_cache_key_covers_task_fields_and_versions(registry):
    from orchestrator.planning.cache import plan_key

    base = plan_key(TASK, FIELDS, registry)
    assert plan_key("  " + TASK.upper() + "  ", FIELDS, registry) == base  # normalised
    assert plan_key(TASK, {"utterance": "str", "customer_id": "str"}, registry) != base
    assert plan_key(TASK + " and more", FIELDS, registry) != base


def test_invalid_plan_is_repaired_with_the_validation_errors(registry, tmp_path):
    registry.register(tag)
    responder = planner_stub(TAG_CHOICE, BAD_WIRING, GOOD_TAG_WIRING)
    with StubLLMServer(default=responder) as stub:
        plan = _planner(stub, registry, tmp_path).plan_sync(TASK, FIELDS)
        repair = stub.chat_requests[2].json["messages"][-1]["content"]
    assert plan.attempts == 2 and plan.llm_calls == 3
    assert "input 'strict' expects None | bool but input.utterance is str" in repair


def test_repair_loop_is_bounded(registry, tmp_path):
    registry.register(tag)
    with StubLLMServer(default=planner_stub(TAG_CHOICE, BAD_WIRING)) as stub:
        planner = _planner(stub, registry, tmp_path, max_repairs=2)
        with pytest.raises(PlanInvalid, match="no valid plan after 2 repair"):
            planner.plan_sync(TASK, FIELDS)
        assert len(stub.chat_requests) == 4  # choose, then wire + 2 repairs
        assert PlanCache(tmp_path / "plans.db").get(_key(registry)) is None


def test_a_plan_naming_an_unregistered_skill_never_runs(registry, tmp_path):
    with StubLLMServer(default=UNKNOWN_SKILL_CHOICE) as stub:
        planner = _planner(stub, registry, tmp_path)
        with pytest.raises(LLMOutputInvalid):
            planner.plan_sync(TASK, FIELDS)
        assert len(stub.chat_requests) == 2  # the answer, then one re-ask; nothing ran


def test_fields_need_types(registry, tmp_path):
    with StubLLMServer(default=GOOD_PLAN) as stub:
        with pytest.raises(PlanInvalid, match=r"str\|int\|float\|bool"):
            _planner(stub, registry, tmp_path).plan_sync(TASK, {"utterance": "text"})
        assert stub.chat_requests == []


def _key(registry):
    from orchestrator.planning.cache import plan_key

    return plan_key(TASK, FIELDS, registry)


def test_jobs_naming_a_task_plan_once_and_never_show_items_to_the_planner(registry, tmp_path):
    from orchestrator import LocalExecutor, Runtime

    secret = "my card is 4111 1111 1111 1111"
    items = [{"id": 1, "utterance": secret}, {"id": 2, "utterance": "HELLO"}]
    with StubLLMServer(default=GOOD_PLAN) as stub:
        planner = _planner(stub, registry, tmp_path)
        with Runtime(registry=registry, executor=LocalExecutor(), planner=planner) as runtime:
            first = runtime.submit_task(TASK, items, fields=FIELDS)
            first_results = list(first)
            second = runtime.submit_task(TASK, items, fields=FIELDS)
            list(second)
        sent = json.dumps([r.json for r in stub.chat_requests])
    assert len(stub.chat_requests) == 2
    assert first.ledger.llm_calls == 2 and second.ledger.llm_calls == 0
    assert first_results[1].outputs == {"verdict": "loud-5", "length": 5}
    assert secret not in sent and "4111" not in sent


def test_cli_plan_writes_a_reviewable_graph(registry, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from orchestrator.cli.commands import app

    turn_plan = planner_stub(
        {"skills": ["turn_intent", "opt_out"]},
        {
            "steps": {
                "opt_out": {"inputs": {"text": "input.utterance"}},
                "turn_intent": {"inputs": {"text": "input.utterance"}},
            },
            "outputs": ["turn_intent.intent", "opt_out.opted_out"],
        },
    )
    with StubLLMServer(default=turn_plan) as stub:
        provider = {"name": "stub", "base_url": stub.base_url, "model": "m", "max_attempts": 1}
        monkeypatch.setenv("ORCHESTRATOR_LLM_PROVIDERS", json.dumps([provider]))
        monkeypatch.setenv("ORCHESTRATOR_DATA_DIR", str(tmp_path))
        out = tmp_path / "graph.yaml"
        args = ["plan", "classify each turn", "--fields", "utterance", "--output", str(out)]
        first = CliRunner().invoke(app, [*args, "--name", "turns"])
        second = CliRunner().invoke(app, [*args, "--name", "turns"])
        assert len(stub.chat_requests) == 2
    assert first.exit_code == 0, first.output
    assert "from 2 big-model call(s)" in first.output and "from plan cache" in second.output
    from orchestrator import load_graph

    spec = load_graph(out)
    assert spec.name == "turns" and {s.skill for s in spec.steps} == {"turn_intent", "opt_out"}


def test_choosing_a_consumer_brings_in_its_producers(registry, tmp_path):
    wiring = {
        "steps": {
            "length": {"inputs": {"text": "input.utterance"}},
            "decide": {"inputs": {"length": "length.length", "verdict": "input.utterance"}},
        },
        "outputs": ["decide.verdict"],
    }
    with StubLLMServer(default=planner_stub({"skills": ["decide"]}, wiring)) as stub:
        plan = _planner(stub, registry, tmp_path).plan_sync(TASK, FIELDS)
        schema = stub.chat_requests[1].json["response_format"]["json_schema"]["schema"]
    # `decide` needs an int that only `length` makes, so `length` joins; its str input `verdict`
    # can read the job's utterance, so `shout` is not forced in.
    assert list(schema["$defs"]["PlannedSteps"]["properties"]) == ["length", "decide"]
    assert [s.id for s in plan.spec.steps] == ["length", "decide"]


def test_outputs_are_named_after_their_fields():
    from orchestrator.planning.planner import output_names

    assert output_names(["a.intent", "b.intent", "a.confidence", "a.intent"]) == {
        "intent": "a.intent",
        "b_intent": "b.intent",
        "a_confidence": "a.confidence",
    }
