"""Privacy policy for big-model calls: redact PII before it leaves the machine, restore it after.

A job (and, optionally, a provider) has a :data:`PrivacyPolicy`:

* ``redact``: placeholders replace PII in every message (see :mod:`orchestrator.llm.pii` for what is
  found and what cannot be), the answer comes back with the values restored. The default for
  remote providers.
* ``local_only``: the text never leaves the machine: only providers whose ``base_url`` host is
  loopback are tried, unredacted; with none, :class:`PrivacyViolation` and nothing is sent.
* ``allow``: sent as is. The default for local providers when the job sets no policy.

:func:`guarded_complete` wraps :meth:`LLMGateway.complete <orchestrator.llm.gateway.LLMGateway.complete>`
with the policy applied per provider, in the gateway's order, sharing its circuit breakers, HTTP
clients and audit log::

    answer = await guarded_complete(
        gateway, messages, policy="redact", known=KnownValues(name="Ana Sousa", phone="912345678"),
        schema=NextAction, budget=budget, purpose="escalation", job_id=job_id, ledger=ledger,
    )

With no job policy each provider gets its default (local: as is; remote: redacted), so a local
primary sees the real text and a remote fallback only placeholders. A job policy overrides the
defaults; a provider's own ``privacy`` setting can only make it stricter. Whether a provider is
local is its ``local`` setting, else whether its host is loopback. Logs record the policy, the providers and how many spans of each type were redacted,
never a value; use :func:`safe_repr` to log text.

``orchestrator redact`` (:func:`redact_command`) runs the guard over a JSONL file.
"""

from __future__ import annotations

import ipaddress
import json
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar, get_args, overload
from urllib.parse import urlsplit

from pydantic import BaseModel, ValidationError

from orchestrator.errors import (
    ConfigError,
    LLMUnavailable,
    PrivacyViolation,
)
from orchestrator.llm.pii import (
    ENTITY_TYPES,
    Known,
    KnownValues,
    PIIGuard,
    Redacted,
    default_guard,
)
from orchestrator.telemetry.logs import get_logger

if TYPE_CHECKING:
    from orchestrator.accounting.ledger import Ledger
    from orchestrator.llm.gateway import Budget, Completion, LLMGateway, Provider

__all__ = [
    "KnownValues",
    "PIIGuard",
    "PrivacyPolicy",
    "PrivacyViolation",
    "Redacted",
    "guarded_complete",
    "is_local",
    "redact_file",
    "redact_messages",
    "restore_completion",
    "safe_repr",
]

log = get_logger(__name__)

PrivacyPolicy = Literal["redact", "local_only", "allow"]
_STRICTNESS: dict[str, int] = {"allow": 0, "redact": 1, "local_only": 2}
_KNOWN_KINDS = ("name", "phone", "email", "address", "other")
ModelT = TypeVar("ModelT", bound=BaseModel)


def is_local(provider: Provider) -> bool:
    """Whether the provider's model runs on this machine: its ``local`` setting when given (a
    loopback proxy may front a cloud model: ``local: false``), else whether its ``base_url`` host
    is loopback (``localhost``, ``127.0.0.0/8``, ``::1``)."""
    if provider.local is not None:
        return provider.local
    host = urlsplit(provider.base_url).hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def safe_repr(text: str, known: Known | None = None, *, max_chars: int = 200) -> str:
    """``text`` redacted (and shortened) for a log line: placeholders only, never a value."""
    redacted = default_guard().redact(text, known).text
    return redacted if len(redacted) <= max_chars else redacted[: max_chars - 1] + "…"


