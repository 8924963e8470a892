"""The planner against the stub LLM server: validated plans, a bounded repair loop, the cache."""

from __future__ import annotations

import json

import pytest
from toy_skills import Text, Verdict, decide, length, shout

from orchestrator import Predictions, Registry, Skill
from orchestrator.errors import LLMOutputInvalid, PlanInvalid
from orchestrator.ledger import Ledger
from orchestrator.llm import LLMGateway, Provider
from orchestrator.plan_cache import PlanCache
from orchestrator.planner import Planner
from orchestrator.testing import StubLLMServer

TASK = "measure each utterance, tell loud from calm, and combine both"
FIELDS = {"utterance": "str"}

GOOD_PLAN = {
    "steps": [
        {"id": "length", "skill": "length", "inputs": {"text": "input.utterance"}},
        {"id": "shout", "skill": "shout", "inputs": {"text": "input.utterance"}},
        {
            "id": "decide",
            "skill": "decide",
            "inputs": {"length": "length.length", "verdict": "shout.verdict"},
        },
    ],
    "outputs": {"verdict": "decide.verdict", "length": "length.length"},
}

# Well-formed, but `decide` reads a step the plan does not have: only validation can tell.
MISSING_STEP_PLAN = {
    "steps": [
        {
            "id": "decide",
            "skill": "decide",
            "inputs": {"length": "length.length", "verdict": "shout.verdict"},
        }
    ],
    "outputs": {"verdict": "decide.verdict"},
}

UNKNOWN_SKILL_PLAN = {
    "steps": [{"id": "shell", "skill": "shell", "inputs": {"cmd": "input.utterance"}}],
    "outputs": {"out": "shell.stdout"},
}


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
        assert len(stub.chat_requests) == 1
    assert not first.cached and first.llm_calls == 1 and first.attempts == 1
    assert first.tokens > 0 and ledger.llm_calls == 1 and ledger.llm_prompt_tokens > 0
    assert second.cached and second.llm_calls == 0 and second.spec == first.spec
    assert [s.id for s in first.spec.steps] == ["length", "shout", "decide"]


def test_the_prompt_carries_the_registry_and_the_schema_enumerates_skills(registry, tmp_path):
    with StubLLMServer(default=GOOD_PLAN) as stub:
        _planner(stub, registry, tmp_path).plan_sync(TASK, FIELDS)
        body = stub.chat_requests[0].json
    prompt = json.dumps(body["messages"])
    assert TASK in prompt and "utterance (str)" in prompt
    assert "Joins a verdict and a length." in prompt  # the skill's description
    schema = json.dumps(body["response_format"])
    assert '"shout"' in schema and '"input.utterance"' in schema and '"shell"' not in schema


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
        assert len(stub.chat_requests) == 2
    assert not again.cached and again.key != first.key


def test_cache_key_covers_task_fields_and_versions(registry):
    from orchestrator.plan_cache import plan_key

    base = plan_key(TASK, FIELDS, registry)
    assert plan_key("  " + TASK.upper() + "  ", FIELDS, registry) == base  # normalised
    assert plan_key(TASK, {"utterance": "str", "customer_id": "str"}, registry) != base
    assert plan_key(TASK + " and more", FIELDS, registry) != base


def test_invalid_plan_is_repaired_with_the_validation_errors(registry, tmp_path):
    with StubLLMServer([MISSING_STEP_PLAN], default=GOOD_PLAN) as stub:
        plan = _planner(stub, registry, tmp_path).plan_sync(TASK, FIELDS)
        repair = stub.chat_requests[1].json["messages"][-1]["content"]
    assert plan.attempts == 2 and plan.llm_calls == 2
    assert "names unknown step 'length'" in repair


def test_repair_loop_is_bounded(registry, tmp_path):
    with StubLLMServer(default=MISSING_STEP_PLAN) as stub:
        planner = _planner(stub, registry, tmp_path, max_repairs=2)
        with pytest.raises(PlanInvalid, match="no valid plan after 2 repair"):
            planner.plan_sync(TASK, FIELDS)
        assert len(stub.chat_requests) == 3
        assert PlanCache(tmp_path / "plans.db").get(_key(registry)) is None


def test_a_plan_naming_an_unregistered_skill_never_runs(registry, tmp_path):
    with StubLLMServer(default=UNKNOWN_SKILL_PLAN) as stub:
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
    from orchestrator.plan_cache import plan_key

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
    assert len(stub.chat_requests) == 1
    assert first.ledger.llm_calls == 1 and second.ledger.llm_calls == 0
    assert first_results[1].outputs == {"verdict": "loud-5", "length": 5}
    assert secret not in sent and "4111" not in sent


def test_cli_plan_writes_a_reviewable_graph(registry, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from orchestrator.cli import app

    turn_plan = {
        "steps": [
            {"id": "turn_intent", "skill": "turn_intent", "inputs": {"text": "input.utterance"}},
            {"id": "opt_out", "skill": "opt_out", "inputs": {"text": "input.utterance"}},
        ],
        "outputs": {"intent": "turn_intent.intent", "opted_out": "opt_out.opted_out"},
    }
    with StubLLMServer(default=turn_plan) as stub:
        provider = {"name": "stub", "base_url": stub.base_url, "model": "m", "max_attempts": 1}
        monkeypatch.setenv("ORCHESTRATOR_LLM_PROVIDERS", json.dumps([provider]))
        monkeypatch.setenv("ORCHESTRATOR_DATA_DIR", str(tmp_path))
        out = tmp_path / "graph.yaml"
        args = ["plan", "classify each turn", "--fields", "utterance", "--output", str(out)]
        first = CliRunner().invoke(app, [*args, "--name", "turns"])
        second = CliRunner().invoke(app, [*args, "--name", "turns"])
        assert len(stub.chat_requests) == 1
    assert first.exit_code == 0, first.output
    assert "from 1 big-model call(s)" in first.output and "from plan cache" in second.output
    from orchestrator import load_graph

    spec = load_graph(out)
    assert spec.name == "turns" and {s.skill for s in spec.steps} == {"turn_intent", "opt_out"}
