"""The webhook queue: deliveries kept in the store and sent from their own thread.

A job's webhook used to be sent by the job's own task, so a slow endpoint (3 tries of a 5 s
timeout and the waits between: ~18 s) kept a running-job slot busy, and a crash in between lost
the delivery. Now a job's end only writes a row of ``webhook_deliveries``; a background thread
with its own event loop sends due rows, at most ``concurrency`` at once, each attempt bounded by
``timeout_s``, retried with exponential backoff (``backoff_s``, doubling, at most 15 min) up to
``max_attempts`` tries.

At least once: the row is written in two steps around the job's final status, in the same
database as the jobs. :meth:`WebhookQueue.expect` (before the status is written) records that a
delivery is owed; :meth:`WebhookQueue.ready` (after) adds the final view and makes it due. On
start, rows still waiting for their view get it from ``view_of`` (the job ended before a crash),
or wait for the job to end (it resumes). A delivery interrupted by a stop or a crash is sent
again on the next start, with the same ``X-Orchestrator-Delivery`` id: receivers deduplicate on it.

Example::

    queue = WebhookQueue("sqlite:///data/orchestrator.db", policy=WebhookPolicy(["*"]),
                         secret="s3cret", view_of=lambda job_id: {...})
    queue.start()
    queue.expect("job-1", "https://hooks.example.com/done")
    queue.ready("job-1", {"id": "job-1", "status": "succeeded"})
    queue.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.errors import UnknownJob, WebhookRefused
from orchestrator.service.webhook_policy import WebhookPolicy
from orchestrator.service.webhooks import deliver_once, webhook_client
from orchestrator.store.location import open_db
from orchestrator.store.migrations import Schema
from orchestrator.telemetry.logs import get_logger

if TYPE_CHECKING:
    import httpx

    from orchestrator.service.metrics import ServiceMetrics

__all__ = ["Delivery", "WebhookQueue"]

log = get_logger(__name__)

# ``next_at`` NULL: not due (waiting for the view, or done).
#: version 1 (see orchestrator.store.migrations: append steps, never edit one that shipped)
_V1 = """
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    delivery_id TEXT PRIMARY KEY,
    job_id TEXT NOT NULL UNIQUE,
    url TEXT NOT NULL,
    payload TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at REAL,
    delivered_at REAL,
    gave_up_at REAL,
    last_error TEXT,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS webhook_deliveries_due ON webhook_deliveries (next_at)
