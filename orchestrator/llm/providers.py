"""LLM providers: their configuration, their health, and the wire format we speak to them.

:class:`Provider` and :class:`LLMSettings` are the configuration (documented with examples in
:mod:`orchestrator.llm.gateway`, which re-exports them). :class:`CircuitBreaker` tracks one provider's
health. The rest turns a conversation into an OpenAI-compatible chat request and a response (or a
failure) back into facts the gateway acts on, tolerating servers that answer almost-but-not-quite
like OpenAI.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from orchestrator.errors import ConfigError

if TYPE_CHECKING:
    from openai import AsyncOpenAI

__all__ = ["CircuitBreaker", "LLMSettings", "Provider"]


#: Sent as the bearer token to providers without a key (vLLM's convention; local servers ignore it).
NO_KEY = "EMPTY"


class Provider(BaseModel):
    """One OpenAI-compatible endpoint. Frozen; the key lives in the environment, never here."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, description="how logs, ledger and audit name this provider")
    base_url: str = Field(description="the OpenAI-compatible root, e.g. http://127.0.0.1:8000/v1")
    model: str = Field(min_length=1, description="model name sent in every request")
    api_key_env: str | None = Field(
        default=None, description="NAME of the env var holding the key; None for keyless servers"
    )
    timeout_s: float = Field(default=30.0, gt=0, le=600, description="bound on one attempt")
    max_attempts: int = Field(default=3, ge=1, le=10, description="attempts before falling back")
    json_schema: bool = Field(
        default=True,
        description="supports response_format json_schema; else json_object plus instructions",
    )
    json_object_schema: bool = Field(
        default=False,
        description="with json_schema off: send the schema as response_format "
        "{type: json_object, schema} (llama.cpp server enforces it with a grammar)",
    )
    max_output_tokens: int | None = Field(
        default=None, ge=1, description="cap on tokens per answer (max_tokens); None: the server's"
    )
    price_per_1m_prompt_tokens: float = Field(default=0.0, ge=0, description="USD")
    price_per_1m_completion_tokens: float = Field(default=0.0, ge=0, description="USD")
    privacy: Literal["redact", "local_only", "allow"] | None = Field(
        default=None,
        description="this provider's own privacy policy: it can only make a job's stricter "
        "(e.g. redact for a provider you do not want to see raw text even when local)",
    )
    local: bool | None = Field(
        default=None,
        description="whether the model runs on this machine; None: decided by the host "
        "(loopback is local). Set false for a loopback proxy that forwards to a cloud model",
    )

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if urlsplit(value).scheme not in ("http", "https") or not urlsplit(value).hostname:
            raise ValueError(f"base_url must be an http(s) URL, got {value!r}")
        return value.rstrip("/")

    @property
    def host(self) -> str:
        """``host[:port]`` of ``base_url`` (what the audit log records)."""
        parts = urlsplit(self.base_url)
        return f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)

    def cost_usd(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (
            prompt_tokens * self.price_per_1m_prompt_tokens
            + completion_tokens * self.price_per_1m_completion_tokens
        ) / 1e6


class LLMSettings(BaseSettings):
    """Gateway settings from ``ORCHESTRATOR_LLM_*`` (see the module docstring for the format)."""

    model_config = SettingsConfigDict(env_prefix="ORCHESTRATOR_LLM_", frozen=True, extra="forbid")

    providers: list[Provider] = Field(default_factory=list, description="JSON list, in order")
    providers_file: Path | None = Field(default=None, description="YAML with a providers: list")
    breaker_threshold: int = Field(default=3, ge=1, description="consecutive failures to open")
    breaker_cooldown_s: float = Field(default=30.0, ge=0, description="open → half-open after")
    max_retry_after_s: float = Field(default=30.0, ge=0, description="longest Retry-After honoured")

    def load_providers(self) -> list[Provider]:
        """``providers``, or the list in ``providers_file``; ConfigError if both or malformed."""
        if self.providers_file is None:
            return list(self.providers)
        if self.providers:
            raise ConfigError("set ORCHESTRATOR_LLM_PROVIDERS or ..._PROVIDERS_FILE, not both")
        import yaml

        try:
            data = yaml.safe_load(self.providers_file.read_text())
            items = data.get("providers") if isinstance(data, dict) else data
            if not isinstance(items, list):
                raise ValueError("expected a 'providers:' list")
            return [Provider.model_validate(item) for item in items]
        except (OSError, ValueError, yaml.YAMLError) as exc:
            raise ConfigError(f"LLM providers file {self.providers_file}: {exc}") from exc


class CircuitBreaker:
    """closed → open after ``threshold`` consecutive failures → half-open after ``cooldown_s``.

    Half-open lets one trial attempt through: success closes, failure re-opens.
    """

    def __init__(self, threshold: int, cooldown_s: float, clock: Callable[[], float]) -> None:
        self.threshold, self.cooldown_s, self._clock = threshold, cooldown_s, clock
        self.failures = 0
        self._opened_at: float | None = None
        self._trial = False
        self._lock = threading.Lock()

    @property
    def state(self) -> Literal["closed", "open", "half_open"]:
        if self._opened_at is None:
            return "closed"
        return "half_open" if self._clock() - self._opened_at >= self.cooldown_s else "open"

    def allow(self) -> bool:
        with self._lock:
            state = self.state
            if state == "half_open" and not self._trial:
                self._trial = True
                return True
            return state == "closed"

    def success(self) -> None:
        with self._lock:
            self.failures, self._opened_at, self._trial = 0, None, False

    def failure(self) -> bool:
        """Count a failure; True when this one opened the circuit."""
        with self._lock:
            self.failures += 1
            was_trial, self._trial = self._trial, False
            if was_trial or (self._opened_at is None and self.failures >= self.threshold):
                self._opened_at = self._clock()
                return True
            return False

    def release(self) -> None:
        """End a trial that said nothing about the provider's health."""
        with self._lock:
            self._trial = False


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    """Seconds from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date)."""
    try:
        if (ms := headers.get("retry-after-ms")) is not None:
            return max(0.0, float(ms) / 1000)
        value = headers.get("retry-after")
        if value is None:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (ValueError, TypeError):
        return None


def _schema_name(schema: type[BaseModel]) -> str:
    return re.sub(r"[^a-zA-Z0-9_-]", "_", schema.__name__)[:64]


def message_text(completion: object) -> str | None:
    """The first choice's text; None when the body is not shaped like a chat completion."""
    choices = getattr(completion, "choices", None)
    if not isinstance(choices, list) or not choices:
        return None
    content = getattr(getattr(choices[0], "message", None), "content", None)
    if content is not None and not isinstance(content, str):
        return None
    return content or ""  # no content (a refusal, a tool call): an empty answer


def usage_of(completion: object) -> tuple[int, int]:
    """(prompt, completion) tokens as the provider reported them; 0 when it did not."""
    usage = getattr(completion, "usage", None)
    prompt = getattr(usage, "prompt_tokens", 0)
    done = getattr(usage, "completion_tokens", 0)
    return (prompt if isinstance(prompt, int) else 0, done if isinstance(done, int) else 0)


def _with_instructions(
    messages: list[dict[str, Any]], schema: type[BaseModel]
) -> list[dict[str, Any]]:
    """For providers without json_schema support: say in words what JSON to write."""
    instruction = (
        "Reply with one JSON object and nothing else. It must match this JSON schema:\n"
        + json.dumps(schema.model_json_schema(), separators=(",", ":"))
    )
    if messages and messages[0].get("role") == "system" and isinstance(messages[0]["content"], str):
        first = {**messages[0], "content": f"{messages[0]['content']}\n\n{instruction}"}
        return [first, *messages[1:]]
    return [{"role": "system", "content": instruction}, *messages]


#: The attempt in progress collects the SHA-256 of each request body the HTTP client sends.
_SENT: ContextVar[list[str] | None] = ContextVar("orchestrator_llm_sent", default=None)


async def _fingerprint(request: Any) -> None:
    """httpx request hook: hash the exact bytes that leave the machine."""
    sent = _SENT.get()
    if sent is not None:
        sent.append(hashlib.sha256(request.content).hexdigest())


def read_key(provider: Provider) -> str | None:
    """The provider's key from its environment variable; ConfigError when that is unset."""
    if provider.api_key_env is None:
        return None
    key = os.environ.get(provider.api_key_env)
    if not key:
        raise ConfigError(
            f"LLM provider {provider.name!r} reads its key from ${provider.api_key_env}, which is "
            "not set: export it, or remove api_key_env for a server that needs no key"
        )
    return key


def error_detail(exc: BaseException) -> str:
    """The server's own error message, short (for a rejected request's error)."""
    body = getattr(exc, "body", None)
    message = body.get("message") if isinstance(body, dict) else None
    return str(message or getattr(exc, "message", exc))[:300]


def chat_request(
    provider: Provider, conversation: list[dict[str, Any]], schema: type[BaseModel] | None
) -> dict[str, Any]:
    """Keyword arguments for ``chat.completions.create``, asking for ``schema`` if given."""
    request: dict[str, Any] = {"model": provider.model, "messages": conversation}
    if provider.max_output_tokens is not None:
        request["max_tokens"] = provider.max_output_tokens
    if schema is None:
        return request
    if provider.json_schema:
        request["response_format"] = {
            "type": "json_schema",
            "json_schema": {
                "name": _schema_name(schema),
                "schema": schema.model_json_schema(),
                "strict": False,  # pydantic schemas rarely meet OpenAI's strict subset
            },
        }
    else:
        request["response_format"] = {"type": "json_object"}
        if provider.json_object_schema:
            # The server enforces the schema with a grammar: repeating it in the prompt would only
            # cost prefill time (thousands of tokens for a registry-sized plan schema).
            request["response_format"]["schema"] = schema.model_json_schema()
        else:
            request["messages"] = _with_instructions(conversation, schema)
    return request


def open_client(provider: Provider, api_key: str | None) -> AsyncOpenAI:
    """An ``openai`` client for one provider, with its own retries off: the gateway retries."""
    import openai

    return openai.AsyncOpenAI(
        base_url=provider.base_url,
        api_key=api_key or NO_KEY,
        max_retries=0,
        timeout=provider.timeout_s,
        http_client=openai.DefaultAsyncHttpxClient(event_hooks={"request": [_fingerprint]}),
    )


@contextmanager
def recording_request_hashes() -> Iterator[list[str]]:
    """Collect the SHA-256 of each request body the clients send inside this block."""
    sent: list[str] = []
    token = _SENT.set(sent)
    try:
        yield sent
    finally:
        _SENT.reset(token)
