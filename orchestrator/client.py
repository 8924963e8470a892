"""A Python client for the job service, for backend services (httpx, synchronous).

Example::

    from orchestrator.client import Client

    with Client("http://127.0.0.1:8000", api_key="ork_...") as client:
        job = client.submit("outbound_call_turn", [{"id": 1, "utterance": "stop calling me"}])
        for event in client.stream(job["id"]):
            print(event["event"], event["data"]["items_done"] if "items_done" in event["data"] else "")
        for line in client.results(job["id"]):
            print(line)
        turn = client.invoke("outbound_call_turn", {"utterance": "yes"})

``submit`` sends an ``Idempotency-Key`` (one is made if you give none) and retries 429s after
their ``Retry-After``, a bounded number of times: a retry can never create a second job.
Errors come back as :class:`ServiceError` carrying the problem's ``status``, ``code`` and
field ``errors``.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx
import tenacity

from orchestrator.errors import ServiceError
from orchestrator.llm.providers import retry_after_s

__all__ = ["Client", "ServiceError"]

_TERMINAL = ("succeeded", "failed", "cancelled")


class Client:
    """The job service over HTTP. Close it (or use ``with``) when done."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        max_retries: int = 5,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(
            base_url=base_url, headers=headers, timeout=timeout, transport=transport
        )
        self.max_retries = max_retries

    # -- jobs ---------------------------------------------------------------------------------

    def submit(
        self,
        graph: str | None,
        items: Iterable[Any],
        *,
        task: str | None = None,
        fields: dict[str, str] | None = None,
        idempotency_key: str | None = None,
        webhook_url: str | None = None,
    ) -> dict[str, Any]:
        """Submit a job with inline items; returns the job view (``id``, ``status``, ...)."""
        body: dict[str, Any] = {"items": list(items)}
        for name, value in (
            ("graph", graph),
            ("task", task),
            ("fields", fields),
            ("webhook_url", webhook_url),
        ):
            if value is not None:
                body[name] = value
        key = idempotency_key or uuid.uuid4().hex
        return self._retrying(
            lambda: self._http.post("/v1/jobs", json=body, headers={"Idempotency-Key": key})
        )

    def submit_file(
        self,
        path: str | Path,
        graph: str | None = None,
        *,
        task: str | None = None,
        fields: dict[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Submit a JSONL file (uploaded as multipart; the service spools it to disk)."""
        data = {k: v for k, v in {"graph": graph, "task": task}.items() if v is not None}
        if fields is not None:
            data["fields"] = ",".join(f"{name}:{kind}" for name, kind in fields.items())
        key = idempotency_key or uuid.uuid4().hex

        def post() -> httpx.Response:
            with Path(path).open("rb") as fh:
                files = {"file": (Path(path).name, fh, "application/x-ndjson")}
                return self._http.post(
                    "/v1/jobs", data=data, files=files, headers={"Idempotency-Key": key}
                )

        return self._retrying(post)

    def get(self, job_id: str) -> dict[str, Any]:
        """The job's status, progress and ledger."""
        return _json(self._http.get(f"/v1/jobs/{job_id}"))

    def cancel(self, job_id: str) -> dict[str, Any]:
        return _json(self._http.post(f"/v1/jobs/{job_id}/cancel"))

    def wait(self, job_id: str, *, timeout: float = 3600.0, poll: float = 0.5) -> dict[str, Any]:
        """Poll until the job ends (TimeoutError after ``timeout`` seconds)."""
        deadline = time.monotonic() + timeout
        while True:
            view = self.get(job_id)
            if view["status"] in _TERMINAL:
                return view
            if time.monotonic() >= deadline:
                raise TimeoutError(f"job {job_id} still {view['status']} after {timeout} s")
            time.sleep(poll)

    def stream(self, job_id: str, *, timeout: float = 3600.0) -> Iterator[dict[str, Any]]:
        """Server-sent events: ``{"event": "progress"|"done", "data": {...}}`` until the job ends."""
        limits = httpx.Timeout(self._http.timeout.connect, read=60.0)
        deadline = time.monotonic() + timeout
        with self._http.stream("GET", f"/v1/jobs/{job_id}/events", timeout=limits) as response:
            if response.status_code >= 400:
                response.read()
                _json(response)
            event: dict[str, Any] = {}
            for line in response.iter_lines():
                if time.monotonic() > deadline:
                    raise TimeoutError(f"job {job_id} did not end in {timeout} s")
                if not line:
                    if "data" in event:
                        yield {"event": event.get("event", "message"), "data": event["data"]}
                        if event.get("event") == "done":
                            return
                    event = {}
                elif line.startswith(":"):
                    continue  # ping
                else:
                    name, _, value = line.partition(":")
                    value = value.removeprefix(" ")
                    event[name] = json.loads(value) if name == "data" else value

    def results(self, job_id: str, *, page_size: int = 1000) -> Iterator[dict[str, Any]]:
        """Every result in input order, fetched page by page (waits for a running job)."""
        cursor = -1
        while True:
            page = _json(
                self._http.get(
                    f"/v1/jobs/{job_id}/results", params={"cursor": cursor, "limit": page_size}
                )
            )
            yield from page["results"]
            cursor = page["next_cursor"]
            if page["complete"]:
                return
            if not page["results"]:
                time.sleep(0.5)

    # -- real-time turns ----------------------------------------------------------------------

    def invoke(self, graph: str, item: dict[str, Any], *, id: Any = None) -> dict[str, Any]:  # noqa: A002
        """One real-time turn: the result line (``id``, outputs, ``escalate``)."""
        body: dict[str, Any] = {"input": item}
        if id is not None:
            body["id"] = id
        return _json(self._http.post(f"/v1/graphs/{graph}/invoke", json=body))

    # -- plumbing -----------------------------------------------------------------------------

    def _retrying(self, send: Any) -> dict[str, Any]:
        """``send()`` and read its JSON; a 429 is sent again after its ``Retry-After``, at most
        ``max_retries`` times (submits carry an idempotency key, so a retry never makes a
        second job)."""
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(_overloaded),
            wait=_wait_retry_after,
            stop=tenacity.stop_after_attempt(self.max_retries + 1),
            reraise=True,
        )
        return retrying(lambda: _json(send()))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _overloaded(exc: BaseException) -> bool:
    return isinstance(exc, ServiceError) and exc.status == 429


def _wait_retry_after(state: tenacity.RetryCallState) -> float:
    exc = state.outcome.exception() if state.outcome is not None else None
    return getattr(exc, "retry_after", None) or 1.0


def _retry_after(response: httpx.Response) -> float:
    """The wait a 429 asks for (the gateway's parser: seconds or an HTTP date), 0.1-60 s."""
    asked = retry_after_s(response.headers)
    return min(60.0, max(0.1, 1.0 if asked is None else asked))


def _json(response: httpx.Response) -> dict[str, Any]:
    if response.status_code >= 400:
        try:
            problem = response.json()
        except ValueError:
            problem = {"detail": response.text[:500]}
        error = ServiceError(response.status_code, problem if isinstance(problem, dict) else {})
        if response.status_code == 429:
            error.retry_after = _retry_after(response)
        raise error
    data: dict[str, Any] = response.json()
    return data
