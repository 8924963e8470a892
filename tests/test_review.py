"""Human review: a step holds its least sure items, a person answers, the items finish.

Real parts throughout: the built-in turn graph and its ONNX/rule skills, SQLite for the queue and
LangGraph's SQLite checkpointer for the paused threads, the real job service on loopback.
"""

from __future__ import annotations

import json

import pytest
import yaml
from api_server import ROOT, client, make_keys, serve_app, wait_for
from typer.testing import CliRunner

from orchestrator import Runtime
from orchestrator.config import Settings
from orchestrator.errors import GraphValidationError, ReviewError
from orchestrator.graph.spec import GraphSpec

#: an unclear turn and gibberish score far under 0.3 with turn_intent; the others far above it
SURE = ["what is my account balance", "stop calling me"]
UNSURE = ["hmm maybe the thing with the stuff", "blorf quux zzz"]


def review_graph(review_below: float = 0.3, threshold: object = "calibrated") -> GraphSpec:
    """The showcase turn graph with human review on the intent step."""
    data = yaml.safe_load((ROOT / "graphs" / "outbound_call_turn.yaml").read_text())
    for step in data["steps"]:
        if step["id"] == "intent":
            step["escalation"] = {"threshold": threshold, "review_below": review_below}
    return GraphSpec.from_dict(data)


def items() -> list[dict]:
    return [{"id": f"t{i}", "utterance": u} for i, u in enumerate([*SURE, *UNSURE])]


@pytest.fixture
def runtime(tmp_path, builtin_registry):
    settings = Settings(executor="local", data_dir=tmp_path)
    with Runtime(registry=builtin_registry, executor="local", settings=settings) as rt:
        yield rt


def test_review_threshold_above_escalation_fails_at_compile_naming_the_step(builtin_registry):
    with pytest.raises(GraphValidationError) as caught:
        Runtime(registry=builtin_registry, executor="local").compile(
            review_graph(review_below=0.9, threshold=0.5)
        )
    assert "step 'intent'" in str(caught.value) and "review_below 0.9" in str(caught.value)


def test_unsure_items_wait_while_the_rest_finish(runtime):
    result = runtime.run(review_graph(), items())
    by_id = {r.id: r for r in result.results}
    for sure in ("t0", "t1"):
        assert by_id[sure].review is None and by_id[sure].outputs["action"] is not None
    for held in ("t2", "t3"):
        r = by_id[held]
        assert r.review is not None and r.review.step == "intent" and r.review.ticket
        # the step that reads the intent waits; the independent opt-out step ran
        assert r.outputs["action"] is None and r.outputs["opted_out"] is False
        assert r.to_dict()["review"]["status"] == "waiting"
    assert result.ledger.held_for_review == 2 and result.summary()["held_for_review"] == 2
    tickets = runtime.reviews.queue.list()
    assert [t.item_id for t in tickets] == ["t2", "t3"]
    assert tickets[0].inputs == {"text": UNSURE[0]} and tickets[0].confidence < 0.3
    assert set(tickets[0].proposed) == {"intent"}


def test_answer_finishes_the_item_and_feeds_distillation(runtime):
    runtime.run(review_graph(), items())
    ticket = runtime.reviews.queue.list()[0]
    with pytest.raises(ReviewError) as bad:
        runtime.answer_review(ticket.id, {"intent": "balanc"}, reviewer="ana")
    assert "balance" in str(bad.value) and bad.value.code == "review_invalid"
    with pytest.raises(ReviewError, match="missing field 'intent'"):
        runtime.answer_review(ticket.id, {}, reviewer="ana")
    assert runtime.reviews.queue.get(ticket.id).status == "waiting"  # nothing taken

    done = runtime.answer_review(ticket.id, {"intent": "balance"}, reviewer="ana")
    assert done.status == "answered" and done.reviewer == "ana"
    assert done.result["intent"] == "balance" and done.result["id"] == "t2"
    assert done.result["action"] == "transfer_to_human"  # the dependent step ran on the answer
    assert done.result["review"] == {"status": "answered", "reviewer": "ana"}
    learned = runtime.examples.for_skill("turn_intent")
    assert [(e.inputs, e.outputs, e.source) for e in learned] == [
        ({"text": UNSURE[0]}, {"intent": "balance"}, "human:ana")
    ]
    with pytest.raises(ReviewError) as twice:
        runtime.answer_review(ticket.id, {"intent": "balance"}, reviewer="bo")
    assert twice.value.code == "review_already_answered"
    with pytest.raises(ReviewError) as missing:
        runtime.answer_review(999, {"intent": "balance"}, reviewer="bo")
    assert missing.value.code == "review_not_found"


