"""A job's big-model budget holds for the whole job in the service, not per chunk: a job of many
chunks with ``llm_max_calls=2`` makes two big-model calls, and the rest of its unsure items keep
the small answer, marked degraded (real service, stub big model on loopback)."""

from __future__ import annotations

import json

from api_server import ROOT, make_keys, serve_app

from orchestrator import LocalExecutor, Runtime
from orchestrator.client import Client
from orchestrator.config import Settings
from orchestrator.llm.gateway import LLMGateway, Provider
from orchestrator.service.app import create_app
from orchestrator.service.settings import ServiceSettings
from orchestrator.testing import StubLLMServer


def answer_balance(request):
    """The big model: every escalated turn is about the balance."""
    items = json.loads(request["messages"][-1]["content"].split("Items:\n", 1)[1])
    return {"answers": {str(i["index"]): {"intent": "balance"} for i in items}}


def test_the_budget_spans_every_chunk_of_a_job(tmp_path, builtin_registry):
    keys = make_keys()
    settings = ServiceSettings(
        runtime=Settings(
            executor="local",
            data_dir=tmp_path,
            skills_dir=ROOT / "skills",
            chunk_size=4,
            escalate=True,
            llm_max_calls=2,
        ),
        graphs_dir=ROOT / "graphs",
        api_keys=keys.configs,
    )
    # gibberish: turn_intent is unsure of every one, so each chunk of 4 wants a big-model call
    items = [{"id": i, "utterance": f"blorf quux {i}"} for i in range(20)]
    with StubLLMServer(default=answer_balance) as stub:
        spec = {"name": "stub", "base_url": stub.base_url, "model": "m", "max_attempts": 1}
        runtime = Runtime(
            registry=builtin_registry,
            executor=LocalExecutor(),
            settings=settings.runtime,
            gateway=LLMGateway([Provider(**spec)]),
        )
        with (
            runtime,
            serve_app(create_app(settings, runtime=runtime)) as url,
            Client(url, api_key=keys.writer) as api,
        ):
            job = api.submit("outbound_call_turn", items)
            final = api.wait(job["id"], timeout=60, poll=0.05)
            lines = list(api.results(job["id"]))
        calls = len(stub.chat_requests)
    assert final["status"] == "succeeded" and final["ledger"]["chunks"] == 5
    assert calls == 2 and final["ledger"]["llm_calls"] == 2
    answered = [line for line in lines if line["intent"] == "balance"]
    assert len(answered) == 8  # two calls, one chunk of 4 each
    assert sum(1 for line in lines if line.get("degraded")) == 12
