"""The LLM gateway: every call to a big model goes through here.

Providers are OpenAI-compatible endpoints (OpenAI, vLLM, Ollama, llama.cpp server, ...) tried in
order: the first is the primary, the rest are fallbacks. The gateway is the only retry layer (the
``openai`` client runs with ``max_retries=0``)::

    complete(messages, schema=Plan, budget=Budget(max_calls=5), purpose="plan")
      │  budget check: BudgetExceeded before a call that would go over
      ▼
    for each provider, in order (skipped while its circuit breaker is open):
      attempt 1..max_attempts      timeout_s each
        2xx                      → answer
        429 / 408 / 409 / 5xx,   → wait (Retry-After if given, else exponential backoff with
        timeout, connection error   jitter) and retry; Retry-After beyond max_retry_after_s
                                    → give up on this provider at once
        401 / 403 / 404 / other 4xx → no retry: the next provider (its key, its model)
        400 / 413 / 422          → LLMRequestRejected: the request itself is wrong, no provider
                                    will take it (e.g. a provider without json_schema support
                                    configured with json_schema: true)
      every provider failed      → LLMUnavailable, naming each provider's last error
      ▼
    validate with pydantic (always, even when the provider enforced the schema)
      invalid (or a malformed body) → re-ask once, the validation error appended
      invalid again              → LLMOutputInvalid

Accounting. Every HTTP attempt, answered or not, is one row in the :class:`~orchestrator.llm.audit.
AuditLog` (provider, model, host, SHA-256 of the exact request body, tokens, latency, outcome).
An *answered* request (HTTP 200: what a provider bills) is one call in the :class:`Budget` and in
the job's :class:`~orchestrator.accounting.ledger.Ledger` (``llm_calls``, tokens, cost from the provider's
price per million tokens); failed attempts cost nothing there and are bounded by
``max_attempts``.

Configuration. :class:`LLMSettings` reads ``ORCHESTRATOR_LLM_PROVIDERS`` (a JSON list) or
``ORCHESTRATOR_LLM_PROVIDERS_FILE`` (a YAML file with a ``providers:`` list). Keys never appear in
config: ``api_key_env`` names the environment variable that holds one. A YAML example::

    providers:
      - name: vllm                      # vLLM: `vllm serve Qwen/Qwen2.5-7B-Instruct`
        base_url: http://gpu-box:8000/v1
        model: Qwen/Qwen2.5-7B-Instruct
        timeout_s: 60
      - name: ollama                    # Ollama: `ollama serve`
        base_url: http://127.0.0.1:11434/v1
        model: llama3.1:8b
        json_schema: false              # ask for {"type": "json_object"} plus instructions
      - name: openai
        base_url: https://api.openai.com/v1
        model: gpt-4o-mini
        api_key_env: OPENAI_API_KEY
        price_per_1m_prompt_tokens: 0.15
        price_per_1m_completion_tokens: 0.60

The same as an environment variable::

    ORCHESTRATOR_LLM_PROVIDERS='[{"name": "vllm", "base_url": "http://gpu-box:8000/v1",
                                  "model": "Qwen/Qwen2.5-7B-Instruct"}]'

Logs (structlog, one ``llm.attempt`` line per attempt) carry provider, model, outcome, status,
tokens, latency and the request hash; never message content, never a key.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar, overload

from pydantic import BaseModel, ValidationError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)
from tenacity.stop import stop_base

from orchestrator.errors import (
    BudgetExceeded,
    ConfigError,
    LLMOutputInvalid,
    LLMRequestRejected,
    LLMUnavailable,
)
from orchestrator.llm.audit import AuditLog, AuditRecord
from orchestrator.llm.providers import (
    CircuitBreaker,
    LLMSettings,
    Provider,
    chat_request,
    error_detail,
    message_text,
    open_client,
    read_key,
    recording_request_hashes,
    retry_after_s,
    usage_of,
)
from orchestrator.telemetry.logs import get_logger

if TYPE_CHECKING:
    from openai import AsyncOpenAI

    from orchestrator.accounting.ledger import Ledger

__all__ = [
    "Budget",
    "BudgetExceeded",
    "Completion",
    "LLMGateway",
    "LLMOutputInvalid",
    "LLMRequestRejected",
    "LLMSettings",
    "LLMUnavailable",
    "Provider",
]

log = get_logger(__name__)

ModelT = TypeVar("ModelT", bound=BaseModel)
ParsedT = TypeVar("ParsedT")

#: tokens per answer when a provider sets no ``max_output_tokens`` (a plan or a batch of
#: escalation answers fits well within it)
DEFAULT_MAX_OUTPUT_TOKENS = 4096


# --- budget and result ----------------------------------------------------------------------------


class Budget:
    """A job's allowance of big-model calls and tokens (``None``: unlimited); shared, thread-safe.

    A call is a request the provider answered. ``reserve`` before sending raises
    :class:`BudgetExceeded` when the calls (counting those in flight) or tokens are already spent;
    ``commit`` adds an answer's usage and raises once the tokens went over.
    """

    def __init__(self, *, max_calls: int | None = None, max_tokens: int | None = None) -> None:
        self.max_calls, self.max_tokens = max_calls, max_tokens
        self.calls = 0
        self.tokens = 0
        self._in_flight = 0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"Budget(calls={self.calls}/{self.max_calls}, tokens={self.tokens}/{self.max_tokens})"
        )

    def reserve(self, purpose: str) -> None:
        with self._lock:
            if self.max_calls is not None and self.calls + self._in_flight >= self.max_calls:
                raise BudgetExceeded(
                    f"big-model budget spent: {self.calls} of {self.max_calls} calls used, "
                    f"refusing another ({purpose}). Raise max_calls if the job needs more."
                )
            if self.max_tokens is not None and self.tokens >= self.max_tokens:
                raise BudgetExceeded(
                    f"big-model budget spent: {self.tokens} of {self.max_tokens} tokens used, "
                    f"refusing another call ({purpose}). Raise max_tokens if the job needs more."
                )
            self._in_flight += 1

    def release(self) -> None:
        """Give a reservation back (the attempt got no answer)."""
        with self._lock:
            self._in_flight -= 1

    def commit(self, tokens: int, purpose: str) -> None:
        with self._lock:
            self._in_flight -= 1
            self.calls += 1
            self.tokens += tokens
            if self.max_tokens is not None and self.tokens > self.max_tokens:
                raise BudgetExceeded(
                    f"big-model budget spent: {self.tokens} tokens used, over the "
                    f"{self.max_tokens} allowed ({purpose}). Raise max_tokens if the job needs more."
                )


@dataclass(frozen=True)
class Completion(Generic[ParsedT]):
    """What :meth:`LLMGateway.complete` returns: the answer and what it cost.

    Tokens and cost add up every answered request of the call (a re-ask included); ``attempts``
    counts every HTTP attempt; ``provider``/``model`` name who gave the final answer.
    """

    parsed: ParsedT
    text: str
    provider: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    latency_s: float
    attempts: int


# --- internals ------------------------------------------------------------------------------------


class _AttemptFailed(Exception):
    """One attempt failed; ``retryable`` and ``retry_after`` steer the retry loop."""

    def __init__(self, why: str, *, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(why)
        self.why, self.retryable, self.retry_after = why, retryable, retry_after


class _StopOnLongRetryAfter(stop_base):
    """Stop retrying a provider that asks us to come back later than we are willing to wait."""

    def __init__(self, max_wait_s: float) -> None:
        self.max_wait_s = max_wait_s

    def __call__(self, retry_state: RetryCallState) -> bool:
        failure = retry_state.outcome.exception() if retry_state.outcome else None
        return (
            isinstance(failure, _AttemptFailed)
            and failure.retry_after is not None
            and failure.retry_after > self.max_wait_s
        )


@dataclass
class _Answer:
    provider: Provider
    text: str | None  # None: a 200 whose body is not a chat completion
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    request_sha256: str
    attempt: int


@dataclass
class _Call:
    """The state of one ``complete`` call, threaded through its attempts."""

    purpose: str
    job_id: str | None
    budget: Budget
    attempts: int = 0
    answers: list[_Answer] = field(default_factory=list)


def _strip_fence(text: str) -> str:
    """Small models wrap JSON in a markdown fence: take what is inside."""
    match = re.fullmatch(r"\s*```[a-zA-Z]*\s*\n(.*)\n\s*```\s*", text, flags=re.DOTALL)
    return match.group(1) if match else text


def _describe(error: ValidationError) -> str:
    """Validation errors without the offending input values (they may hold job data)."""
    issues = [
        f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in error.errors()
    ]
    return "; ".join(issues[:10])


# --- the gateway ----------------------------------------------------------------------------------


class LLMGateway:
    """Calls big models through an ordered list of OpenAI-compatible providers.

    ``audit`` receives one row per HTTP attempt. A provider's circuit opens after
    ``breaker_threshold`` consecutive failed attempts and is skipped for ``breaker_cooldown_s``,
    then lets one trial attempt through. Retries wait ``backoff_base_s * 2**n`` plus up to
    ``backoff_base_s`` of jitter (at most ``backoff_max_s``), or what ``Retry-After`` asks for when
    that is at most ``max_retry_after_s``. ``sleep`` (async, for those waits) and ``clock``
    (monotonic seconds, for the breakers) are injectable so tests need not wait. A runnable
    example against the stub server::

        >>> from pydantic import BaseModel
        >>> from orchestrator.testing import Reply, StubLLMServer
        >>> class Intent(BaseModel):
        ...     intent: str
        >>> with StubLLMServer([Reply.error(503), {"intent": "yes"}]) as stub:
        ...     gateway = LLMGateway([Provider(name="local", base_url=stub.base_url, model="m")])
        ...     answer = gateway.complete_sync(
        ...         [{"role": "user", "content": "Did the customer agree?"}],
        ...         schema=Intent, budget=Budget(max_calls=3), purpose="escalation")
        >>> answer.parsed, answer.provider, answer.attempts
        (Intent(intent='yes'), 'local', 2)
    """

    def __init__(
        self,
        providers: Sequence[Provider],
        *,
        audit: AuditLog | None = None,
        breaker_threshold: int = 3,
        breaker_cooldown_s: float = 30.0,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 8.0,
        max_retry_after_s: float = 30.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not providers:
            raise ConfigError(
                "no LLM provider configured: set ORCHESTRATOR_LLM_PROVIDERS (see orchestrator.llm.gateway)"
            )
        names = [p.name for p in providers]
        if len(set(names)) != len(names):
            raise ConfigError(f"LLM provider names must be unique, got {names}")
        # A provider that sets no cap gets a finite one: an answer must not run to the model's
        # context length on the job's bill. A provider's own max_output_tokens overrides it.
        providers = [
            p
            if p.max_output_tokens is not None
            else p.model_copy(update={"max_output_tokens": DEFAULT_MAX_OUTPUT_TOKENS})
            for p in providers
        ]
        self._providers = tuple(providers)
        self._keys = {p.name: read_key(p) for p in providers}
        self._audit = audit
        self._breakers = {
            p.name: CircuitBreaker(breaker_threshold, breaker_cooldown_s, clock) for p in providers
        }
        self._backoff = wait_exponential_jitter(
            multiplier=backoff_base_s, max=backoff_max_s, jitter=backoff_base_s
        )
        self._max_retry_after_s = max_retry_after_s
        self._sleep = sleep
        # One client per provider per event loop: an async HTTP pool must not cross loops.
        self._clients: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[str, AsyncOpenAI]
        ] = weakref.WeakKeyDictionary()

    @classmethod
    def from_settings(
        cls, settings: LLMSettings | None = None, *, audit: AuditLog | None = None
    ) -> LLMGateway:
        """A gateway for the providers in :class:`LLMSettings` (read from the environment)."""
        settings = settings or LLMSettings()
        return cls(
            settings.load_providers(),
            audit=audit,
            breaker_threshold=settings.breaker_threshold,
            breaker_cooldown_s=settings.breaker_cooldown_s,
            max_retry_after_s=settings.max_retry_after_s,
        )

    @property
    def providers(self) -> tuple[Provider, ...]:
        return self._providers

    def only(self, providers: Sequence[Provider]) -> LLMGateway:
        """This gateway restricted to ``providers`` (e.g. the local ones, for a privacy policy).

        A shallow copy: circuit breakers, HTTP clients, keys, audit log and backoff settings stay
        shared with this gateway.
        """
        if tuple(providers) == self._providers:
            return self
        unknown = {p.name for p in providers} - {p.name for p in self._providers}
        if unknown:
            raise ConfigError(f"providers {sorted(unknown)} are not in this gateway")
        view = copy.copy(self)
        view._providers = tuple(providers)
        return view

    def circuit_state(self, provider: str) -> Literal["closed", "open", "half_open"]:
        """The circuit breaker state of one provider (for health checks and tests)."""
        return self._breakers[provider].state

    def __repr__(self) -> str:
        return f"LLMGateway(providers={[p.name for p in self._providers]})"

    # --- calling ----------------------------------------------------------------------------------

    @overload
    async def complete(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        schema: type[ModelT],
        budget: Budget,
        purpose: str,
        job_id: str | None = None,
        ledger: Ledger | None = None,
    ) -> Completion[ModelT]: ...

    @overload
    async def complete(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        schema: None = None,
        budget: Budget,
        purpose: str,
        job_id: str | None = None,
        ledger: Ledger | None = None,
    ) -> Completion[None]: ...

    async def complete(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        schema: type[BaseModel] | None = None,
        budget: Budget,
        purpose: str,
        job_id: str | None = None,
        ledger: Ledger | None = None,
    ) -> Completion[Any]:
        """Send a chat, get an answer (validated against ``schema`` when given).

        Raises :class:`BudgetExceeded`, :class:`LLMUnavailable`, :class:`LLMRequestRejected` or
        :class:`LLMOutputInvalid`; every attempt is audited either way.
        """
        call = _Call(purpose=purpose, job_id=job_id, budget=budget)
        started = time.perf_counter()
        conversation = [dict(m) for m in messages]
        for ask in (1, 2):
            answer = await self._route(conversation, schema, call)
            parsed, problem = _check(answer.text, schema)
            outcome = "ok" if problem is None else "output_invalid"
            if answer.text is None:
                outcome = "malformed_response"
            self._account(answer, outcome, call, ledger)
            if problem is None:
                return _completion(parsed, answer, call, time.perf_counter() - started)
            log.warning(
                "llm.reask" if ask == 1 else "llm.output_invalid",
                provider=answer.provider.name,
                outcome=outcome,
                purpose=purpose,
                job_id=job_id,
            )
            if answer.text is not None:
                conversation = [
                    *conversation,
                    {"role": "assistant", "content": answer.text},
                    {"role": "user", "content": _reask(problem)},
                ]
        raise LLMOutputInvalid(
            answer.provider.name,
            schema.__name__ if schema is not None else "chat completion",
            problem or "",
            answer.text,
        )

    def complete_sync(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        schema: type[BaseModel] | None = None,
        budget: Budget,
        purpose: str,
        job_id: str | None = None,
        ledger: Ledger | None = None,
    ) -> Completion[Any]:
        """:meth:`complete` for synchronous callers (not from inside a running event loop)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise RuntimeError("complete_sync() called inside an event loop: await complete()")

        async def run() -> Completion[Any]:
            try:
                return await self.complete(
                    messages,
                    schema=schema,
                    budget=budget,
                    purpose=purpose,
                    job_id=job_id,
                    ledger=ledger,
                )
            finally:
                await self.aclose()

        return asyncio.run(run())

    async def aclose(self) -> None:
        """Close the HTTP clients opened on the running event loop."""
        clients = self._clients.pop(asyncio.get_running_loop(), {})
        for client in clients.values():
            await client.close()

    # --- one ask: providers in order, attempts per provider ---------------------------------------

    async def _route(
        self, conversation: list[dict[str, Any]], schema: type[BaseModel] | None, call: _Call
    ) -> _Answer:
        errors: dict[str, str] = {}
        for provider in self._providers:
            breaker = self._breakers[provider.name]
            if not breaker.allow():
                errors[provider.name] = f"skipped, circuit open ({breaker.failures} failures)"
                continue
            trial = breaker.state == "half_open"
            before = call.attempts
            retrying = AsyncRetrying(
                stop=stop_after_attempt(1 if trial else provider.max_attempts)
                | _StopOnLongRetryAfter(self._max_retry_after_s),
                wait=self._wait,
                retry=retry_if_exception(lambda e: isinstance(e, _AttemptFailed) and e.retryable),
                sleep=self._sleep,
                reraise=True,
            )
            request = chat_request(provider, conversation, schema)
            try:
                answer: _Answer = await retrying(self._attempt, provider, request, call)
                return answer
            except _AttemptFailed as exc:
                errors[provider.name] = f"{exc.why} after {call.attempts - before} attempt(s)"
            finally:
                breaker.release()  # a half-open trial that ended without a verdict
        raise LLMUnavailable(errors, purpose=call.purpose)

    def _wait(self, state: RetryCallState) -> float:
        failure = state.outcome.exception() if state.outcome else None
        if isinstance(failure, _AttemptFailed) and failure.retry_after is not None:
            return failure.retry_after
        return float(self._backoff(state))

    async def _attempt(self, provider: Provider, request: dict[str, Any], call: _Call) -> _Answer:
        import openai

        call.budget.reserve(call.purpose)
        call.attempts += 1
        attempt = call.attempts
        started = time.perf_counter()
        with recording_request_hashes() as sent:
            try:
                async with asyncio.timeout(provider.timeout_s):
                    completion = await self._client(provider).chat.completions.create(**request)
                text = message_text(completion)
            except json.JSONDecodeError:  # a 200 whose body is not JSON at all
                completion, text = None, None
            except (TimeoutError, openai.OpenAIError) as exc:
                call.budget.release()
                latency_s = time.perf_counter() - started
                raise self._failure(provider, exc, call, attempt, _digest(sent), latency_s) from exc
            except BaseException:
                call.budget.release()
                raise
        breaker = self._breakers[provider.name]
        if text is None:
            breaker.release()  # it answered: reachable, if not sane
        else:
            breaker.success()
        prompt_tokens, completion_tokens = usage_of(completion)
        return _Answer(
            provider=provider,
            text=text,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            latency_s=time.perf_counter() - started,
            request_sha256=_digest(sent),
            attempt=attempt,
        )

    def _failure(
        self,
        provider: Provider,
        exc: BaseException,
        call: _Call,
        attempt: int,
        sha256: str,
        latency_s: float,
    ) -> Exception:
        """Audit, log and classify a failed attempt: the error the retry loop should see."""
        import openai

        status = exc.status_code if isinstance(exc, openai.APIStatusError) else None
        if isinstance(exc, TimeoutError | openai.APITimeoutError):
            code, why = "timeout", f"timed out after {provider.timeout_s:g}s"
        elif isinstance(exc, openai.APIConnectionError):
            code, why = "connection_error", "connection failed"
        elif status is not None:
            code, why = f"http_{status}", f"HTTP {status}"
        else:
            code, why = "client_error", type(exc).__name__
        rejected = status in (400, 413, 422)
        self._audit_row(
            provider,
            call,
            attempt=attempt,
            sha256=sha256,
            outcome="rejected" if rejected else "error",
            error_code=code,
            latency_s=latency_s,
        )
        breaker = self._breakers[provider.name]
        if rejected:
            breaker.release()  # our request's fault, not the provider's
            return LLMRequestRejected(provider.name, status or 0, error_detail(exc))
        if breaker.failure():
            log.warning("llm.circuit_open", provider=provider.name, failures=breaker.failures)
        retryable = code in ("timeout", "connection_error") or (
            status is not None and (status in (408, 409, 425, 429) or status >= 500)
        )
        retry_after = None
        if retryable and isinstance(exc, openai.APIStatusError):
            retry_after = retry_after_s(exc.response.headers)
        return _AttemptFailed(why, retryable=retryable, retry_after=retry_after)

    # --- accounting -------------------------------------------------------------------------------

    def _account(self, answer: _Answer, outcome: str, call: _Call, ledger: Ledger | None) -> None:
        """An answered request: audit row, ledger, budget (which may raise BudgetExceeded)."""
        call.answers.append(answer)
        provider = answer.provider
        cost = provider.cost_usd(answer.prompt_tokens, answer.completion_tokens)
        try:
            self._audit_row(
                provider,
                call,
                attempt=answer.attempt,
                sha256=answer.request_sha256,
                outcome=outcome,
                error_code=None if outcome == "ok" else outcome,
                latency_s=answer.latency_s,
                prompt_tokens=answer.prompt_tokens,
                completion_tokens=answer.completion_tokens,
                cost_usd=cost,
            )
            if ledger is not None:
                ledger.llm_calls += 1
                ledger.llm_prompt_tokens += answer.prompt_tokens
                ledger.llm_completion_tokens += answer.completion_tokens
                ledger.llm_cost_usd += cost
        finally:
            call.budget.commit(answer.prompt_tokens + answer.completion_tokens, call.purpose)

    def _audit_row(
        self,
        provider: Provider,
        call: _Call,
        *,
        attempt: int,
        sha256: str,
        outcome: str,
        error_code: str | None,
        latency_s: float,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
        cost_usd: float = 0.0,
    ) -> None:
        fields = {
            "provider": provider.name,
            "model": provider.model,
            "attempt": attempt,
            "outcome": outcome,
            "error_code": error_code,
            "latency_s": round(latency_s, 4),
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "request_sha256": sha256,
            "purpose": call.purpose,
            "job_id": call.job_id,
        }
        level = log.info if outcome == "ok" else log.warning
        level("llm.attempt", **fields)
        if self._audit is not None:
            self._audit.record(
                AuditRecord(
                    job_id=call.job_id,
                    purpose=call.purpose,
                    provider=provider.name,
                    model=provider.model,
                    base_url_host=provider.host,
                    request_sha256=sha256,
                    outcome=outcome,
                    attempt=attempt,
                    prompt_tokens=prompt_tokens,
                    completion_tokens=completion_tokens,
                    cost_usd=cost_usd,
                    latency_s=latency_s,
                    error_code=error_code,
                )
            )

    def _client(self, provider: Provider) -> AsyncOpenAI:
        clients = self._clients.setdefault(asyncio.get_running_loop(), {})
        if provider.name not in clients:
            clients[provider.name] = open_client(provider, self._keys[provider.name])
        return clients[provider.name]


