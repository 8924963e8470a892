"""A stub OpenAI-compatible server on loopback: real HTTP, scripted answers and faults.

It serves ``POST /v1/chat/completions`` and ``GET /v1/models`` on ``127.0.0.1`` at an ephemeral
port, from a daemon thread. Each request consumes the next behaviour from a script (a queue); once
the script is empty, the ``default`` behaviour answers. Every request is recorded in
:attr:`StubLLMServer.requests` (headers with the ``Authorization`` value redacted, raw body and
parsed JSON), so a test can assert exactly what left the machine.

A behaviour is a :class:`Reply`, a ``str`` (message content), a ``dict``/``list`` (serialised as
the JSON message content) or a responder ``callable(request_json) -> content | Reply`` for dynamic
answers::

    >>> import openai
    >>> from orchestrator.testing import Reply, StubLLMServer
    >>> with StubLLMServer([Reply.error(500), {"intent": "yes"}]) as stub:
    ...     client = openai.OpenAI(base_url=stub.base_url, api_key="sk-test", max_retries=0)
    ...     try:
    ...         client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    ...     except openai.InternalServerError:
    ...         pass
    ...     answer = client.chat.completions.create(
    ...         model="m", messages=[{"role": "user", "content": "hi"}]
    ...     )
    >>> answer.choices[0].message.content
    '{"intent": "yes"}'
    >>> [r.path for r in stub.requests], stub.requests[0].headers["authorization"]
    (['/v1/chat/completions', '/v1/chat/completions'], '<redacted>')

Hangs (``Reply.hang``) wait on an event that :meth:`StubLLMServer.close` sets, so shutting the
server down never waits for a hang to run out.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

__all__ = ["RecordedRequest", "Reply", "StubLLMServer"]

#: Message content: a string, or a JSON value serialised as the message content.
Content = str | dict[str, Any] | list[Any]

_REASONS = {
    400: "invalid_request_error",
    401: "invalid_api_key",
    403: "permission_denied",
    404: "model_not_found",
    422: "unprocessable_entity",
    429: "rate_limit_exceeded",
}


@dataclass(frozen=True, kw_only=True)
class Reply:
    """One scripted answer.

    ``content`` becomes the assistant message (a dict or list is serialised as JSON). ``status``
    other than 200 sends an OpenAI-style error body. ``delay_s`` waits before answering (bounded:
    the server's close cuts it short). ``raw_body`` replaces the whole response body with these
    exact bytes (e.g. something that is not JSON at all).
    """

    content: Content = "ok"
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    raw_body: bytes | None = None

    @classmethod
    def error(cls, status: int = 500, message: str = "stub error") -> Reply:
        """An HTTP error with an OpenAI-style ``{"error": {...}}`` body."""
        return cls(status=status, content=message)

    @classmethod
    def rate_limited(cls, retry_after: float = 1) -> Reply:
        """A 429 with a ``Retry-After`` header (seconds)."""
        value = str(int(retry_after)) if float(retry_after).is_integer() else str(retry_after)
        return cls(status=429, content="rate limited", headers={"Retry-After": value})

    @classmethod
    def hang(cls, seconds: float = 5.0) -> Reply:
        """Answer only after ``seconds`` (past a client's timeout, the client gives up first)."""
        return cls(delay_s=seconds)

    @classmethod
    def malformed(cls) -> Reply:
        """A 200 whose body is not valid JSON (a truncated chat completion)."""
        return cls(raw_body=b'{"id": "chatcmpl-stub", "choices": [{"message": {"content": "')


#: A responder answers from the request's JSON body: content or a full :class:`Reply`.
Responder = Callable[[dict[str, Any]], Content | Reply]


@dataclass(frozen=True)
class RecordedRequest:
    """One request the stub received. ``headers`` keys are lower case; no secret values."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    json: Any


def _count_tokens(text: str) -> int:
    return len(text.split())


def _prompt_text(request: Mapping[str, Any]) -> str:
    parts: list[str] = []
    for message in request.get("messages") or []:
        content = message.get("content") if isinstance(message, Mapping) else None
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
    return "\n".join(parts)


class StubLLMServer:
    """An OpenAI-compatible HTTP server on 127.0.0.1 that answers from a script.

    ``script`` is consumed one behaviour per chat request; then ``default`` answers every request
    (``default=Reply.error(500)`` is an endless 500). ``api_key``, when given, is required as a
    bearer token (401 otherwise). ``model`` is what ``GET /v1/models`` lists.
    """

    def __init__(
        self,
        script: Iterable[Content | Reply | Responder] = (),
        *,
        default: Content | Reply | Responder | None = None,
        api_key: str | None = None,
        model: str = "stub-model",
    ) -> None:
        self._script: deque[Content | Reply | Responder] = deque(script)
        self._default: Content | Reply | Responder = Reply() if default is None else default
        self._api_key = api_key
        self.model = model
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._closing = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="stub-llm",
            daemon=True,
        )
        self._thread.start()

    # --- public surface -------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/v1``: pass it as an OpenAI client's ``base_url``."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, in arrival order (a copy)."""
        with self._lock:
            return list(self._requests)

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        """Only the ``POST /v1/chat/completions`` requests."""
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def enqueue(self, *behaviours: Content | Reply | Responder) -> None:
        """Append behaviours to the script."""
        with self._lock:
            self._script.extend(behaviours)

    def close(self) -> None:
        """Stop serving; hangs in progress are woken and end without an answer."""
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- used by the handler --------------------------------------------------------------------

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _next_behaviour(self) -> Content | Reply | Responder:
        with self._lock:
            return self._script.popleft() if self._script else self._default

    def _authorized(self, header: str | None) -> bool:
        return self._api_key is None or header == f"Bearer {self._api_key}"


def _resolve(behaviour: Content | Reply | Responder, request: dict[str, Any]) -> Reply:
    if callable(behaviour):
        behaviour = behaviour(request)
    if isinstance(behaviour, Reply):
        return behaviour
    return Reply(content=behaviour)


def _completion_body(reply: Reply, request: Mapping[str, Any]) -> bytes:
    content = reply.content if isinstance(reply.content, str) else json.dumps(reply.content)
    prompt_tokens = _count_tokens(_prompt_text(request))
    completion_tokens = _count_tokens(content)
    body = {
        "id": f"chatcmpl-stub-{time.monotonic_ns()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": str(request.get("model", "stub-model")),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }
    return json.dumps(body).encode()


def _error_body(reply: Reply) -> bytes:
    message = reply.content if isinstance(reply.content, str) else json.dumps(reply.content)
    kind = _REASONS.get(reply.status, "server_error")
    return json.dumps({"error": {"message": message, "type": kind, "code": kind}}).encode()


def _make_handler(stub: StubLLMServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib signature)
            pass  # quiet: tests read .requests, not stderr

        def _receive(self) -> tuple[bytes, Any]:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            try:
                parsed = json.loads(body) if body else None
            except ValueError:
                parsed = None
            headers = {k.lower(): v for k, v in self.headers.items()}
            if "authorization" in headers:
                headers["authorization"] = "<redacted>"
            stub._record(RecordedRequest(self.command, self.path, headers, body, parsed))
            return body, parsed

        def _send(self, status: int, body: bytes, headers: Mapping[str, str] | None = None) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout): nothing to answer

        def do_GET(self) -> None:
            self._receive()
            if self.path.rstrip("/") != "/v1/models":
                self._send(404, _error_body(Reply.error(404, f"no route {self.path}")))
                return
            models = {
                "object": "list",
                "data": [{"id": stub.model, "object": "model", "created": 0, "owned_by": "stub"}],
            }
            self._send(200, json.dumps(models).encode())

        def do_POST(self) -> None:
            _, request = self._receive()
            if self.path.rstrip("/") != "/v1/chat/completions":
                self._send(404, _error_body(Reply.error(404, f"no route {self.path}")))
                return
            if not stub._authorized(self.headers.get("Authorization")):
                self._send(401, _error_body(Reply.error(401, "invalid api key")))
                return
            if not isinstance(request, dict):
                self._send(400, _error_body(Reply.error(400, "request body is not a JSON object")))
                return
            reply = _resolve(stub._next_behaviour(), request)
            if reply.delay_s > 0 and stub._closing.wait(reply.delay_s):
                self.close_connection = True
                return  # shutting down: end the hang without answering
            if reply.raw_body is not None:
                body = reply.raw_body
            elif reply.status == 200:
                body = _completion_body(reply, request)
            else:
                body = _error_body(reply)
            self._send(reply.status, body, reply.headers)

    return Handler