"""
_SCHEMA = Schema("webhook_deliveries", [_V1])
_COLUMNS = (
    "delivery_id, job_id, url, payload, attempts, next_at, delivered_at, gave_up_at, last_error"
)
#: how long past an attempt's time bound a claimed delivery stays with the replica that took it
_CLAIM_MARGIN_S = 30.0
#: the longest wait between two attempts
_MAX_BACKOFF_S = 900.0
#: how often the sender looks for due rows when nothing woke it
_POLL_S = 0.5


@dataclass(frozen=True)
class Delivery:
    """One row of the queue."""

    delivery_id: str
    job_id: str
    url: str
    payload: dict[str, Any] | None
    attempts: int
    next_at: float | None
    delivered_at: float | None
    gave_up_at: float | None
    last_error: str | None


class WebhookQueue:
    """Deliveries in the store, sent by a thread of their own; :meth:`start` before use.

    ``view_of(job_id)``: the job's final view, None while it has not ended, UnknownJob when it
    is gone (its delivery is dropped).
    """

    def __init__(
        self,
        location: Path | str,
        *,
        policy: WebhookPolicy,
        secret: str | None = None,
        timeout_s: float = 5.0,
        max_attempts: int = 8,
        backoff_s: float = 2.0,
        concurrency: int = 8,
        view_of: Callable[[str], dict[str, Any] | None] | None = None,
        metrics: ServiceMetrics | None = None,
    ) -> None:
        self.policy = policy
        self._db = open_db(location, _SCHEMA)
        self._secret, self._timeout_s = secret, timeout_s
        self._max_attempts, self._backoff_s = max_attempts, backoff_s
        self._concurrency = concurrency
        self._view_of, self._metrics = view_of, metrics
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._ready = threading.Event()
        self._stopping = False

    # -- writing (any thread) -----------------------------------------------------------------

    def expect(self, job_id: str, url: str) -> str:
        """Record that ``job_id``'s end is owed a delivery to ``url``; its delivery id (the same
        on every call for one job)."""
        self._db.execute(
            "INSERT INTO webhook_deliveries (delivery_id, job_id, url, created_at)"
            " VALUES (?, ?, ?, ?) ON CONFLICT (job_id) DO NOTHING",
            (uuid.uuid4().hex, job_id, url, time.time()),
        )
        rows = self._db.execute(
            "SELECT delivery_id FROM webhook_deliveries WHERE job_id = ?", (job_id,)
        )
        return str(rows[0][0])

    def ready(self, job_id: str, view: dict[str, Any]) -> None:
        """The job ended with ``view``: its delivery is due now (once; later calls change
        nothing)."""
        self._db.execute(
            "UPDATE webhook_deliveries SET payload = ?, next_at = ?"
            " WHERE job_id = ? AND payload IS NULL",
            (json.dumps(view, default=str), time.time(), job_id),
        )
        self._poke()

    def get(self, job_id: str) -> Delivery | None:
        """The delivery of one job's end, if one is owed or was made."""
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM webhook_deliveries WHERE job_id = ?", (job_id,)
        )
        return _delivery(rows[0]) if rows else None

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Give views to deliveries a crash left without one, then start sending."""
        self._resume()
        self._stopping = False
        self._thread = threading.Thread(
            target=self._main, name="orchestrator-webhooks", daemon=True
        )
        self._thread.start()
        self._ready.wait(timeout=30)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop sending (attempts in flight are cancelled: sent again on the next start)."""
        self._stopping = True
        self._poke()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def close(self) -> None:
        self.stop()
        self._db.close()

    def _resume(self) -> None:
        rows = self._db.execute(
            "SELECT job_id FROM webhook_deliveries WHERE payload IS NULL AND delivered_at IS NULL"
            " AND gave_up_at IS NULL"
        )
        if not rows or self._view_of is None:
            return
        for (job_id,) in rows:
            try:
                view = self._view_of(job_id)
            except UnknownJob:
                self._db.execute("DELETE FROM webhook_deliveries WHERE job_id = ?", (job_id,))
                continue
            if view is not None:  # the job ended before the crash: its delivery is due
                self.ready(job_id, view)
        log.info("webhooks_resumed", owed=len(rows))

    def _poke(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed in between
                loop.call_soon_threadsafe(wake.set)

    # -- the sender thread --------------------------------------------------------------------

    def _main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._send_due())
        finally:
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()
            self._loop = None

    async def _send_due(self) -> None:
        self._wake = asyncio.Event()
        self._ready.set()
        inflight: dict[str, asyncio.Task[None]] = {}
        async with webhook_client(self._timeout_s) as client:  # one pool for every delivery
            await self._loop_until_stopped(client, inflight)
        for task in list(inflight.values()):
            task.cancel()
        await asyncio.gather(*inflight.values(), return_exceptions=True)

    async def _loop_until_stopped(
        self, client: httpx.AsyncClient, inflight: dict[str, asyncio.Task[None]]
    ) -> None:
        assert self._wake is not None
        while not self._stopping:
            self._wake.clear()
            free = self._concurrency - len(inflight)
            wait = _POLL_S
            if free > 0:
                due, later = await asyncio.to_thread(self._due, free, list(inflight))
                for delivery in due:
                    task = asyncio.create_task(self._attempt(client, delivery))
                    inflight[delivery.delivery_id] = task
                    task.add_done_callback(functools.partial(self._done, inflight))
                if later is not None:  # sleep until the next retry is due, not a poll longer
                    wait = min(wait, max(0.0, later - time.time()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=wait)

    def _done(self, inflight: dict[str, asyncio.Task[None]], task: asyncio.Task[None]) -> None:
        for key, value in list(inflight.items()):
            if value is task:
                del inflight[key]
        if self._wake is not None:
            self._wake.set()

    def _due(self, limit: int, exclude: list[str]) -> tuple[list[Delivery], float | None]:
        """Up to ``limit`` due deliveries not in flight, and when the next later one is due."""
        now = time.time()
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM webhook_deliveries WHERE next_at IS NOT NULL"
            " AND next_at <= ? ORDER BY next_at LIMIT ?",
            (now, limit + len(exclude)),
        )
        found = [_delivery(r) for r in rows]
        later = self._db.execute(
            "SELECT MIN(next_at) FROM webhook_deliveries WHERE next_at > ?", (now,)
        )
        due = [d for d in found if d.delivery_id not in exclude and self._claim(d, now)][:limit]
        return due, (later[0][0] if later else None)

    def _claim(self, delivery: Delivery, now: float) -> bool:
        """Take a due delivery for this replica: its ``next_at`` moves past this attempt's time
        bound, compare-and-set, so another replica on the same store skips it (and retries it
        only if this one dies before recording the attempt)."""
        claimed = self._db.execute(
            "UPDATE webhook_deliveries SET next_at = ? WHERE delivery_id = ? AND next_at = ?"
            " RETURNING delivery_id",
            (now + self._timeout_s + _CLAIM_MARGIN_S, delivery.delivery_id, delivery.next_at),
        )
        return bool(claimed)

    async def _attempt(self, client: httpx.AsyncClient, delivery: Delivery) -> None:
        """Send one delivery once, then record how it went."""
        body = json.dumps(delivery.payload).encode()
        attempts = delivery.attempts + 1
        error: str | None = None
        final = False
        try:
            target = await self.policy.resolve(delivery.url)
            status = await asyncio.wait_for(
                deliver_once(
                    client, target, body, delivery_id=delivery.delivery_id, secret=self._secret
                ),
                timeout=self._timeout_s,  # the whole attempt, not each phase of it
            )
            if not 200 <= status < 300:
                error = f"HTTP {status}"
        except WebhookRefused as exc:  # the address is not allowed: trying again cannot help
            error, final = str(exc), True
        except Exception as exc:  # noqa: BLE001 - any other failure is a failed attempt
            error = f"{type(exc).__name__}: {exc}"[:500]
        await asyncio.to_thread(self._record, delivery, attempts, error, final)

    def _record(self, delivery: Delivery, attempts: int, error: str | None, final: bool) -> None:
        now = time.time()
        if error is None:
            self._db.execute(
                "UPDATE webhook_deliveries SET attempts = ?, delivered_at = ?, next_at = NULL,"
                " last_error = NULL WHERE delivery_id = ?",
                (attempts, now, delivery.delivery_id),
            )
            log.info("webhook_delivered", job_id=delivery.job_id, attempts=attempts)
            self._count("delivered")
            return
        if final or attempts >= self._max_attempts:
            self._db.execute(
                "UPDATE webhook_deliveries SET attempts = ?, gave_up_at = ?, next_at = NULL,"
                " last_error = ? WHERE delivery_id = ?",
                (attempts, now, error, delivery.delivery_id),
            )
            log.warning("webhook_gave_up", job_id=delivery.job_id, attempts=attempts, error=error)
            self._count("gave_up")
            return
        wait = min(self._backoff_s * 2 ** (attempts - 1), _MAX_BACKOFF_S)
        self._db.execute(
            "UPDATE webhook_deliveries SET attempts = ?, next_at = ?, last_error = ?"
            " WHERE delivery_id = ?",
            (attempts, now + wait, error, delivery.delivery_id),
        )
        log.warning("webhook_failed", job_id=delivery.job_id, attempt=attempts, error=error)
        self._count("failed")

    def _count(self, outcome: str) -> None:
        if self._metrics is not None:
            self._metrics.webhooks.labels(outcome).inc()


def _delivery(row: tuple[Any, ...]) -> Delivery:
    return Delivery(
        delivery_id=row[0],
        job_id=row[1],
        url=row[2],
        payload=json.loads(row[3]) if row[3] else None,
        attempts=int(row[4]),
        next_at=row[5],
        delivered_at=row[6],
        gave_up_at=row[7],
        last_error=row[8],
    )