def test_a_paused_item_resumes_in_another_process(tmp_path, builtin_registry):
    """The pause is a LangGraph checkpoint in SQLite: a fresh runtime (a CLI process) resumes it."""
    settings = Settings(executor="local", data_dir=tmp_path)
    with Runtime(registry=builtin_registry, executor="local", settings=settings) as first:
        first.run(review_graph(), items())
    runner = CliRunner()
    listed = runner.invoke(main_app(), ["review", "list", "--json", "--data-dir", str(tmp_path)])
    assert listed.exit_code == 0, listed.output
    tickets = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [t["item_id"] for t in tickets] == ["t2", "t3"]
    where = ["--data-dir", str(tmp_path)]
    bad = runner.invoke(
        main_app(), ["review", "answer", str(tickets[1]["id"]), "--set", "intent=nope", *where]
    )
    assert bad.exit_code == 2 and "not one of the skill's labels" in bad.output
    answer = ["review", "answer", str(tickets[1]["id"]), "--set", "intent=weather"]
    answered = runner.invoke(main_app(), [*answer, "--reviewer", "bo", *where])
    assert answered.exit_code == 0, answered.output
    line = json.loads(answered.stdout.strip().splitlines()[-1])
    assert line["id"] == "t3" and line["intent"] == "weather" and line["action"]


def test_filing_again_is_idempotent(runtime):
    """A chunk that runs again (after a crash) files the same tickets, not new ones."""
    import asyncio

    from orchestrator.review.desk import HeldItem

    graph = runtime.compile(review_graph())
    held = HeldItem(0, "x", "intent", {"input.utterance": ["blorf"], **_intent_columns()})
    first = asyncio.run(runtime.reviews.hold("job1", graph, [held]))
    again = asyncio.run(runtime.reviews.hold("job1", graph, [held]))
    assert first == again and len(runtime.reviews.queue.list(job_id="job1")) == 1


def test_review_queue_over_http(tmp_path, builtin_registry):
    keys = make_keys()
    from orchestrator.service.auth import ApiKey, new_key

    plain, digest = new_key()
    # a cross-tenant reviewer: "reviews" alone sees only the key's own jobs' tickets
    reviewer = ApiKey(name="ana", sha256=digest, scopes=frozenset({"reviews:all"}))
    graphs = tmp_path / "graphs"
    graphs.mkdir()
    (graphs / "turn_review.yaml").write_text(
        review_graph().model_copy(update={"name": "turn_review"}).to_yaml()
    )
    from orchestrator.service.app import create_app
    from orchestrator.service.settings import ServiceSettings

    settings = ServiceSettings(
        runtime=Settings(executor="local", data_dir=tmp_path, skills_dir=ROOT / "skills"),
        graphs_dir=graphs,
        api_keys=[*keys.configs, reviewer],
    )
    with (
        serve_app(create_app(settings)) as url,
        client(url, keys.writer) as writer,
        client(url, plain) as ana,
    ):
        job = writer.post("/v1/jobs", json={"graph": "turn_review", "items": items()}).json()
        assert wait_for(f"/v1/jobs/{job['id']}", writer)["status"] == "succeeded"
        denied = writer.get("/v1/reviews")
        assert denied.status_code == 403, denied.text  # the writer key is no reviewer
        waiting = ana.get("/v1/reviews", params={"job_id": job["id"]}).json()
        assert [t["item_id"] for t in waiting] == ["t2", "t3"]
        first = waiting[0]["id"]
        rejected = ana.post(f"/v1/reviews/{first}/answer", json={"answer": {"intent": "x"}})
        assert rejected.status_code == 422
        assert rejected.headers["content-type"].startswith("application/problem+json")
        done = ana.post(f"/v1/reviews/{first}/answer", json={"answer": {"intent": "balance"}})
        assert done.status_code == 200 and done.json()["reviewer"] == "ana"
        assert ana.post(f"/v1/reviews/{first}/answer", json={"answer": {}}).status_code == 409
        assert ana.get("/v1/reviews/424242").status_code == 404
        typo = ana.get("/v1/reviews", params={"stauts": "all"})  # never silently ignored
        assert typo.status_code == 400 and "'stauts'" in typo.json()["detail"]
        results = writer.get(f"/v1/jobs/{job['id']}/results").json()["results"]
        by_id = {r["id"]: r for r in results}
        assert by_id["t2"]["action"] == "transfer_to_human"
        assert by_id["t2"]["review"]["status"] == "answered"
        assert by_id["t3"]["review"]["status"] == "waiting"
        view = writer.get(f"/v1/jobs/{job['id']}").json()
        assert view["ledger"]["held_for_review"] == 1


def main_app():
    from orchestrator.cli.commands import app

    return app


def _intent_columns() -> dict[str, list]:
    return {
        "intent.intent": ["cancel"],
        "intent.confidence": [0.05],
        "intent.escalate": [True],
        "intent.answered_by": ["turn_intent@1.0.0"],
        "intent.degraded": [False],
        "opt_out.opted_out": [False],
    }


def test_an_unreachable_queue_fails_the_held_items_only(runtime, monkeypatch):
    async def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(runtime.reviews, "hold", broken)
    result = runtime.run(review_graph(), items())
    by_id = {r.id: r for r in result.results}
    assert by_id["t0"].ok and by_id["t1"].ok  # the sure items are untouched
    for held in ("t2", "t3"):
        assert by_id[held].error.code == "review_unavailable" and "disk full" in str(
            by_id[held].error.message
        )
    assert result.ledger.held_for_review == 0 and result.ledger.failed == 2
