"""The gate in front of the app: what a request must pass before anything reads its body.

Pure ASGI, outermost, so it runs before routing, parsing and the turn fast path:

1. **Host**: the ``Host`` header must be one of ``trusted_hosts`` (loopback names by default), so
   a page on another origin cannot reach a loopback service through DNS rebinding. Else 400.
2. **Declared size**: a ``Content-Length`` over the route's limit (3.) is 413 at once, whoever
   sends it.
3. **Key first**: with auth on, a request that carries a body to ``/v1/...`` without a valid key
   gets 401 before a byte of its body is read (FastAPI parses a route's body before its
   dependencies check the key; this keeps anonymous bodies unparsed). The route still decides
   the scope (403). With ``docs_public`` off, ``/docs``, ``/redoc`` and ``/openapi.json`` need a
   key too.
4. **Body size**: the bytes are counted as they arrive from ``receive()`` — chunked bodies included — and the
   request stops with 413 the moment the count passes the limit. Limits per route:
   ``max_upload_bytes`` for a multipart ``POST /v1/jobs`` (the JSONL upload),
   ``max_turn_bytes`` for a real-time turn, ``max_request_bytes`` for everything else.

Every refusal is counted in ``orchestrator_refused_total{reason}`` (``/metrics``): the gate's own
(``host`` 400, ``key`` 401, ``size`` 413) and those the app answers behind it (a 401, 413 or 429
from a route: ``key``, ``size``, ``limit``), so an operator sees probing and back-pressure even
though these requests never reach a route's metrics.

Example::

    app.add_middleware(RequestGate, settings=settings, keys=KeyRing(settings.api_keys))
"""

from __future__ import annotations

import json
from typing import Any

from starlette.exceptions import HTTPException

from orchestrator.service.auth import KeyRing
from orchestrator.service.metrics import ServiceMetrics
from orchestrator.service.problems import PROBLEM, ApiError, problem_body
from orchestrator.service.settings import ServiceSettings

__all__ = ["BodyTooLarge", "RequestGate", "host_allowed"]

_DOCS = ("/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json")
_WITH_BODY = ("POST", "PUT", "PATCH", "DELETE")
#: statuses the app answers that count as refusals, and their reason label
_REFUSALS = {401: "key", 413: "size", 429: "limit"}


class BodyTooLarge(ApiError, HTTPException):  # type: ignore[misc]  # both set headers
    """The body passed its limit while streaming (413). Raised from ``receive()``, so whoever is
    reading the body stops there; the app's handlers answer it like any ``ApiError``. It is an
    ``HTTPException`` too because FastAPI turns any other error met while reading a route's body
    into a 400."""

    def __init__(self, limit: int, setting: str) -> None:
        detail = (
            f"the body is larger than {limit} bytes (the {setting} setting); "
            "send bigger jobs as a JSONL upload (multipart POST /v1/jobs)"
        )
        ApiError.__init__(self, 413, "request_too_large", detail)
        self.status_code = 413


class RequestGate:
    """Host check, key before body, body limit counted while it streams (module docstring)."""

    def __init__(
        self,
        app: Any,
        settings: ServiceSettings,
        keys: KeyRing,
        metrics: ServiceMetrics | None = None,
    ) -> None:
        self.app, self.settings, self.keys, self.metrics = app, settings, keys, metrics
        self._hosts = [h.lower() for h in settings.trusted_hosts]

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k: v for k, v in scope["headers"]}
        host = headers.get(b"host", b"").decode("latin-1")
        if not host_allowed(host, self._hosts):
            detail = f"Host {host[:100]!r} is not one of this service's trusted_hosts"
            self._refused("host")
            await _problem(send, scope, 400, "untrusted_host", detail)
            return
        limit, setting = self._limit(scope, headers)
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:  # whoever sends it
            too_large = BodyTooLarge(limit, setting).detail
            self._refused("size")
            await _problem(send, scope, 413, "request_too_large", too_large)
            return
        if self._needs_key(scope) and not self._known_key(headers):
            detail = "send a valid API key: Authorization: Bearer <key>"
            extra = [(b"www-authenticate", b"Bearer")]
            self._refused("key")
            await _problem(send, scope, 401, "unauthorized", detail, extra)
            return
        await self._counted(scope, receive, send, limit, setting)

    async def _counted(self, scope: Any, receive: Any, send: Any, limit: int, name: str) -> None:
        """Run the app with a ``receive`` that counts body bytes and raises past ``limit``."""
        size = 0
        started = False

        async def counting_receive() -> Any:
            nonlocal size
            message = await receive()
            if message["type"] == "http.request":
                size += len(message.get("body", b""))
                if size > limit:
                    raise BodyTooLarge(limit, name)
            return message

        async def tracking_send(message: Any) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                reason = _REFUSALS.get(message["status"])
                if reason is not None:  # the app refused it (a route's 401, 413 or 429)
                    self._refused(reason)
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge as exc:  # read outside the app's handlers (the turn fast path)
            if started:
                raise
            self._refused("size")
            await _problem(send, scope, 413, exc.code, exc.detail)

    def _refused(self, reason: str) -> None:
        if self.metrics is not None:
            self.metrics.refused.labels(reason).inc()

    def _needs_key(self, scope: Any) -> bool:
        if not self.settings.auth:
            return False
        path = scope["path"]
        if path in _DOCS:
            return not self.settings.docs_public
        return scope["method"] in _WITH_BODY and path.startswith("/v1/")

    def _known_key(self, headers: dict[bytes, bytes]) -> bool:
        header = headers.get(b"authorization")
        return self.keys.authenticate(header.decode("latin-1") if header else None) is not None

    def _limit(self, scope: Any, headers: dict[bytes, bytes]) -> tuple[int, str]:
        settings, path = self.settings, scope["path"]
        if scope["method"] == "POST" and path.rstrip("/") == "/v1/jobs":
            content_type = headers.get(b"content-type", b"").lower()
            if content_type.startswith(b"multipart/form-data"):
                return settings.max_upload_bytes, "max_upload_bytes"
        if path.startswith("/v1/graphs/") and path.endswith("/invoke"):
            return settings.max_turn_bytes, "max_turn_bytes"
        return settings.max_request_bytes, "max_request_bytes"


def host_allowed(host: str, allowed: list[str]) -> bool:
    """Whether a ``Host`` header (port and IPv6 brackets aside) matches a trusted name: exact,
    ``*.example.com`` (any subdomain) or ``*`` (any)."""
    name = host.strip().lower()
    if name.startswith("["):  # [::1]:8000
        name = name[1 : name.find("]")] if "]" in name else name
    elif name.count(":") == 1:  # example.com:8000
        name = name.split(":")[0]
    for pattern in allowed:
        if pattern == "*" or name == pattern:
            return True
        if pattern.startswith("*.") and name.endswith(pattern[1:]):
            return True
    return False


async def _problem(
    send: Any,
    scope: Any,
    status: int,
    code: str,
    detail: str,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """A problem answered before the app saw the request (the same body as the app's)."""
    body = json.dumps(problem_body(status, code, detail, scope["path"])).encode()
    headers = [
        (b"content-type", PROBLEM.encode()),
        (b"content-length", str(len(body)).encode()),
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
