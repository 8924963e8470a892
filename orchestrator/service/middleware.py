"""ASGI middleware of the service: request metrics, and the fast path of real-time turns."""

from __future__ import annotations

import json
import re
import time
from typing import TYPE_CHECKING, Any

from orchestrator.service.metrics import ServiceMetrics

if TYPE_CHECKING:
    from orchestrator.service.service import Service

__all__ = ["MetricsMiddleware", "TurnFastPath"]


class MetricsMiddleware:
    """Counts requests and their latency per route template (pure ASGI: no body buffering)."""

    def __init__(self, app: Any, metrics: ServiceMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def send_status(message: Any) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "")
            self.metrics.http_requests.labels(path, method, str(status[0])).inc()
            self.metrics.http_seconds.labels(path, method).observe(time.perf_counter() - started)


_INVOKE = re.compile(r"^/v1/graphs/([A-Za-z0-9_-]{1,100})/invoke$")
_INVOKE_ROUTE = "/v1/graphs/{name}/invoke"


class TurnFastPath:
    """Answers well-formed real-time turns before FastAPI's routing, dependency injection and
    validation (about half of a turn's CPU on the FastAPI path). Anything else — a bad key, a
    missing scope, a malformed body, an invalid item, a cold graph, overload — is replayed into
    the documented FastAPI route, which gives the same answer it always does."""

    def __init__(self, app: Any, service: Service) -> None:
        self.app, self.service = app, service

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        match = None
        if scope["type"] == "http" and scope["method"] == "POST":
            match = _INVOKE.match(scope["path"])
        if match is None:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        body, complete = await _read_small(receive, self.service.settings.max_turn_bytes)
        answer = await self._turn(match.group(1), scope, body) if complete else None
        if answer is None:  # not the happy path: let the real route answer
            await self.app(scope, _replay(body, receive, complete), send)
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(answer)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": answer})
        metrics = self.service.metrics
        metrics.http_requests.labels(_INVOKE_ROUTE, "POST", "200").inc()
        metrics.http_seconds.labels(_INVOKE_ROUTE, "POST").observe(time.perf_counter() - started)

    async def _turn(self, name: str, scope: Any, body: bytes) -> bytes | None:
        service = self.service
        settings = service.settings
        if settings.auth:
            header = next((v for k, v in scope["headers"] if k == b"authorization"), None)
            principal = service.keys.authenticate(header.decode("latin-1") if header else None)
            if principal is None or not principal.can("graphs:invoke"):
                return None
        if service.turns_full:
            return None
        if service.turns.ready(name) is None:
            return None  # first turn of a graph: compile and warm it on the documented route
        try:
            request = json.loads(body)
        except ValueError:
            return None
        if not isinstance(request, dict) or not request.keys() <= {"input", "id"}:
            return None
        values, item_id = request.get("input"), request.get("id")
        if not isinstance(values, dict) or not (
            item_id is None or (isinstance(item_id, int | str) and not isinstance(item_id, bool))
        ):
            return None
        limit = settings.max_input_chars
        if any(isinstance(v, str) and len(v) > limit for v in values.values()):
            return None  # the route names the field and the limit
        started = time.perf_counter()
        with service.turn_slot():
            result = await service.turns.invoke(
                name, {**values, "id": item_id if item_id is not None else "turn"}
            )
        if result.error is not None and result.error.code == "invalid_item":
            return None  # the route names the bad field
        service.record_turn(name, result, time.perf_counter() - started)
        return json.dumps(result.to_dict(), default=str).encode()


async def _read_small(receive: Any, limit: int) -> tuple[bytes, bool]:
    """The body if it is at most ``limit`` bytes (``complete``), else what was read so far."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), False
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), True
        if size > limit:
            return b"".join(chunks), False


def _replay(body: bytes, receive: Any, complete: bool) -> Any:
    """A ``receive`` that hands the app the bytes already read, then the rest of the stream."""
    sent = False

    async def replay() -> Any:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": not complete}
        return await receive()

    return replay