def _digest(sent: list[str]) -> str:
    return sent[-1] if sent else ""


def _check(text: str | None, schema: type[BaseModel] | None) -> tuple[Any, str | None]:
    """(parsed, None) when the answer is usable, else (None, what is wrong)."""
    if text is None:
        return None, "the response body was not a valid chat completion"
    if schema is None:
        return None, None
    try:
        return schema.model_validate_json(_strip_fence(text)), None
    except ValidationError as exc:
        return None, _describe(exc)


def _reask(problem: str) -> str:
    return (
        f"Your reply did not match the required JSON schema: {problem}. "
        "Reply again with only a corrected JSON object."
    )


def _completion(parsed: Any, answer: _Answer, call: _Call, latency_s: float) -> Completion[Any]:
    prompt = sum(a.prompt_tokens for a in call.answers)
    done = sum(a.completion_tokens for a in call.answers)
    cost = sum(a.provider.cost_usd(a.prompt_tokens, a.completion_tokens) for a in call.answers)
    return Completion(
        parsed=parsed,
        text=answer.text or "",
        provider=answer.provider.name,
        model=answer.provider.model,
        prompt_tokens=prompt,
        completion_tokens=done,
        cost_usd=cost,
        latency_s=latency_s,
        attempts=call.attempts,
    )
