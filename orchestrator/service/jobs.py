"""The job manager: admits jobs into the store, runs them in the background, resumes them.

Admission (on the caller's thread) is bounded: at most ``max_active_jobs`` jobs waiting or running
and ``max_active_items`` items without a result; past either, :class:`Overloaded` (HTTP 429 with
``Retry-After``). One key gets a share: ``max_active_jobs_per_key`` jobs and
``max_items_per_minute_per_key`` items (:class:`QuotaExceeded`, also a 429). Items go straight to
the store in batches, each counted against the backlog and the key's rate as it is stored, so an
upload still streaming holds its place and the backlog lives on disk, never in memory.

Execution happens on one background thread with its own event loop, so a batch job never stalls
the API's loop (where real-time turns run). At most ``max_running_jobs`` jobs run at once; each
runs its chunks through :meth:`Runtime.submit` — one runtime ``Job`` per chunk, at most
``max_inflight_chunks`` chunks in flight — and commits every chunk's results in one transaction
keyed by ``(job_id, chunk_index)``.

Durability is chunk-level: jobs left ``running`` by a dead process become ``interrupted`` and
resume; chunks already committed are skipped, the others run again (a chunk is one LangGraph run
of seconds, and its steps are pure functions of the chunk, so re-running an uncommitted chunk is
exact). With step checkpoints on, a chunk caught mid-run continues after its last finished step.

Several replicas may share one store. A running job (and an upload still arriving) holds a lease
in the store (:mod:`orchestrator.store.leases`) that this replica renews every
``lease_renew_s``; at start and then on every renewal tick, each replica takes over the jobs whose
lease has expired (their replica died), and only those. A job whose chunk was started
``max_chunk_starts`` times without committing is failed as a crash loop instead of resumed. A
replica that lost a lease (it stalled past the expiry) stops that job without writing to it.

Example::

    manager = JobManager(store, runtime, graphs_dir=Path("graphs"))
    manager.start()
    job, created = manager.submit(owner="me", graph="outbound_call_turn",
                                  items=inline_items([{"id": 1, "utterance": "hi"}]))
    ...
    manager.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import math
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import structlog

from orchestrator.accounting.ledger import Ledger
from orchestrator.errors import (
    GraphNotFound,
    IdempotencyConflict,
    ItemTooLarge,
    LeaseLost,
    OrchestratorError,
    Overloaded,
    QuotaExceeded,
    StoreUnavailable,
    TooManyItems,
    UnknownJob,
)
from orchestrator.llm.gateway import Budget
from orchestrator.service.item_rate import ItemRate
from orchestrator.service.limits import Limits
from orchestrator.store.item import Item
from orchestrator.store.jobs import (
    ChunkOutcome,
    JobDraft,
    JobRecord,
    Store,
    ledger_from_raw,
)
from orchestrator.store.leases import Lease, LeaseKeeper, new_owner_id
from orchestrator.telemetry.logs import get_logger

if TYPE_CHECKING:
    from orchestrator.graph.compiler import CompiledGraph
    from orchestrator.runtime.runtime import Runtime
    from orchestrator.service.metrics import ServiceMetrics
    from orchestrator.service.webhook_queue import WebhookQueue

__all__ = [
    "GraphNotFound",
    "IdempotencyConflict",
    "JobManager",
    "Limits",
    "Overloaded",
    "TooManyItems",
    "inline_items",
    "job_view",
    "jsonl_items",
]

log = get_logger(__name__)

_GRAPH_NAME = r"^[A-Za-z0-9_-]{1,100}$"
_BATCH = 2000  # items per insert transaction while receiving


def inline_items(values: Iterable[Any]) -> Iterator[Item]:
    """Items given as JSON values (an inline list)."""
    for idx, value in enumerate(values):
        yield Item(idx, value)


def jsonl_items(file: BinaryIO, *, max_line_bytes: int = 2**20) -> Iterator[Item]:
    """Items of a JSONL upload: one per non-blank line; a bad line is kept as a per-item error.

    A line is read at most ``max_line_bytes + 1`` bytes at a time, so a line past the cap raises
    :class:`ItemTooLarge` without ever being held whole (a 2 GiB line costs 1 MiB of memory).
    """
    idx = 0
    number = 0
    while raw := file.readline(max_line_bytes + 1):
        number += 1
        if len(raw) > max_line_bytes and not raw.endswith(b"\n"):
            raise ItemTooLarge(
                f"line {number} of the upload is longer than {max_line_bytes} bytes (the "
                "max_item_bytes setting); keep large data out of the items"
            )
        text = raw.decode("utf-8", errors="replace")
        if text.strip():
            yield Item.from_line(idx, text, line=number)
            idx += 1


class JobManager:
    """Admits, runs, cancels and resumes jobs. Thread-safe; :meth:`start` before use."""

    def __init__(
        self,
        store: Store,
        runtime: Runtime,
        *,
        graphs_dir: Path,
        limits: Limits | None = None,
        metrics: ServiceMetrics | None = None,
        webhooks: WebhookQueue | None = None,
        replica_id: str | None = None,
        lease_s: float = 30.0,
        lease_renew_s: float = 10.0,
        max_chunk_starts: int | None = 3,
    ) -> None:
        self.store = store
        self.runtime = runtime
        self.graphs_dir = Path(graphs_dir)
        self.limits = limits or Limits()
        self.metrics = metrics
        #: where a job's end queues its webhook (sent by the queue's own thread, not the job's)
        self.webhooks = webhooks
        self._admit = threading.Lock()
        self._rate = ItemRate(self.limits.max_items_per_minute_per_key)
        self._compiled: OrderedDict[str, CompiledGraph] = OrderedDict()
        self._compile_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._ready = threading.Event()
        self._stopping = False
        self._running: dict[str, asyncio.Task[None]] = {}
        self._cancelling: set[str] = set()
        self._start_lock: asyncio.Lock | None = None
        #: this replica's lease terms; a stable ``replica_id`` also reclaims its own leases at
        #: start (what its previous run held), instead of waiting for them to expire
        self.lease = Lease(replica_id or new_owner_id(), lease_s)
        self._reclaim = replica_id
        self._max_chunk_starts = max_chunk_starts
        self._keeper = LeaseKeeper(store, self.lease, every_s=lease_renew_s, on_lost=self._lost)
        self._lost_jobs: set[str] = set()
        self._next_recovery = 0.0

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Take over the jobs of dead replicas (and, with a stable ``replica_id``, of this one's
        previous run), then start the lease keeper and the runner thread."""
        self._recover(reclaim=self._reclaim)
        self._keeper.start()
        self._update_gauges()
        self._thread = threading.Thread(target=self._main, name="orchestrator-jobs", daemon=True)
        self._thread.start()
        self._ready.wait(timeout=30)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop running jobs (they become ``interrupted`` and resume on the next start)."""
        self._stopping = True
        self._poke()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._keeper.stop()

    def _recover(self, reclaim: str | None = None) -> None:
        """One takeover round (:meth:`Store.recover`), logged when it took anything."""
        self._next_recovery = time.monotonic() + self._keeper.every_s
        done = self.store.recover(reclaim=reclaim, max_chunk_starts=self._max_chunk_starts)
        if done.interrupted or done.dropped or done.failed:
            log.info(
                "jobs_recovered",
                interrupted=done.interrupted,
                dropped_uploads=done.dropped,
                failed_crash_loop=list(done.failed),
            )
        for job_id in done.failed:
            log.error("job_crash_loop", job_id=job_id)

    def _lost(self, job_id: str) -> None:
        """(lease keeper thread) Another replica took ``job_id`` over: stop running it here."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed in between
                loop.call_soon_threadsafe(self._stop_lost, job_id)

    def _stop_lost(self, job_id: str) -> None:
        task = self._running.get(job_id)
        if task is not None:
            self._lost_jobs.add(job_id)
            task.cancel()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- admission (caller's thread) ---------------------------------------------------------

    def graph(self, name: str) -> CompiledGraph:
        """The graph ``<graphs_dir>/<name>.yaml``, compiled (cached while the file is unchanged)."""
        import re

        from orchestrator.graph.spec import load_graph

        path = self.graphs_dir / f"{name}.yaml"
        if not re.match(_GRAPH_NAME, name) or not path.is_file():
            known = sorted(p.stem for p in self.graphs_dir.glob("*.yaml"))
            raise GraphNotFound(f"no graph {name!r}; known graphs: {', '.join(known) or 'none'}")
        key = f"file:{path}:{path.stat().st_mtime_ns}"
        return self._compile(key, lambda: load_graph(path))

    def submit(
        self,
        *,
        owner: str,
        items: Iterable[Item],
        graph: str | None = None,
        task: str | None = None,
        fields: dict[str, str] | None = None,
        idempotency_key: str | None = None,
        request_sha256: str = "",
        webhook_url: str | None = None,
    ) -> tuple[JobRecord, bool]:
        """Store a job and its items; ``(job, created)``. A known key returns its job.

        Raises GraphNotFound / GraphValidationError (nothing stored), Overloaded, TooManyItems,
        IdempotencyConflict.
        """
        existing = self._replay(owner, idempotency_key, request_sha256)
        if existing is not None:
            return existing, False
        spec_yaml, graph_name = None, "planned"
        if graph is not None:
            compiled = self.graph(graph)
            spec_yaml, graph_name = compiled.spec.to_yaml(), compiled.name
        draft = JobDraft(
            owner=owner,
            graph=graph_name,
            chunk_size=self.runtime.settings.chunk_size,
            spec_yaml=spec_yaml,
            task=task,
            fields=fields,
            idempotency_key=idempotency_key,
            request_sha256=request_sha256,
            webhook_url=webhook_url,
        )
        job, created = self._admit_job(draft)
        if not created:
            return self._check_replay(job, request_sha256), False
        self._keeper.hold(job.id)  # a slow upload keeps its lease: no replica drops it
        try:
            count = self._receive(job.id, owner, items)
        except BaseException:
            self._keeper.release(job.id)
            self.store.discard_job(job.id)
            raise
        job = self.store.open_job(job.id, items_total=count)
        self._keeper.release(job.id)
        if self.metrics is not None:
            self.metrics.jobs_submitted.labels(job.graph).inc()
        self._update_gauges()
        self._poke()
        log.info("job_submitted", job_id=job.id, owner=owner, graph=job.graph, items=count)
        return job, True

    def _admit_job(self, draft: JobDraft) -> tuple[JobRecord, bool]:
        """Create the job if the service and the key have room: ``(job, created)``."""
        limits = self.limits
        with self._admit:  # one admission at a time: two must not both take the last room
            jobs, items_waiting = self.store.load()
            if jobs >= limits.max_active_jobs:
                raise self._overloaded(f"{jobs} jobs are active (limit {limits.max_active_jobs})")
            if items_waiting >= limits.max_active_items:
                raise self._overloaded(f"{items_waiting} items are waiting for results")
            mine, _ = self.store.load(owner=draft.owner)
            if mine >= limits.max_active_jobs_per_key:
                raise self._over_quota(
                    f"this key has {mine} jobs waiting or running (max_active_jobs_per_key "
                    f"{limits.max_active_jobs_per_key}); wait for one to end",
                    limits.retry_after_s,
                )
            return self.store.create_job(draft, self.lease)

    def _receive(self, job_id: str, owner: str, items: Iterable[Item]) -> int:
        """Store the items in batches. Each batch counts at once against the service's backlog
        and the key's items per minute (the job's ``items_total`` grows with it), so concurrent
        uploads see each other while they stream instead of each taking the whole allowance."""
        count, batch = 0, []
        for item in items:
            count += 1
            if count > self.limits.max_items_per_job:
                raise TooManyItems(
                    f"a job holds at most {self.limits.max_items_per_job} items; split it"
                )
            batch.append(item)
            if len(batch) >= _BATCH:
                self._store_batch(job_id, owner, batch)
                batch = []
        if batch:
            self._store_batch(job_id, owner, batch)
        return count  # an empty upload is a job with nothing to do: it succeeds at once

    def _store_batch(self, job_id: str, owner: str, batch: list[Item]) -> None:
        limits = self.limits
        with self._admit:
            _, items_waiting = self.store.load()
            if items_waiting + len(batch) > limits.max_active_items:
                raise self._overloaded("the service's item backlog is full")
            wait = self._rate.take(owner, len(batch))
            if wait > 0:
                raise self._over_quota(
                    f"this key submitted more than max_items_per_minute_per_key "
                    f"({limits.max_items_per_minute_per_key}) items in the last minute",
                    math.ceil(wait),
                )
            self.store.add_items(job_id, batch, self.lease)

    def _replay(self, owner: str, key: str | None, request_sha256: str) -> JobRecord | None:
        existing = self.store.find_by_key(owner, key)
        return self._check_replay(existing, request_sha256) if existing is not None else None

    def _check_replay(self, job: JobRecord, request_sha256: str) -> JobRecord:
        if request_sha256 and job.request_sha256 and job.request_sha256 != request_sha256:
            raise IdempotencyConflict(
                f"Idempotency-Key {job.idempotency_key!r} was used for job {job.id} with a "
                "different request; use a new key for a new job"
            )
        return job

    def _overloaded(self, why: str) -> Overloaded:
        if self.metrics is not None:
            self.metrics.rejected.labels("jobs").inc()
        retry = self.limits.retry_after_s
        return Overloaded(f"service busy: {why}; retry in {retry} s", retry)

    def _over_quota(self, why: str, retry: int) -> QuotaExceeded:
        if self.metrics is not None:
            self.metrics.rejected.labels("quota").inc()
        return QuotaExceeded(f"{why}; retry in {retry} s", max(1, retry))

    def get(self, job_id: str) -> JobRecord | None:
        return self.store.get(job_id)

    def cancel(self, job_id: str) -> JobRecord:
        """Cancel a job: at once if it is waiting, after its chunks in flight stop if running."""
        job = self.store.request_cancel(job_id)
        if job.status == "running" and self._loop is not None:
            self._loop.call_soon_threadsafe(self._cancel_task, job_id)
        self._update_gauges()
        return job

    # -- the runner thread --------------------------------------------------------------------

    def _main(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            loop.run_until_complete(self._schedule())
        finally:
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()
            self._loop = None

    def _poke(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed in between
                loop.call_soon_threadsafe(wake.set)

    def _cancel_task(self, job_id: str) -> None:
        task = self._running.get(job_id)
        if task is not None:
            self._cancelling.add(job_id)
            task.cancel()

    async def _schedule(self) -> None:
        self._wake = asyncio.Event()
        self._start_lock = asyncio.Lock()
        self._ready.set()
        while not self._stopping:
            self._wake.clear()
            free = self.limits.max_running_jobs - len(self._running)
            for job in await asyncio.to_thread(self._take_work, free, list(self._running)):
                task = asyncio.create_task(self._run_job(job), name=f"job-{job.id}")
                self._running[job.id] = task
                task.add_done_callback(functools.partial(self._done, job.id))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=1.0)
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _take_work(self, free: int, running: list[str]) -> list[JobRecord]:
        """(worker thread) One scheduling round: take over dead replicas' jobs when it is time,
        then up to ``free`` jobs to start. A store failing over costs a round, not the runner."""
        try:
            if time.monotonic() >= self._next_recovery:
                self._recover()
            return self.store.runnable(free, running) if free > 0 else []
        except Exception as exc:  # noqa: BLE001 - logged; the next round (1 s) tries again
            log.error("job_scheduling_failed", error=f"{type(exc).__name__}: {exc}")
            return []

    def _done(self, job_id: str, _task: object = None) -> None:
        self._running.pop(job_id, None)
        self._cancelling.discard(job_id)
        self._lost_jobs.discard(job_id)
        if self._wake is not None:
            self._wake.set()

    async def _run_job(self, job: JobRecord) -> None:
        with structlog.contextvars.bound_contextvars(job_id=job.id):
            try:
                if not await asyncio.to_thread(self.store.mark_running, job.id, self.lease):
                    return  # another replica started it first
            except Exception as exc:  # noqa: BLE001 - the store is failing over: next round
                log.error("job_start_failed", error=f"{type(exc).__name__}: {exc}")
                return
            self._keeper.hold(job.id)
            try:
                status, error = await self._execute(job)
            finally:
                self._keeper.release(job.id)  # before the end is written (see LeaseKeeper)
            if status == "lost":
                return  # the replica that took it over writes its end (and owes its webhook)
            hook = job.webhook_url if status != "interrupted" else None
            if hook and self.webhooks is not None:  # owed before the end is written: a crash
                await asyncio.to_thread(self.webhooks.expect, job.id, hook)  # keeps it owed
            try:
                record = self.store.finish(job.id, status, error, self.lease)
            except (LeaseLost, StoreUnavailable) as exc:  # still down: once its lease expires,
                log.warning("job_end_not_written", status=status, error=str(exc))
                return  # a replica's recovery takes the job over and it resumes
            self._update_gauges()
            if status != "interrupted":
                log.info("job_ended", status=status, items_done=record.items_done)
                if self.metrics is not None:
                    self.metrics.jobs_finished.labels(record.graph, status).inc()
                if hook and self.webhooks is not None:
                    await asyncio.to_thread(self.webhooks.ready, job.id, job_view(record))

    async def _execute(self, job: JobRecord) -> tuple[str, dict[str, str] | None]:
        """Plan (if a task), start the workers and run the chunks; ``(status, error)``, where
        ``lost`` means another replica took the job over (this one writes nothing more)."""
        try:
            self._update_gauges()
            graph = await self._graph_for(job)
            assert self._start_lock is not None
            async with self._start_lock:  # two jobs must not start the same workers twice
                await self.runtime.executor.start(graph.resolved.skills)
            await self._run_chunks(job, graph)
            return "succeeded", None
        except asyncio.CancelledError:
            if job.id in self._lost_jobs:
                return "lost", None
            if job.id in self._cancelling:
                return "cancelled", None
            log.info("job_interrupted")
            return "interrupted", None
        except LeaseLost as exc:  # a chunk commit was refused: another replica has the job
            log.warning("job_lease_lost", error=str(exc))
            return "lost", None
        except StoreUnavailable as exc:  # the database failed over mid-job: park it, resume
            log.warning("job_store_unavailable", error=str(exc))
            return "interrupted", None
        except OrchestratorError as exc:
            log.error("job_failed", code=exc.code, error=str(exc))
            return "failed", {"code": exc.code, "message": str(exc)}
        except Exception as exc:
            log.exception("job_crashed")
            return "failed", {"code": "internal_error", "message": f"{type(exc).__name__}: {exc}"}

    async def _graph_for(self, job: JobRecord) -> CompiledGraph:
        if job.spec_yaml is not None:
            spec_yaml = job.spec_yaml
            key = "spec:" + hashlib.sha256(spec_yaml.encode()).hexdigest()
            return self._compile(key, lambda: _spec_from_yaml(spec_yaml, job.id))
        assert job.task is not None
        ledger = Ledger(job_id=job.id, graph="planned")
        # the job's first items are the plan's dry run (they stay in this process)
        first = await asyncio.to_thread(self.store.items, job.id, 0, 20)
        sample = [item.value for item in first if isinstance(item.value, dict)]
        plan = await self.runtime.planner.plan(
            job.task, dict(job.fields or {}), job_id=job.id, ledger=ledger, sample=sample or None
        )
        compiled = self.runtime.compile(plan.spec)
        ledger.graph = compiled.name
        spec_yaml = plan.spec.to_yaml()
        await asyncio.to_thread(self.store.set_plan, job.id, compiled.name, spec_yaml, ledger)
        return compiled

    def forget_graphs(self) -> None:
        """Drop compiled graphs (the registry changed): the next job compiles afresh."""
        with self._compile_lock:
            self._compiled.clear()

    def _compile(self, key: str, spec: Any) -> CompiledGraph:
        with self._compile_lock:
            found = self._compiled.get(key)
            if found is not None:
                self._compiled.move_to_end(key)
                return found
        compiled = self.runtime.compile(spec())
        with self._compile_lock:
            self._compiled[key] = compiled
            while len(self._compiled) > 64:
                self._compiled.popitem(last=False)
        return compiled

    async def _run_chunks(self, job: JobRecord, graph: CompiledGraph) -> None:
        done = await asyncio.to_thread(self.store.completed_chunks, job.id)
        todo = [i for i in range(job.chunks_total) if i not in done]
        if done:
            log.info("job_resumed", chunks_done=len(done), chunks_left=len(todo))
        base_wall = float((job.ledger or {}).get("wall_s", 0.0))
        wall = functools.partial(_wall, base_wall, time.perf_counter())
        budget = _job_budget(self.runtime, job)
        async with self._step_checkpoints() as checkpoints:
            await self._run_todo(job, graph, todo, wall, budget, checkpoints)

    def _step_checkpoints(self) -> contextlib.AbstractAsyncContextManager[Any]:
        settings = self.runtime.settings
        if not settings.step_checkpoints:
            return contextlib.nullcontext()
        from orchestrator.store.checkpoints import open_step_checkpoints

        return open_step_checkpoints(settings)

    async def _run_todo(
        self,
        job: JobRecord,
        graph: CompiledGraph,
        todo: list[int],
        wall: Any,
        budget: Budget,
        checkpoints: Any,
    ) -> None:
        """Run the chunks ``todo``, at most ``max_inflight_chunks`` at once."""
        limit = self.runtime.settings.max_inflight_chunks
        inflight: set[asyncio.Task[None]] = set()
        try:
            for index in todo:
                if len(inflight) >= limit:
                    finished, inflight = await asyncio.wait(
                        inflight, return_when=asyncio.FIRST_COMPLETED
                    )
                    for task in finished:
                        task.result()
                run = self._run_chunk(job, graph, index, wall, budget, checkpoints)
                inflight.add(asyncio.create_task(run))
            for pending in asyncio.as_completed(inflight):
                await pending
        finally:
            for task in inflight:
                task.cancel()
            await asyncio.gather(*inflight, return_exceptions=True)

    async def _run_chunk(
        self,
        job: JobRecord,
        graph: CompiledGraph,
        index: int,
        wall: Any,
        budget: Budget,
        checkpoints: Any,
    ) -> None:
        first = index * job.chunk_size
        stop = min(first + job.chunk_size, job.items_total)
        items = await asyncio.to_thread(self.store.items, job.id, first, stop)
        await asyncio.to_thread(self.store.record_chunk_start, job.id, index, os.getpid())
        started = time.perf_counter()
        with structlog.contextvars.bound_contextvars(chunk=index):
            chunk_job = self.runtime.submit(
                graph, items, job_id=job.id, budget=budget, checkpoints=checkpoints
            )
            results = [r async for part in chunk_job.achunks() for r in part]
        seconds = time.perf_counter() - started
        score = chunk_job.score
        outcome = ChunkOutcome(
            chunk_index=index,
            first_idx=first,
            results=results,
            ledger=chunk_job.ledger,
            score={
                "labelled": score.labelled,
                "correct": score.correct,
                "kept": score.kept,
                "kept_correct": score.kept_correct,
            },
            seconds=seconds,
            wall_s=wall(),
        )
        await asyncio.to_thread(self.store.commit_chunk, job.id, outcome, self.lease)
        if checkpoints is not None:  # committed: the chunk's step checkpoints are not needed
            from orchestrator.store.checkpoints import chunk_thread

            step = self.runtime.settings.chunk_size  # the runtime's own chunks within this one
            for first_item in range(first, stop, step):
                await checkpoints.adelete_thread(chunk_thread(job.id, first_item))
        if self.metrics is not None:
            self.metrics.chunk_seconds.labels(graph.name).observe(seconds)
            self.metrics.add_ledger(graph.name, chunk_job.ledger)
            self.metrics.items_pending.dec(len(results))

    def _update_gauges(self) -> None:
        if self.metrics is None:
            return
        with contextlib.suppress(Exception):  # a gauge must never fail a request
            jobs, items = self.store.load()
            self.metrics.jobs_active.set(jobs)
            self.metrics.items_pending.set(items)


def job_view(job: JobRecord) -> dict[str, Any]:
    """The JSON view of a job: status, progress, ledger, accuracy (API and webhooks)."""
    ledger = ledger_from_raw(job.ledger) if job.ledger else Ledger(job_id=job.id, graph=job.graph)
    score = job.score
    labelled, kept = score.get("labelled", 0), score.get("kept", 0)
    total = job.items_total
    return {
        "id": job.id,
        "graph": job.graph,
        "task": job.task,
        "status": "pending" if job.status == "receiving" else job.status,
        "cancel_requested": job.cancel_requested,
        "created_at": _iso(job.created_at),
        "started_at": _iso(job.started_at),
        "finished_at": _iso(job.finished_at),
        "progress": {
            "items_total": total,
            "items_done": job.items_done,
            "chunks_total": job.chunks_total,
            "chunks_done": job.chunks_done,
            "fraction": round(job.items_done / total, 4) if total else 0.0,
        },
        "ledger": ledger.to_dict(),
        "accuracy": round(score.get("correct", 0) / labelled, 4) if labelled else None,
        "labelled": labelled,
        "kept_accuracy": round(score.get("kept_correct", 0) / kept, 4) if kept else None,
        "error": job.error,
    }


def final_view(store: Store, job_id: str) -> dict[str, Any] | None:
    """The job's view once it has ended, None while it has not (the webhook queue's
    ``view_of``); UnknownJob when it is gone."""
    job = store.get(job_id)
    if job is None:
        raise UnknownJob(f"no job {job_id}")
    return job_view(job) if job.terminal else None


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds") if ts else None


def _since(started: float) -> float:
    return time.perf_counter() - started


def _wall(base: float, started: float) -> float:
    return base + _since(started)


def _job_budget(runtime: Runtime, job: JobRecord) -> Budget:
    """One big-model allowance for all of a job's chunks, already charged with what the job spent
    before a restart (its ledger), so a resumed job cannot spend its budget twice."""
    budget = runtime.new_budget()
    spent = job.ledger or {}
    budget.calls = int(spent.get("llm_calls", 0))
    budget.tokens = int(spent.get("llm_prompt_tokens", 0)) + int(
        spent.get("llm_completion_tokens", 0)
    )
    return budget


def _spec_from_yaml(text: str, job_id: str) -> Any:
    import yaml

    from orchestrator.graph.spec import GraphSpec

    return GraphSpec.from_dict(yaml.safe_load(text), source=f"job {job_id}")
