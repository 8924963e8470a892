"""The stub OpenAI-compatible server: real HTTP on loopback, scripted answers and faults."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx
import openai
import pytest

from orchestrator.testing import Reply, StubLLMServer

pytestmark = pytest.mark.timeout(30)

CHAT = {"model": "m", "messages": [{"role": "user", "content": "plan the call turn"}]}


def post(stub: StubLLMServer, body: Any = CHAT, **kw: Any) -> httpx.Response:
    return httpx.post(f"{stub.base_url}/chat/completions", json=body, timeout=5, **kw)


def test_it_listens_on_loopback_with_an_ephemeral_port() -> None:
    with StubLLMServer(model="tiny") as stub:
        assert stub.base_url.startswith("http://127.0.0.1:") and stub.base_url.endswith("/v1")
        models = httpx.get(f"{stub.base_url}/models", timeout=5).json()
    assert [m["id"] for m in models["data"]] == ["tiny"]


def test_the_script_is_consumed_in_order_then_the_default_answers() -> None:
    with StubLLMServer(["first", {"intent": "yes"}], default="again") as stub:
        contents = [post(stub).json()["choices"][0]["message"]["content"] for _ in range(4)]
    assert contents == ["first", '{"intent": "yes"}', "again", "again"]


def test_answers_carry_realistic_usage() -> None:
    with StubLLMServer(["three word answer"]) as stub:
        body = post(stub).json()
    assert body["object"] == "chat.completion" and body["model"] == "m"
    assert body["usage"] == {"prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 7}


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, openai.BadRequestError),
        (401, openai.AuthenticationError),
        (404, openai.NotFoundError),
        (422, openai.UnprocessableEntityError),
        (500, openai.InternalServerError),
        (503, openai.InternalServerError),
    ],
)
def test_status_codes_map_to_the_openai_client_errors(status: int, error: type) -> None:
    with StubLLMServer([Reply.error(status, "scripted")]) as stub:
        client = openai.OpenAI(base_url=stub.base_url, api_key="k", max_retries=0)
        with pytest.raises(error, match="scripted") as raised:
            client.chat.completions.create(**CHAT)
        client.close()
    assert raised.value.status_code == status


def test_an_endless_500_default() -> None:
    with StubLLMServer(default=Reply.error(500)) as stub:
        assert [post(stub).status_code for _ in range(3)] == [500, 500, 500]


def test_rate_limited_sends_retry_after() -> None:
    with StubLLMServer([Reply.rate_limited(retry_after=2)]) as stub:
        response = post(stub)
    assert response.status_code == 429 and response.headers["retry-after"] == "2"


def test_malformed_sends_a_body_that_is_not_json() -> None:
    with StubLLMServer([Reply.malformed()]) as stub:
        response = post(stub)
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)


def test_a_hang_outlasts_a_client_timeout_and_never_blocks_close() -> None:
    stub = StubLLMServer(default=Reply.hang(60))
    started = time.perf_counter()
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{stub.base_url}/chat/completions", json=CHAT, timeout=0.3)
    # a second client is still waiting when the server closes: it gets no answer, at once
    outcome: list[BaseException] = []

    def wait_for_answer() -> None:
        try:
            post(stub)
        except httpx.HTTPError as exc:
            outcome.append(exc)

    waiting = threading.Thread(target=wait_for_answer, daemon=True)
    waiting.start()
    time.sleep(0.2)
    stub.close()
    waiting.join(timeout=5)
    assert not waiting.is_alive() and len(outcome) == 1
    assert time.perf_counter() - started < 3


def test_a_slow_answer_arrives_after_its_delay() -> None:
    with StubLLMServer([Reply(content="late", delay_s=0.3)]) as stub:
        started = time.perf_counter()
        content = post(stub).json()["choices"][0]["message"]["content"]
    assert content == "late" and time.perf_counter() - started >= 0.3


def test_a_responder_answers_from_the_request() -> None:
    def planner(request: dict[str, Any]) -> dict[str, Any]:
        task = request["messages"][-1]["content"]
        return {"steps": [{"id": "s1", "skill": "no_such_skill", "task": task}]}

    with StubLLMServer(default=planner) as stub:
        plan = json.loads(post(stub).json()["choices"][0]["message"]["content"])
    assert plan["steps"][0] == {"id": "s1", "skill": "no_such_skill", "task": "plan the call turn"}


def test_a_responder_may_return_a_full_reply() -> None:
    with StubLLMServer(default=lambda request: Reply.error(503)) as stub:
        assert post(stub).status_code == 503


def test_every_request_is_recorded_without_the_key_value() -> None:
    with StubLLMServer(api_key="sk-secret") as stub:
        ok = post(stub, headers={"Authorization": "Bearer sk-secret", "X-Trace": "t1"})
        refused = post(stub, headers={"Authorization": "Bearer sk-wrong"})
    assert ok.status_code == 200 and refused.status_code == 401
    first, second = stub.requests
    assert first.method == "POST" and first.path == "/v1/chat/completions"
    assert first.json == CHAT and json.loads(first.body) == CHAT
    assert first.headers["authorization"] == "<redacted>" and first.headers["x-trace"] == "t1"
    assert "sk-secret" not in repr(stub.requests) and second.json == CHAT


def test_enqueue_appends_to_the_script() -> None:
    with StubLLMServer(default="default") as stub:
        stub.enqueue("queued")
        contents = [post(stub).json()["choices"][0]["message"]["content"] for _ in range(2)]
    assert contents == ["queued", "default"]


def test_unknown_paths_and_non_json_bodies_are_refused() -> None:
    with StubLLMServer() as stub:
        assert httpx.post(f"{stub.base_url}/completions", json={}, timeout=5).status_code == 404
        bad = httpx.post(f"{stub.base_url}/chat/completions", content=b"nope", timeout=5)
    assert bad.status_code == 400
    assert [r.path for r in stub.chat_requests] == ["/v1/chat/completions"]
