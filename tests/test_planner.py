"""The planner: deliverables asked, wiring built from port meanings, a dry run before the cache.

The big model is the stub LLM server (scripted answers); the skills are toy skills whose ports
declare meanings, so every mechanism is checked without model files. One test plans the issue's
first task over the built-in skills with the sentence encoder, as a user would.
"""

from __future__ import annotations

import json
from typing import Annotated, Literal

import pytest
from pydantic import BaseModel

from orchestrator import Registry, skill
from orchestrator.accounting.ledger import Ledger
from orchestrator.errors import GraphValidationError, PlanImpossible, PlanInvalid
from orchestrator.graph.spec import GraphSpec
from orchestrator.graph.validation import resolve_graph
from orchestrator.llm.gateway import LLMGateway, Provider
from orchestrator.planning.cache import PlanCache, plan_key
from orchestrator.planning.planner import Planner
from orchestrator.ports import Meaning
from orchestrator.testing import StubLLMServer

TASK = "tell the mood of each message and decide how to reply"
FIELDS = {"text": "str"}


class Message(BaseModel):
    text: Annotated[str, Meaning.text()]


class Mood(BaseModel):
    mood: Annotated[Literal["happy", "angry"], Meaning.labels("mood")]


class Loud(BaseModel):
    loud: Annotated[bool, Meaning.flag("loud")]


class ReplyIn(BaseModel):
    mood: Annotated[str, Meaning.labels("mood")]
    mood_confidence: Annotated[float, Meaning.confidence(of="mood")]
    loud: Annotated[bool, Meaning.flag("loud")]


class Reply(BaseModel):
    reply: Annotated[Literal["soothe", "thank"], Meaning.labels("reply")]


@skill(name="mood", version="1.0.0", description="The mood of a message: happy or angry.")
def mood(item: Message) -> tuple[Mood, float]:
    if not item.text:
        raise ValueError("an empty message has no mood")
    return Mood(mood="angry" if "!" in item.text else "happy"), 0.9


@skill(name="loudness", version="1.0.0", description="Whether a message is shouted.")
def loudness(item: Message) -> Loud:
    return Loud(loud=item.text.isupper())


@skill(name="reply", version="1.0.0", description="How to reply, from the mood and loudness.")
def reply(item: ReplyIn) -> Reply:
    return Reply(reply="soothe" if item.mood == "angry" or item.loud else "thank")


@pytest.fixture
def registry():
    registry = Registry()
    for cls in (mood, loudness, reply):
        registry.register(cls, aliases=["prod"])
    return registry


def answers(returns, *choices):
    """A responder: the returns question gets ``returns``, wiring questions ``choices`` in turn."""
    remaining = list(choices)

    def respond(request):
        if "JobReturns" in json.dumps(request.get("response_format")):
            return {"returns": returns}
        return remaining.pop(0) if len(remaining) > 1 else remaining[0]

    return respond


def _planner(stub, registry, tmp_path, **kwargs):
    provider = Provider(name="stub", base_url=stub.base_url, model="stub-model", max_attempts=1)
    gateway = LLMGateway([provider], sleep=_no_sleep)
    cache = PlanCache(tmp_path / "plans.db")
    return Planner(gateway, registry, cache=cache, match_requests=False, **kwargs)


async def _no_sleep(seconds):
    return None


def _wiring(spec):
    return {s.skill: {k: str(v) for k, v in s.inputs.items()} for s in spec.steps}


def test_one_question_then_producers_and_bindings_by_construction(registry, tmp_path):
    with StubLLMServer(default=answers(["reply"])) as stub:
        planner = _planner(stub, registry, tmp_path)
        ledger = Ledger(job_id="j1", graph="planned")
        first = planner.plan_sync(TASK, FIELDS, ledger=ledger)
        second = planner.plan_sync(TASK, FIELDS)
        assert len(stub.chat_requests) == 1  # what to return; nothing else was a choice
    # reply needs a mood and a loud flag: their only producers join, wired without asking, and
    # its confidence input reads the confidence of the step its mood comes from
    assert _wiring(first.spec) == {
        "mood": {"text": "input.text"},
        "loudness": {"text": "input.text"},
        "reply": {
            "mood": "mood.mood",
            "mood_confidence": "mood.confidence",
            "loud": "loudness.loud",
        },
    }
    assert [s.skill for s in first.spec.steps][-1] == "reply"  # producers first
    assert first.dry_run is not None and first.dry_run.ok and first.dry_run.items > 0
    assert first.llm_calls == 1 and ledger.llm_calls == 1 and not first.cached
    assert second.cached and second.llm_calls == 0 and second.spec == first.spec