def redact_messages(
    messages: Sequence[Mapping[str, Any]],
    known: Known | None = None,
    *,
    guard: PIIGuard | None = None,
    mapping: Mapping[str, str] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Chat messages with PII in their content (a string or ``text`` parts) replaced; one mapping
    for the whole conversation, so a value keeps its placeholder from message to message."""
    guard = guard or default_guard()
    table = dict(mapping or {})
    out: list[dict[str, Any]] = []
    for message in messages:
        copied = dict(message)
        content = copied.get("content")
        if isinstance(content, str):
            red = guard.redact(content, known, mapping=table)
            copied["content"], table = red.text, red.mapping
        elif isinstance(content, list):
            parts = []
            for part in content:
                if isinstance(part, Mapping) and isinstance(part.get("text"), str):
                    red = guard.redact(part["text"], known, mapping=table)
                    part, table = {**part, "text": red.text}, red.mapping
                parts.append(part)
            copied["content"] = parts
        out.append(copied)
    return out, table


def restore_completion(
    completion: Completion[Any], mapping: Mapping[str, str], *, guard: PIIGuard | None = None
) -> Completion[Any]:
    """The answer with placeholders replaced by the values: its text and every string in
    ``parsed`` (re-validated; if a restored value breaks the schema, ``parsed`` keeps the
    placeholders and a warning is logged)."""
    guard = guard or default_guard()
    if not mapping:
        return completion
    parsed = completion.parsed
    if isinstance(parsed, BaseModel):
        try:
            parsed = type(parsed).model_validate(guard.restore_value(parsed.model_dump(), mapping))
        except ValidationError as exc:
            where = [".".join(str(p) for p in e["loc"]) for e in exc.errors()]
            log.warning("privacy.restore_invalid", schema=type(parsed).__name__, fields=where)
    elif parsed is not None:
        parsed = guard.restore_value(parsed, mapping)
    text = guard.restore(completion.text, mapping, json_escape=isinstance(parsed, BaseModel))
    return replace(completion, text=text, parsed=parsed)


@overload
async def guarded_complete(
    gateway: LLMGateway,
    messages: Sequence[Mapping[str, Any]],
    *,
    policy: PrivacyPolicy | None = None,
    known: Known | None = None,
    schema: type[ModelT],
    budget: Budget,
    purpose: str,
    job_id: str | None = None,
    ledger: Ledger | None = None,
    guard: PIIGuard | None = None,
    local: Callable[[Provider], bool] = is_local,
) -> Completion[ModelT]: ...


@overload
async def guarded_complete(
    gateway: LLMGateway,
    messages: Sequence[Mapping[str, Any]],
    *,
    policy: PrivacyPolicy | None = None,
    known: Known | None = None,
    schema: None = None,
    budget: Budget,
    purpose: str,
    job_id: str | None = None,
    ledger: Ledger | None = None,
    guard: PIIGuard | None = None,
    local: Callable[[Provider], bool] = is_local,
) -> Completion[None]: ...


async def guarded_complete(
    gateway: LLMGateway,
    messages: Sequence[Mapping[str, Any]],
    *,
    policy: PrivacyPolicy | None = None,
    known: Known | None = None,
    schema: type[BaseModel] | None = None,
    budget: Budget,
    purpose: str,
    job_id: str | None = None,
    ledger: Ledger | None = None,
    guard: PIIGuard | None = None,
    local: Callable[[Provider], bool] = is_local,
) -> Completion[Any]:
    """:meth:`LLMGateway.complete` under a privacy policy (see the module docstring).

    Providers are tried in the gateway's order; consecutive providers with the same treatment
    (as is / redacted) form one route, and the next route is tried only when every provider of
    one is unavailable. ``local`` decides which providers count as local (default: loopback host).
    Raises :class:`PrivacyViolation` (nothing sent) when the policy leaves no provider, else what
    ``complete`` raises.
    """
    if policy is not None and policy not in get_args(PrivacyPolicy):
        raise ConfigError(
            f"unknown privacy policy {policy!r}; choose one of redact/local_only/allow"
        )
    routes = _routes(gateway.providers, policy, local)
    guard = guard or default_guard()
    redacted: tuple[list[dict[str, Any]], dict[str, str]] | None = None
    errors: dict[str, str] = {}
    for providers, mode in routes:
        sent: Sequence[Mapping[str, Any]] = messages
        if mode == "redact":
            redacted = redacted or redact_messages(messages, known, guard=guard)
            sent = redacted[0]
        log.info(
            "privacy.route",
            policy=policy or "provider_default",
            mode=mode,
            providers=[p.name for p in providers],
            redacted=_counts(redacted[1]) if mode == "redact" and redacted else {},
            purpose=purpose,
            job_id=job_id,
        )
        try:
            answer = await gateway.only(providers).complete(
                sent, schema=schema, budget=budget, purpose=purpose, job_id=job_id, ledger=ledger
            )
        except LLMUnavailable as exc:
            errors.update(exc.errors)
            continue
        if mode == "redact" and redacted is not None:
            return restore_completion(answer, redacted[1], guard=guard)
        return answer
    raise LLMUnavailable(errors, purpose=purpose)


def _routes(
    providers: Sequence[Provider], policy: PrivacyPolicy | None, local: Callable[[Provider], bool]
) -> list[tuple[list[Provider], Literal["as_is", "redact"]]]:
    """Consecutive providers grouped by treatment; providers the policy forbids are left out."""
    routes: list[tuple[list[Provider], Literal["as_is", "redact"]]] = []
    blocked: list[str] = []
    for provider in providers:
        own: str | None = provider.privacy  # the provider's own setting: only ever stricter
        near = local(provider)
        if policy is None:
            effective = own or ("allow" if near else "redact")
        else:
            effective = max(policy, own or "allow", key=_STRICTNESS.__getitem__)
        if effective == "local_only" and not near:
            blocked.append(f"{provider.name} at {provider.host}")
            continue
        mode: Literal["as_is", "redact"] = "redact" if effective == "redact" else "as_is"
        if routes and routes[-1][1] == mode:
            routes[-1][0].append(provider)
        else:
            routes.append(([provider], mode))
    if not routes:
        raise PrivacyViolation(
            "privacy policy local_only: this text must not leave the machine, but every LLM "
            f"provider is remote ({', '.join(blocked)}). Add a provider on loopback (e.g. a "
            "local llama.cpp, vLLM or Ollama server at http://127.0.0.1:PORT/v1), or relax the "
            "job's privacy policy to 'redact'."
        )
    return routes


def _counts(mapping: Mapping[str, str]) -> dict[str, int]:
    """Distinct values redacted, by type (from the placeholders alone)."""
    return dict(Counter(ph.strip("<>").rsplit("_", 1)[0] for ph in mapping))


# --- the `orchestrator redact` command ------------------------------------------------------------


def _known_spec(known_fields: Sequence[str]) -> dict[str, str]:
    """``["name,phone", "cust_mail=email"]`` → ``{"name": "name", "phone": "phone", ...}``."""
    spec: dict[str, str] = {}
    for entry in known_fields:
        for item in filter(None, (s.strip() for s in entry.split(","))):
            key, _, kind = item.partition("=")
            kind = kind.strip() or (key if key in _KNOWN_KINDS else "other")
            if kind not in _KNOWN_KINDS:
                raise ConfigError(
                    f"--known {item!r}: kind must be one of {', '.join(_KNOWN_KINDS)}"
                )
            spec[key.strip()] = kind
    return spec


def redact_file(
    input_path: Path,
    output: Path,
    field: str = "text",
    known_fields: Sequence[str] = (),
    *,
    guard: PIIGuard | None = None,
    batch_size: int = 256,
) -> dict[str, Any]:
    """Redact ``field`` of each JSONL line of ``input_path`` into ``output`` (other fields copied);
    a bad line becomes ``{"line": N, "error": {"code", "message"}}``. Lines go through the guard in
    batches of ``batch_size`` (one NER pass per batch). Returns the summary: line counts, and per
    entity type the spans replaced (``entities``, every type, zeros included) and the lines that
    held one (``lines_by_entity``); ``spans`` keeps only the types found."""
    guard = guard or default_guard()
    spec = _known_spec(known_fields)
    if not input_path.is_file():
        raise ConfigError(f"input file {input_path} does not exist")
    started = time.perf_counter()
    spans: Counter[str] = Counter()
    lines_by: Counter[str] = Counter()
    lines = ok = with_pii = 0
    output.parent.mkdir(parents=True, exist_ok=True)
    with input_path.open(encoding="utf-8") as src, output.open("w", encoding="utf-8") as dst:
        for batch in _batches(src, batch_size):
            parsed = [(number, *_parse_line(raw, field)) for number, raw in batch]
            records = [record for _, record, _ in parsed if record is not None]
            redacted = iter(
                guard.redact_many(
                    [record[field] for record in records],
                    [KnownValues.from_record(record, spec) for record in records],
                )
            )
            for number, record, problem in parsed:
                lines += 1
                if record is None:
                    out: dict[str, Any] = {"line": number, "error": problem}
                else:
                    red = next(redacted)
                    out = {**record, field: red.text}
                    spans.update(red.counts)
                    lines_by.update(red.counts.keys())
                    ok, with_pii = ok + 1, with_pii + bool(red.counts)
                dst.write(json.dumps(out, ensure_ascii=False) + "\n")
    seconds = time.perf_counter() - started
    return {
        "lines": lines,
        "redacted": ok,
        "errors": lines - ok,
        "lines_with_pii": with_pii,
        "spans": dict(sorted(spans.items())),
        "entities": {kind: spans[kind] for kind in ENTITY_TYPES},
        "lines_by_entity": {kind: lines_by[kind] for kind in ENTITY_TYPES},
        "seconds": round(seconds, 3),
        "output": str(output),
    }


def _batches(lines: Iterable[str], size: int) -> Iterator[list[tuple[int, str]]]:
    """``(line number, raw line)`` of the non-blank lines, ``size`` at a time."""
    batch: list[tuple[int, str]] = []
    for number, raw in enumerate(lines, start=1):
        if raw.strip():
            batch.append((number, raw))
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _parse_line(raw: str, field: str) -> tuple[dict[str, Any] | None, dict[str, str]]:
    """(record, {}) or (None, error); error messages never quote the line (it may hold PII)."""
    try:
        record = json.loads(raw)
    except json.JSONDecodeError as exc:
        return None, {"code": "invalid_json", "message": f"not JSON ({exc.msg} at {exc.pos})"}
    if not isinstance(record, dict):
        return None, {"code": "not_an_object", "message": "a line must be a JSON object"}
    if not isinstance(record.get(field), str):
        return None, {"code": "missing_field", "message": f"no string field {field!r}"}
    return record, {}
