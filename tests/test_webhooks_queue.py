"""The webhook queue (issue #16): deliveries in the store, sent from their own thread, signed with
a timestamp, retried with backoff, resumed after a crash with the same delivery id."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from orchestrator.errors import UnknownJob
from orchestrator.service.webhook_policy import WebhookPolicy
from orchestrator.service.webhook_queue import WebhookQueue
from orchestrator.service.webhooks import verify_signature

SECRET = "s3cret"


class Receiver:
    """A webhook endpoint on loopback that answers each POST with the next status of a script
    (then 204), after ``delay_s``."""

    def __init__(
        self, statuses: list[int] | None = None, delay_s: float = 0.0, port: int = 0
    ) -> None:
        self.statuses = list(statuses or [])
        self.delay_s = delay_s
        self.received: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                headers = {k.lower(): v for k, v in self.headers.items()}
                outer.received.append({"body": body, "headers": headers})
                time.sleep(outer.delay_s)
                status = outer.statuses.pop(0) if outer.statuses else 204
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/done"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _queue(db: str, **options: Any) -> WebhookQueue:
    return WebhookQueue(
        db,
        policy=WebhookPolicy(["127.0.0.1"]),
        secret=SECRET,
        timeout_s=options.pop("timeout_s", 2.0),
        backoff_s=options.pop("backoff_s", 0.05),
        **options,
    )


def _wait(check: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_delivery_is_signed_with_its_timestamp_and_id(tmp_path):
    receiver = Receiver()
    queue = _queue(str(tmp_path / "s.db"))
    queue.start()
    try:
        delivery_id = queue.expect("job-1", receiver.url)
        queue.ready("job-1", {"id": "job-1", "status": "succeeded"})
        _wait(lambda: queue.get("job-1").delivered_at is not None)
    finally:
        queue.close()
        receiver.close()
    [got] = receiver.received
    headers = got["headers"]
    assert json.loads(got["body"]) == {"id": "job-1", "status": "succeeded"}
    assert headers["x-orchestrator-delivery"] == delivery_id
    stamp, signature = headers["x-orchestrator-timestamp"], headers["x-orchestrator-signature"]
    assert abs(int(stamp) - time.time()) < 60
    assert verify_signature(SECRET, got["body"], stamp, signature)
    # the timestamp is signed: an old delivery replayed later, or a changed one, fails
    assert not verify_signature(SECRET, got["body"], stamp, signature, now=int(stamp) + 301)
    assert not verify_signature(SECRET, got["body"], str(int(stamp) + 1), signature)
    assert not verify_signature("other", got["body"], stamp, signature)


def test_failures_are_retried_with_the_same_id_then_given_up(tmp_path):
    receiver = Receiver(statuses=[500, 503])
    gives_up = Receiver(statuses=[500, 500, 500])
    queue = _queue(str(tmp_path / "s.db"), max_attempts=3)
    queue.start()
    try:
        queue.expect("ok", receiver.url)
        queue.ready("ok", {"id": "ok"})
        queue.expect("never", gives_up.url)
        queue.ready("never", {"id": "never"})
        _wait(lambda: queue.get("ok").delivered_at is not None)
        _wait(lambda: queue.get("never").gave_up_at is not None)
        ok, never = queue.get("ok"), queue.get("never")
    finally:
        queue.close()
        receiver.close()
        gives_up.close()
    ids = {r["headers"]["x-orchestrator-delivery"] for r in receiver.received}
    assert len(receiver.received) == 3 and ids == {ok.delivery_id} and ok.attempts == 3
    assert len(gives_up.received) == 3 and never.attempts == 3 and never.last_error == "HTTP 500"
    assert never.delivered_at is None and never.next_at is None


def test_a_delivery_owed_at_a_crash_is_sent_on_the_next_start(tmp_path):
    """At least once: an attempt that failed, or a job that ended after its delivery was owed
    but before its view was queued, is delivered by the next process, with the same id."""
    db = str(tmp_path / "s.db")
    port = _free_port()
    url = f"http://127.0.0.1:{port}/done"  # nothing listens: the first process's attempt fails
    first = _queue(db, backoff_s=0.01)
    first.start()
    first_id = first.expect("sent-late", url)
    first.ready("sent-late", {"id": "sent-late"})
    _wait(lambda: first.get("sent-late").attempts >= 1)
    first.expect("ended", url)  # the job's status was written, then the process died
    first.expect("still-running", url)
    first.expect("erased", url)
    first.close()

    receiver = Receiver(port=port)
    views = {"ended": {"id": "ended", "status": "failed"}, "still-running": None}

    def view_of(job_id: str) -> dict[str, Any] | None:
        if job_id not in views:
            raise UnknownJob(job_id)
        return views[job_id]

    second = _queue(db, view_of=view_of)
    second.start()
    try:
        _wait(lambda: second.get("sent-late").delivered_at is not None)
        _wait(lambda: second.get("ended").delivered_at is not None)
        assert second.get("still-running").payload is None  # sent once the job ends
        assert second.get("erased") is None  # the job was deleted: nothing to tell
    finally:
        second.close()
        receiver.close()
    by_id = {
        r["headers"]["x-orchestrator-delivery"]: json.loads(r["body"]) for r in receiver.received
    }
    assert by_id[first_id] == {"id": "sent-late"}
    assert {"id": "ended", "status": "failed"} in by_id.values()


def test_a_refused_address_is_given_up_at_once(tmp_path):
    queue = WebhookQueue(str(tmp_path / "s.db"), policy=WebhookPolicy(["*"]), backoff_s=0.01)
    queue.start()
    try:
        queue.expect("job", "http://localhost:9/x")  # a wildcard never reaches loopback
        queue.ready("job", {"id": "job"})
        _wait(lambda: queue.get("job").gave_up_at is not None)
        delivery = queue.get("job")
    finally:
        queue.close()
    assert delivery.attempts == 1 and "resolves to" in (delivery.last_error or "")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    """A proxy variable in the environment must not matter (the queue ignores them)."""
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")


def test_two_replicas_on_one_store_send_a_delivery_once(tmp_path):
    """The soak (bench/soak.py) found both replicas' senders POSTing the same due row: a sender
    now claims a row (compare-and-set on next_at) before sending it."""
    receiver = Receiver(delay_s=0.3)
    first, second = _queue(str(tmp_path / "s.db")), _queue(str(tmp_path / "s.db"))
    first.start()
    second.start()
    try:
        for i in range(6):
            first.expect(f"job-{i}", receiver.url)
            (first if i % 2 else second).ready(f"job-{i}", {"id": f"job-{i}"})
        _wait(lambda: all(first.get(f"job-{i}").delivered_at for i in range(6)))
        time.sleep(0.5)  # a duplicate would arrive within one more poll
    finally:
        first.close()
        second.close()
        receiver.close()
    ids = [r["headers"]["x-orchestrator-delivery"] for r in receiver.received]
    assert len(ids) == len(set(ids)) == 6