def test_the_question_offers_only_deliverables_and_never_items(registry, tmp_path):
    from orchestrator import LocalExecutor, Runtime

    secret = "my card is 4111 1111 1111 1111!"
    items = [{"id": 1, "text": secret}, {"id": 2, "text": "THANKS"}]
    with StubLLMServer(default=answers(["mood"])) as stub:
        planner = _planner(stub, registry, tmp_path)
        with Runtime(registry=registry, executor=LocalExecutor(), planner=planner) as runtime:
            results = list(runtime.submit_task(TASK, items, fields=FIELDS))
        request = stub.chat_requests[0].json
    sent = json.dumps(request)
    assert TASK in sent and "4111" not in sent and secret not in sent
    schema = json.dumps(request["response_format"])
    for offered in ('"mood"', '"loud"', '"reply"', '"nothing_fits"'):
        assert offered in schema
    assert results[0].outputs["mood"] == "angry" and "reply" not in results[0].outputs


def test_a_real_choice_is_asked_with_only_the_sources_that_fit(registry, tmp_path):
    fields = {"body": "str", "subject": "str", "count": "int", "sender_id": "str"}
    responder = answers(["mood"], {"mood.text": "input.subject"})
    with StubLLMServer(default=responder) as stub:
        plan = _planner(stub, registry, tmp_path).plan_sync(TASK, fields)
        question = stub.chat_requests[1].json["response_format"]["json_schema"]["schema"]
    options = question["properties"]["mood.text"]["enum"]
    # a plain int is not text, and an identifier is no one's words
    assert options == ["input.body", "input.subject"]
    assert _wiring(plan.spec) == {"mood": {"text": "input.subject"}}


def test_items_failing_the_dry_run_go_back_as_codes_and_the_plan_is_never_cached(
    registry, tmp_path
):
    fields = {"body": "str", "subject": "str"}
    sample = [{"body": "fine!", "subject": ""}, {"body": "ok", "subject": ""}]
    responder = answers(["mood"], {"mood.text": "input.subject"}, {"mood.text": "input.body"})
    with StubLLMServer(default=responder) as stub:
        plan = _planner(stub, registry, tmp_path).plan_sync(TASK, fields, sample=sample)
        repair = stub.chat_requests[2].json["messages"][-1]["content"]
    assert "skill_failed at step 'mood' (2 items)" in repair
    assert "empty message" not in repair and "fine!" not in repair  # codes, not contents
    assert _wiring(plan.spec) == {"mood": {"text": "input.body"}} and plan.attempts == 2

    always_bad = answers(["mood"], {"mood.text": "input.subject"})
    with StubLLMServer(default=always_bad) as stub:
        planner = _planner(stub, registry, tmp_path / "b", max_repairs=1)
        with pytest.raises(PlanInvalid, match="skill_failed at step 'mood'"):
            planner.plan_sync(TASK + " again", fields, sample=sample)
    key = plan_key(TASK + " again", fields, registry)
    assert PlanCache(tmp_path / "b" / "plans.db").get(key) is None


def test_a_task_nothing_serves_is_plan_impossible(registry, tmp_path):
    with StubLLMServer(default=answers(["nothing_fits"])) as stub:
        planner = _planner(stub, registry, tmp_path)
        with pytest.raises(PlanImpossible, match="no registered skill produces") as caught:
            planner.plan_sync("translate each message to French", FIELDS)
    assert caught.value.code == "plan_impossible" and "mood" in str(caught.value)


def test_a_needed_input_nothing_can_feed_is_plan_impossible(tmp_path):
    registry = Registry()
    registry.register(reply, aliases=["prod"])  # needs a mood and a flag nobody produces
    with StubLLMServer(default=answers(["reply"])) as stub:
        with pytest.raises(PlanImpossible, match="reply needs") as caught:
            _planner(stub, registry, tmp_path).plan_sync(TASK, FIELDS)
        assert stub.chat_requests == []  # nothing to ask: reply cannot be fed at all
    assert "cannot feed it" in str(caught.value)


