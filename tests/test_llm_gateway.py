"""The LLM gateway against the stub OpenAI-compatible server: real HTTP on loopback.

Backoff waits go through an injected fake ``sleep`` (recorded, not slept) and the circuit
breakers read an injected clock, so these tests assert the waits without spending them.
"""

from __future__ import annotations

import asyncio
import doctest
import hashlib
import json
import logging
import socket
import time
from pathlib import Path

import pytest
import structlog
from pydantic import BaseModel

from orchestrator.accounting.ledger import Ledger
from orchestrator.errors import ConfigError, RunError
from orchestrator.llm.audit import AuditLog
from orchestrator.llm.gateway import (
    Budget,
    BudgetExceeded,
    LLMGateway,
    LLMOutputInvalid,
    LLMRequestRejected,
    LLMSettings,
    LLMUnavailable,
    Provider,
)
from orchestrator.testing import Reply, StubLLMServer

pytestmark = pytest.mark.timeout(60)

MESSAGES = [{"role": "user", "content": "Did the customer agree to the callback?"}]


class Intent(BaseModel):
    intent: str


class FakeSleep:
    """Records every wait the gateway asks for, and returns at once."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def provider(stub_or_url: StubLLMServer | str, name: str = "primary", **kw: object) -> Provider:
    url = stub_or_url if isinstance(stub_or_url, str) else stub_or_url.base_url
    settings: dict[str, object] = {"timeout_s": 5.0, "max_attempts": 3, **kw}
    return Provider(name=name, base_url=url, model=f"{name}-model", **settings)  # type: ignore[arg-type]


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def sha(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


@pytest.fixture
def audit(tmp_path: Path):
    with AuditLog(tmp_path / "orchestrator.db") as log:
        yield log


@pytest.fixture
def sleep() -> FakeSleep:
    return FakeSleep()


def make_gateway(
    providers: list[Provider], sleep: FakeSleep, audit: AuditLog | None = None, **kw: object
) -> LLMGateway:
    return LLMGateway(providers, audit=audit, sleep=sleep, **kw)  # type: ignore[arg-type]


# --- retries -------------------------------------------------------------------------------------


def test_500_500_200_succeeds_after_exactly_three_requests(sleep: FakeSleep) -> None:
    with StubLLMServer([Reply.error(500), Reply.error(500), "callback agreed"]) as stub:
        gateway = make_gateway([provider(stub)], sleep, backoff_base_s=0.5, backoff_max_s=8)
        ledger = Ledger(job_id="job-1", graph="g")
        answer = gateway.complete_sync(
            MESSAGES, budget=Budget(), purpose="escalation", ledger=ledger
        )
    assert answer.text == "callback agreed"
    assert answer.attempts == 3 and len(stub.chat_requests) == 3
    assert answer.provider == "primary" and answer.model == "primary-model"
    # exponential backoff with jitter: base * 2**n + uniform(0, base)
    assert len(sleep.waits) == 2
    assert 0.5 <= sleep.waits[0] <= 1.0 and 1.0 <= sleep.waits[1] <= 1.5
    # only the answered request is a billable call
    assert ledger.llm_calls == 1
    assert ledger.llm_prompt_tokens == answer.prompt_tokens == 7  # whitespace tokens of MESSAGES
    assert ledger.llm_completion_tokens == answer.completion_tokens == 2


def test_endless_500_fails_after_exactly_max_attempts(sleep: FakeSleep) -> None:
    with StubLLMServer(default=Reply.error(500)) as stub:
        gateway = make_gateway([provider(stub, max_attempts=4)], sleep, breaker_threshold=10)
        with pytest.raises(LLMUnavailable) as raised:
            gateway.complete_sync(MESSAGES, budget=Budget(), purpose="escalation")
    assert len(stub.chat_requests) == 4
    error = raised.value
    assert isinstance(error, RunError) and error.code == "llm_unavailable"
    assert "primary" in str(error) and "HTTP 500" in str(error) and "4 attempt" in str(error)
    assert error.errors == {"primary": "HTTP 500 after 4 attempt(s)"}
    assert len(sleep.waits) == 3


def test_a_hang_fails_within_the_timeout_bound(sleep: FakeSleep) -> None:
    with StubLLMServer(default=Reply.hang(30)) as stub:
        gateway = make_gateway([provider(stub, timeout_s=0.5, max_attempts=2)], sleep)
        started = time.perf_counter()
        with pytest.raises(LLMUnavailable, match=r"timed out after 0\.5s after 2 attempt"):
            gateway.complete_sync(MESSAGES, budget=Budget(), purpose="escalation")
        elapsed = time.perf_counter() - started
        closing = time.perf_counter()
    assert time.perf_counter() - closing < 2.0  # the stub's close cuts its hangs short
    assert len(stub.chat_requests) == 2
    assert elapsed < 0.5 * 2 + 1.0


def test_429_waits_for_retry_after_then_succeeds(sleep: FakeSleep) -> None:
    with StubLLMServer([Reply.rate_limited(retry_after=2), "ok now"]) as stub:
        gateway = make_gateway([provider(stub)], sleep)
        answer = gateway.complete_sync(MESSAGES, budget=Budget(), purpose="escalation")
    assert sleep.waits == [2.0]
    assert answer.text == "ok now" and len(stub.chat_requests) == 2


def test_retry_after_longer_than_we_wait_moves_to_the_next_provider(sleep: FakeSleep) -> None:
    with (
        StubLLMServer([Reply.rate_limited(retry_after=120)]) as primary,
        StubLLMServer(["from backup"]) as backup,
    ):
        gateway = make_gateway(
            [provider(primary), provider(backup, "backup")], sleep, max_retry_after_s=30
        )
        answer = gateway.complete_sync(MESSAGES, budget=Budget(), purpose="escalation")
    assert sleep.waits == []
    assert len(primary.chat_requests) == 1 and answer.provider == "backup"


def test_400_is_not_retried_and_not_sent_elsewhere(sleep: FakeSleep) -> None:
    with (
        StubLLMServer([Reply.error(400, "response_format is not supported")]) as primary,
        StubLLMServer(["unused"]) as backup,
    ):
        gateway = make_gateway([provider(primary), provider(backup, "backup")], sleep)
        with pytest.raises(LLMRequestRejected) as raised:
            gateway.complete_sync(MESSAGES, budget=Budget(), purpose="escalation")
    assert raised.value.code == "llm_request_rejected"
    assert "response_format is not supported" in str(raised.value)
    assert len(primary.chat_requests) == 1 and backup.chat_requests == []
    assert gateway.circuit_state("primary") == "closed"  # our request's fault, not the provider's


def test_401_skips_to_the_next_provider_without_retrying(
    sleep: FakeSleep, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PRIMARY_KEY", "sk-wrong")
    with (
        StubLLMServer(api_key="sk-right") as primary,
        StubLLMServer(["from backup"]) as backup,
    ):
        gateway = make_gateway(
            [provider(primary, api_key_env="PRIMARY_KEY"), provider(backup, "backup")], sleep
        )
        answer = gateway.complete_sync(MESSAGES, budget=Budget(), purpose="escalation")
    assert len(primary.chat_requests) == 1 and answer.provider == "backup"


# --- fallback ------------------------------------------------------------------------------------


@pytest.mark.parametrize("failure", ["endless_500", "closed_port"])
def test_a_down_primary_falls_back_and_the_records_name_who_answered(
    failure: str, sleep: FakeSleep, audit: AuditLog
) -> None:
    with StubLLMServer(default=Reply.error(503)) as down, StubLLMServer(["yes"]) as backup:
        primary_url = down.base_url if failure == "endless_500" else closed_port_url()
        gateway = make_gateway(
            [provider(primary_url, max_attempts=2), provider(backup, "backup")], sleep, audit
        )
        ledger = Ledger(job_id="job-7", graph="g")
        answer = gateway.complete_sync(
            MESSAGES, budget=Budget(), purpose="escalation", job_id="job-7", ledger=ledger
        )
    assert answer.provider == "backup" and answer.model == "backup-model"
    assert answer.attempts == 3
    assert ledger.llm_calls == 1 and ledger.llm_completion_tokens == 1
    rows = audit.records(job_id="job-7")
    expected_error = "http_503" if failure == "endless_500" else "connection_error"
    assert [(r.provider, r.outcome, r.error_code) for r in rows] == [
        ("primary", "error", expected_error),
        ("primary", "error", expected_error),
        ("backup", "ok", None),
    ]


# --- structured output ---------------------------------------------------------------------------


def test_json_schema_is_requested_and_the_answer_parsed(sleep: FakeSleep) -> None:
    with StubLLMServer([{"intent": "agree"}]) as stub:
        gateway = make_gateway([provider(stub)], sleep)
        answer = gateway.complete_sync(
            MESSAGES, schema=Intent, budget=Budget(), purpose="escalation"
        )
    assert answer.parsed == Intent(intent="agree")
    body = stub.chat_requests[0].json
    assert body["model"] == "primary-model" and body["messages"] == MESSAGES
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["schema"] == Intent.model_json_schema()


def test_providers_without_json_schema_get_json_object_and_instructions(sleep: FakeSleep) -> None:
    with StubLLMServer(['```json\n{"intent": "agree"}\n```']) as stub:
        gateway = make_gateway([provider(stub, json_schema=False)], sleep)
        answer = gateway.complete_sync(
            MESSAGES, schema=Intent, budget=Budget(), purpose="escalation"
        )
    assert answer.parsed == Intent(intent="agree")  # a markdown fence is tolerated
    body = stub.chat_requests[0].json
    assert body["response_format"] == {"type": "json_object"}
    assert body["messages"][0]["role"] == "system" and '"intent"' in body["messages"][0]["content"]
    assert body["messages"][1:] == MESSAGES


def test_schema_invalid_twice_is_llm_output_invalid_after_exactly_two_requests(
    sleep: FakeSleep, audit: AuditLog
) -> None:
    with StubLLMServer(default={"mood": "happy"}) as stub:
        gateway = make_gateway([provider(stub)], sleep, audit)
        with pytest.raises(LLMOutputInvalid) as raised:
            gateway.complete_sync(MESSAGES, schema=Intent, budget=Budget(), purpose="escalation")
    assert raised.value.code == "llm_output_invalid"
    assert "Intent" in str(raised.value) and "intent: Field required" in str(raised.value)
    assert len(stub.chat_requests) == 2
    # the re-ask carries the bad answer and the validation error
    reask = stub.chat_requests[1].json["messages"]
    assert reask[: len(MESSAGES)] == MESSAGES
    assert reask[-2] == {"role": "assistant", "content": '{"mood": "happy"}'}
    assert reask[-1]["role"] == "user" and "intent: Field required" in reask[-1]["content"]
    assert [r.outcome for r in audit.records()] == ["output_invalid", "output_invalid"]


def test_a_good_reask_succeeds_and_both_calls_are_counted(sleep: FakeSleep) -> None:
    with StubLLMServer(["not json at all", {"intent": "agree"}]) as stub:
        gateway = make_gateway([provider(stub)], sleep)
        ledger = Ledger(job_id="j", graph="g")
        answer = gateway.complete_sync(
            MESSAGES, schema=Intent, budget=Budget(), purpose="escalation", ledger=ledger
        )
    assert answer.parsed == Intent(intent="agree")
    assert len(stub.chat_requests) == 2 and ledger.llm_calls == 2
    assert answer.prompt_tokens == ledger.llm_prompt_tokens
    assert answer.completion_tokens == 4 + 2  # both answers, whitespace tokens


def test_a_malformed_body_gets_one_reask_then_llm_output_invalid(
    sleep: FakeSleep, audit: AuditLog
) -> None:
    with StubLLMServer(default=Reply.malformed()) as stub:
        gateway = make_gateway([provider(stub)], sleep, audit)
        with pytest.raises(LLMOutputInvalid, match="not a valid chat completion"):
            gateway.complete_sync(MESSAGES, schema=Intent, budget=Budget(), purpose="escalation")
    assert len(stub.chat_requests) == 2
    assert [r.outcome for r in audit.records()] == ["malformed_response"] * 2


def test_a_malformed_body_then_a_good_one_succeeds(sleep: FakeSleep) -> None:
    with StubLLMServer([Reply.malformed(), {"intent": "agree"}]) as stub:
        gateway = make_gateway([provider(stub)], sleep)
        answer = gateway.complete_sync(
            MESSAGES, schema=Intent, budget=Budget(), purpose="escalation"
        )
    assert answer.parsed == Intent(intent="agree") and len(stub.chat_requests) == 2


# --- budget --------------------------------------------------------------------------------------


def test_max_calls_stops_the_third_call_before_it_is_sent(sleep: FakeSleep) -> None:
    with StubLLMServer(default="fine") as stub:
        gateway = make_gateway([provider(stub)], sleep)
        budget = Budget(max_calls=2)
        gateway.complete_sync(MESSAGES, budget=budget, purpose="escalation")
        gateway.complete_sync(MESSAGES, budget=budget, purpose="escalation")
        with pytest.raises(BudgetExceeded) as raised:
            gateway.complete_sync(MESSAGES, budget=budget, purpose="escalation")
    assert raised.value.code == "budget_exceeded" and "2 of 2 calls" in str(raised.value)
    assert len(stub.chat_requests) == 2 and budget.calls == 2


def test_max_tokens_stops_after_the_call_that_went_over(sleep: FakeSleep) -> None:
    with StubLLMServer(default="a rather long answer") as stub:
        gateway = make_gateway([provider(stub)], sleep)
        budget = Budget(max_tokens=10)
        ledger = Ledger(job_id="j", graph="g")
        with pytest.raises(BudgetExceeded, match="11 tokens used"):
            gateway.complete_sync(MESSAGES, budget=budget, purpose="escalation", ledger=ledger)
        assert ledger.llm_calls == 1 and budget.tokens == 11  # the spend is still accounted
        with pytest.raises(BudgetExceeded):
            gateway.complete_sync(MESSAGES, budget=budget, purpose="escalation")
    assert len(stub.chat_requests) == 1


def test_failed_attempts_do_not_spend_calls(sleep: FakeSleep) -> None:
    with StubLLMServer([Reply.error(500), Reply.error(502), "fine"]) as stub:
        gateway = make_gateway([provider(stub)], sleep)
        budget = Budget(max_calls=1)
        gateway.complete_sync(MESSAGES, budget=budget, purpose="escalation")
    assert budget.calls == 1 and len(stub.chat_requests) == 3


def test_concurrent_calls_share_one_budget(sleep: FakeSleep) -> None:
    async def main(gateway: LLMGateway, budget: Budget) -> list[object]:
        calls = [gateway.complete(MESSAGES, budget=budget, purpose="escalation") for _ in range(5)]
        try:
            return await asyncio.gather(*calls, return_exceptions=True)
        finally:
            await gateway.aclose()

    with StubLLMServer(default=Reply(content="fine", delay_s=0.2)) as stub:
        gateway = make_gateway([provider(stub)], sleep)
        budget = Budget(max_calls=3)
        results = asyncio.run(main(gateway, budget))
    refused = [r for r in results if isinstance(r, BudgetExceeded)]
    assert len(refused) == 2 and len(stub.chat_requests) == 3 and budget.calls == 3


# --- circuit breaker -----------------------------------------------------------------------------


def test_the_breaker_opens_skips_the_provider_and_half_opens_after_cooldown(
    sleep: FakeSleep,
) -> None:
    clock = FakeClock()
    script = [Reply.error(500)] * 4
    with (
        StubLLMServer(script, default="primary is back") as primary,
        StubLLMServer(default="from backup") as backup,
    ):
        gateway = make_gateway(
            [provider(primary, max_attempts=3), provider(backup, "backup")],
            sleep,
            breaker_threshold=3,
            breaker_cooldown_s=30,
            clock=clock,
        )

        def ask() -> str:
            return gateway.complete_sync(MESSAGES, budget=Budget(), purpose="p").provider

        assert ask() == "backup" and len(primary.chat_requests) == 3
        assert gateway.circuit_state("primary") == "open"
        assert ask() == "backup" and len(primary.chat_requests) == 3  # skipped while open
        clock.now += 29
        assert ask() == "backup" and len(primary.chat_requests) == 3
        clock.now += 2
        assert gateway.circuit_state("primary") == "half_open"
        assert ask() == "backup" and len(primary.chat_requests) == 4  # one trial, failed
        assert gateway.circuit_state("primary") == "open"
        clock.now += 31
        assert ask() == "primary" and len(primary.chat_requests) == 5  # trial succeeded
        assert gateway.circuit_state("primary") == "closed"


def test_all_circuits_open_is_llm_unavailable_without_a_request(sleep: FakeSleep) -> None:
    with StubLLMServer(default=Reply.error(500)) as stub:
        gateway = make_gateway([provider(stub)], sleep, breaker_threshold=3)
        with pytest.raises(LLMUnavailable):
            gateway.complete_sync(MESSAGES, budget=Budget(), purpose="p")
        with pytest.raises(LLMUnavailable, match="circuit open"):
            gateway.complete_sync(MESSAGES, budget=Budget(), purpose="p")
    assert len(stub.chat_requests) == 3


# --- audit and secrets ---------------------------------------------------------------------------


def test_audit_rows_match_what_the_servers_received(sleep: FakeSleep, audit: AuditLog) -> None:
    with (
        StubLLMServer([Reply.error(500)], default=Reply.error(500)) as primary,
        StubLLMServer([Reply.error(502), {"mood": "x"}, {"intent": "agree"}]) as backup,
    ):
        gateway = make_gateway(
            [
                provider(primary, max_attempts=2, price_per_1m_prompt_tokens=1.0),
                provider(backup, "backup", price_per_1m_completion_tokens=2.0),
            ],
            sleep,
            audit,
        )
        answer = gateway.complete_sync(
            MESSAGES, schema=Intent, budget=Budget(), purpose="escalation", job_id="job-9"
        )
    received = [("primary", r) for r in primary.chat_requests] + [
        ("backup", r) for r in backup.chat_requests
    ]
    # order of attempts: primary x2, backup (502, invalid); re-ask: primary x2, backup (ok)
    order = [0, 1, 4, 5, 2, 3, 6]
    received = [received[i] for i in order]
    rows = audit.records(job_id="job-9")
    assert len(rows) == len(received) == 7
    for row, (name, request) in zip(rows, received, strict=True):
        assert row.provider == name and row.purpose == "escalation"
        assert row.request_sha256 == sha(request.body)
        assert row.base_url_host.startswith("127.0.0.1:")
    assert [r.outcome for r in rows] == [
        "error",
        "error",
        "error",
        "output_invalid",
        "error",
        "error",
        "ok",
    ]
    assert answer.provider == "backup"
    assert answer.cost_usd == pytest.approx(sum(r.cost_usd for r in rows))
    assert answer.cost_usd == pytest.approx((2 + 2) * 2.0 / 1e6)  # completion tokens only


def test_the_api_key_never_reaches_logs_or_the_audit_table(
    sleep: FakeSleep,
    audit: AuditLog,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = "sk-test-7f3a9c-never-log-me"
    monkeypatch.setenv("STUB_API_KEY", secret)
    caplog.set_level(logging.DEBUG)  # the openai and httpx loggers too, at their most verbose
    with (
        StubLLMServer([Reply.error(500), "fine"], api_key=secret) as stub,
        structlog.testing.capture_logs() as logs,
    ):
        gateway = make_gateway([provider(stub, api_key_env="STUB_API_KEY")], sleep, audit)
        answer = gateway.complete_sync(MESSAGES, budget=Budget(), purpose="p", job_id="j")
        with pytest.raises(LLMUnavailable) as raised:
            make_gateway(
                [provider(closed_port_url(), api_key_env="STUB_API_KEY", max_attempts=1)],
                sleep,
                audit,
            ).complete_sync(MESSAGES, budget=Budget(), purpose="p", job_id="j")
    assert answer.text == "fine"  # the key was sent: the stub checks it
    assert len(logs) == 3 and all(entry["event"] == "llm.attempt" for entry in logs)
    assert secret not in repr(logs) and secret not in str(raised.value)
    assert caplog.records and secret not in caplog.text
    assert MESSAGES[0]["content"] not in repr(logs)  # no content either
    assert secret not in repr(audit.records())
    assert secret.encode() not in Path(audit.path).read_bytes()
    assert all(r.headers["authorization"] == "<redacted>" for r in stub.requests)
    assert secret not in repr(gateway)


def test_a_missing_key_variable_is_a_setup_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    with pytest.raises(ConfigError, match=r"\$NOT_SET_ANYWHERE"):
        LLMGateway([provider("http://127.0.0.1:1/v1", api_key_env="NOT_SET_ANYWHERE")])


def test_cost_comes_from_the_price_table(sleep: FakeSleep) -> None:
    with StubLLMServer(["two words"]) as stub:
        gateway = make_gateway(
            [provider(stub, price_per_1m_prompt_tokens=3.0, price_per_1m_completion_tokens=15.0)],
            sleep,
        )
        ledger = Ledger(job_id="j", graph="g")
        answer = gateway.complete_sync(MESSAGES, budget=Budget(), purpose="p", ledger=ledger)
    expected = (7 * 3.0 + 2 * 15.0) / 1e6
    assert answer.cost_usd == pytest.approx(expected)
    assert ledger.llm_cost_usd == pytest.approx(expected)


# --- configuration -------------------------------------------------------------------------------


def test_providers_from_a_json_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    providers = [
        {"name": "vllm", "base_url": "http://gpu-box:8000/v1", "model": "Qwen/Qwen2.5-7B-Instruct"},
        {"name": "openai", "base_url": "https://api.openai.com/v1", "model": "gpt-4o-mini",
         "api_key_env": "OPENAI_API_KEY", "price_per_1m_prompt_tokens": 0.15},
    ]  # fmt: skip
    monkeypatch.setenv("ORCHESTRATOR_LLM_PROVIDERS", json.dumps(providers))
    monkeypatch.setenv("ORCHESTRATOR_LLM_BREAKER_THRESHOLD", "5")
    settings = LLMSettings()
    loaded = settings.load_providers()
    assert [p.name for p in loaded] == ["vllm", "openai"]
    assert loaded[1].api_key_env == "OPENAI_API_KEY" and loaded[0].json_schema
    assert settings.breaker_threshold == 5


def test_providers_from_a_yaml_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "llm.yaml"
    path.write_text(
        "providers:\n"
        "  - name: ollama\n"
        "    base_url: http://127.0.0.1:11434/v1/\n"
        "    model: llama3.1:8b\n"
        "    json_schema: false\n"
    )
    monkeypatch.setenv("ORCHESTRATOR_LLM_PROVIDERS_FILE", str(path))
    gateway = LLMGateway.from_settings()
    (only,) = gateway.providers
    assert only.base_url == "http://127.0.0.1:11434/v1" and not only.json_schema
    assert only.host == "127.0.0.1:11434"


def test_malformed_provider_config_is_a_config_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("providers:\n  - name: x\n    base_url: not-a-url\n    model: m\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml"):
        LLMSettings(providers_file=bad).load_providers()
    with pytest.raises(ConfigError, match="no LLM provider"):
        LLMGateway([])


# --- API shape -----------------------------------------------------------------------------------


def test_complete_sync_refuses_to_run_inside_an_event_loop(sleep: FakeSleep) -> None:
    gateway = make_gateway([provider("http://127.0.0.1:1/v1")], sleep)

    async def inside() -> None:
        gateway.complete_sync(MESSAGES, budget=Budget(), purpose="p")

    with pytest.raises(RuntimeError, match="await complete"):
        asyncio.run(inside())


def test_the_docstring_examples_run() -> None:
    import orchestrator.llm.audit
    import orchestrator.llm.gateway
    import orchestrator.testing.stub_llm

    with structlog.testing.capture_logs():
        for module in (
            orchestrator.llm.gateway,
            orchestrator.llm.audit,
            orchestrator.testing.stub_llm,
        ):
            result = doctest.testmod(module)
            assert result.failed == 0 and result.attempted > 0, module.__name__


def test_the_documented_yaml_example_loads(tmp_path: Path) -> None:
    import orchestrator.llm.gateway

    doc = orchestrator.llm.gateway.__doc__ or ""
    block = doc.split("A YAML example::\n\n", 1)[1].split("\n\n", 1)[0]
    path = tmp_path / "llm.yaml"
    path.write_text(block)
    loaded = LLMSettings(providers_file=path).load_providers()
    assert [p.name for p in loaded] == ["vllm", "ollama", "openai"]