def test_hand_written_graphs_follow_the_same_meanings(registry):
    spec = GraphSpec.from_dict(
        {
            "name": "bad",
            "inputs": {"text": "str"},
            "steps": [
                {"id": "m", "skill": "mood", "inputs": {"text": "input.text"}},
                {"id": "l", "skill": "loudness", "inputs": {"text": "input.text"}},
                {
                    "id": "r",
                    "skill": "reply",
                    "inputs": {
                        "mood": "input.text",
                        "mood_confidence": "l.confidence",
                        "loud": "l.loud",
                    },
                },
            ],
            "outputs": {"reply": "r.reply"},
        }
    )
    with pytest.raises(GraphValidationError) as caught:
        resolve_graph(spec, registry)
    problems = [str(issue) for issue in caught.value.issues]
    assert any("step 'r'" in p and "takes labels of mood but gets text" in p for p in problems)
    assert any("confidence of 'mood'" in p for p in problems)
    declared = spec.model_copy(
        update={"inputs": {"text": spec.inputs["text"].model_copy(update={"labels": "mood"})}}
    )
    with pytest.raises(GraphValidationError) as again:  # the job may vouch for its labels
        resolve_graph(declared, registry)
    assert not any("takes labels of mood" in str(i) for i in again.value.issues)


def test_the_planner_goes_through_the_privacy_guard(registry, tmp_path):
    with StubLLMServer(default=answers(["mood"])) as stub:
        planner = _planner(stub, registry, tmp_path, privacy="redact")
        planner.plan_sync("tell the mood of mail from ana.sousa@example.com", FIELDS)
        sent = json.dumps(stub.chat_requests[0].json)
    assert "ana.sousa@example.com" not in sent and "<EMAIL_1>" in sent


def test_fields_need_types(registry, tmp_path):
    with StubLLMServer(default=answers(["mood"])) as stub:
        with pytest.raises(PlanInvalid, match=r"str\|int\|float\|bool"):
            _planner(stub, registry, tmp_path).plan_sync(TASK, {"text": "prose"})
        assert stub.chat_requests == []


def test_cache_key_covers_task_fields_and_versions(registry):
    base = plan_key(TASK, FIELDS, registry)
    assert plan_key("  " + TASK.upper() + "  ", FIELDS, registry) == base  # normalised
    assert plan_key(TASK, {"text": "str", "customer_id": "str"}, registry) != base
    assert plan_key(TASK + " and more", FIELDS, registry) != base


def test_outputs_are_named_after_their_fields():
    from orchestrator.planning.plan_spec import output_names

    assert output_names(["a.intent", "b.intent", "a.confidence", "a.intent"]) == {
        "intent": "a.intent",
        "b_intent": "b.intent",
        "intent_confidence": "a.confidence",
    }


def test_the_first_task_plans_the_turn_graph_over_the_built_in_skills(tmp_path):
    """The issue's first task, matched by the sentence encoder: the three-skill graph wired as
    graphs/outbound_call_turn.yaml, intent tiers as one step with a chain, no model call. The
    planner uses the skills' shared ONNX encoder (one copy in a process that also runs them)."""
    registry = Registry.from_folder("skills")
    task = (
        "for each call turn, classify what the customer wants, detect opt-out requests and "
        "decide the next action"
    )
    with StubLLMServer(default=answers(["nothing_fits"])) as stub:
        provider = Provider(name="stub", base_url=stub.base_url, model="m", max_attempts=1)
        planner = Planner(LLMGateway([provider], sleep=_no_sleep), registry, skills_dir="skills")
        if planner.encoder is None:
            pytest.skip("no sentence encoder: the shared one is not built, no minilm extra")
        assert planner.encoder.source.startswith("shared:")
        plan = planner.plan_sync(task, {"utterance": "str"})
    assert _wiring(plan.spec) == {
        "turn_intent": {"text": "input.utterance"},
        "opt_out": {"text": "input.utterance"},
        "next_action": {
            "intent": "turn_intent.intent",
            "intent_confidence": "turn_intent.confidence",
            "opted_out": "opt_out.opted_out",
        },
    }
    intent = plan.spec.steps[0]
    assert intent.escalation is not None and intent.escalation.chain == ["turn_intent_minilm"]
    assert plan.dry_run is not None and plan.dry_run.ok and plan.llm_calls == 0


def test_a_csv_trained_classifier_declares_a_label_set_named_after_itself():
    from orchestrator.graph.meanings import skill_output_meanings
    from orchestrator.registry.kinds import build_skill_class
    from orchestrator.registry.registry import SkillVersion

    config = {
        "kind": "text-classifier",
        "name": "donation_reply",
        "version": "1.0.0",
        "description": "How a person answers a donation pitch.",
        "labels": ["agree", "refuse"],
        "label_field": "label",
        "inputs": [{"field": "text", "type": "text", "column": "utterance"}],
    }
    cls = build_skill_class(config, __name__, "DonationReply")
    meaning = skill_output_meanings(SkillVersion(cls))["label"]
    assert (meaning.kind, meaning.name, meaning.members) == (
        "label",
        "donation_reply",
        ("agree", "refuse"),
    )
    registry = Registry()
    registry.register(cls)
    registry.register(reply)
    spec = GraphSpec.from_dict(
        {
            "name": "g",
            "inputs": {"text": "str"},
            "steps": [
                {"id": "d", "skill": "donation_reply", "inputs": {"text": "input.text"}},
                {"id": "l", "skill": "loudness", "inputs": {"text": "input.text"}},
                {
                    "id": "r",
                    "skill": "reply",
                    "inputs": {
                        "mood": "d.label",
                        "mood_confidence": "d.confidence",
                        "loud": "l.loud",
                    },
                },
            ],
            "outputs": {"reply": "r.reply"},
        }
    )
    registry.register(loudness)
    with pytest.raises(
        GraphValidationError, match="takes labels of mood but gets labels of donation_reply"
    ):
        resolve_graph(spec, registry)


def test_names_and_owned_meanings_settle_bindings_without_asking(registry, tmp_path):
    fields = {"text": "str", "call_id": "str", "is_test": "bool", "mood_confidence": "float"}
    with StubLLMServer(default=answers(["reply"])) as stub:
        plan = _planner(stub, registry, tmp_path).plan_sync(TASK, fields)
        assert len(stub.chat_requests) == 1  # only what to return
    # `text` is named like the input; a plain job bool only fits the `loud` flag, so the step that
    # owns it joins and feeds it; the confidence follows the mood's step, not the job's float
    assert _wiring(plan.spec)["reply"] == {
        "mood": "mood.mood",
        "mood_confidence": "mood.confidence",
        "loud": "loudness.loud",
    }
    assert _wiring(plan.spec)["mood"] == {"text": "input.text"}


def test_a_service_task_job_dry_runs_its_plan_on_the_jobs_own_items(registry, tmp_path):
    """The first wiring the model picks fails the job's own items (an empty subject); made-up
    samples would have passed it. The plan the job runs is the repaired one."""
    from api_server import make_keys, wait_for
    from hardening_support import bearer, toy_settings
    from starlette.testclient import TestClient

    from orchestrator import Runtime
    from orchestrator.service.app import create_app

    keys = make_keys()
    settings = toy_settings(tmp_path, keys)
    items = [{"id": i, "body": "great!", "subject": ""} for i in range(3)]
    responder = answers(["mood"], {"mood.text": "input.subject"}, {"mood.text": "input.body"})
    with StubLLMServer(default=responder) as stub:
        planner = _planner(stub, registry, tmp_path)
        runtime = Runtime(
            registry=registry, executor="local", settings=settings.runtime, planner=planner
        )
        with runtime, TestClient(create_app(settings, runtime=runtime)) as http:
            http.base_url = "http://127.0.0.1"
            headers = bearer(keys.writer)
            body = {"task": TASK, "fields": {"body": "str", "subject": "str"}, "items": items}
            job = http.post("/v1/jobs", json=body, headers=headers)
            assert job.status_code in (200, 201, 202), job.text
            job_id = job.json()["id"]

            class Http:
                def get(self, url):
                    return http.get(url, headers=headers)

            assert wait_for(f"/v1/jobs/{job_id}", Http())["status"] == "succeeded"
            page = http.get(f"/v1/jobs/{job_id}/results", headers=headers).json()
        sent = json.dumps([r.json for r in stub.chat_requests])
    assert [r["mood"] for r in page["results"]] == ["angry"] * 3
    assert "great!" not in sent and len(stub.chat_requests) == 3  # returns, choice, repaired choice


def test_the_shared_onnx_encoder_and_the_model_package_agree():
    """The planner's thresholds were chosen on the model package's vectors; the shared ONNX
    encoder (the same model, exported) gives the same ones."""
    from orchestrator.llm.encoder import available, sentence_encoder

    shared = sentence_encoder("skills")
    if shared is None or not shared.source.startswith("shared:") or not available():
        pytest.skip("needs the built shared encoder and the minilm extra")
    package = sentence_encoder(None)
    assert package is not None and package.source == "sentence-transformers"
    texts = ["classify what the customer wants", "detect opt-out requests", "next action"]
    a, b = shared.encode(texts), package.encode(texts)
    assert a.shape == b.shape == (3, 384)
    assert float(abs(a - b).max()) < 1e-4
    assert abs(float((a @ a.T)[0, 1]) - float((b @ b.T)[0, 1])) < 1e-4
