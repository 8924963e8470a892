"""The service's state: what every route shares, and its start-up and shutdown.

One :class:`Service` per app (``app.state.service``): its settings, the runtime (shared or its
own), the job store, the job manager that runs jobs in the background, the turn runner of
real-time turns, the metrics and the API keys. Routes reach it through
:func:`orchestrator.service.deps.get_service`; the app's lifespan calls :meth:`Service.start`
and :meth:`Service.stop`.

Example::

    service = Service(ServiceSettings(), runtime=None)   # makes its own runtime
    await service.start()
    ...
    await service.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import os
from collections import Counter
from collections.abc import Iterator

from starlette.concurrency import run_in_threadpool

from orchestrator.accounting.result import ItemResult
from orchestrator.runtime.runtime import Runtime
from orchestrator.runtime.turns import TurnRunner
from orchestrator.service.auth import KeyRing
from orchestrator.service.erasure import purge_expired
from orchestrator.service.jobs import JobManager, final_view
from orchestrator.service.metrics import ServiceMetrics
from orchestrator.service.settings import ServiceSettings
from orchestrator.service.webhook_policy import WebhookPolicy
from orchestrator.service.webhook_queue import WebhookQueue
from orchestrator.store.location import open_store
from orchestrator.telemetry.logs import get_logger

__all__ = ["Service"]

log = get_logger(__name__)

#: how often retention looks for expired jobs
_PURGE_EVERY_S = 3600.0


class Service:
    """What the routes share: settings, store, job manager, turn runner, metrics, keys.

    ``runtime``: share an existing runtime (its executor); ``None`` makes one from
    ``settings.runtime``, which the service then closes when it stops.
    """

    def __init__(self, settings: ServiceSettings, runtime: Runtime | None) -> None:
        self.settings = settings
        self.metrics = ServiceMetrics()
        self.keys = KeyRing(settings.api_keys)
        self.owns_runtime = runtime is None
        self.runtime = runtime or Runtime(settings=settings.runtime)
        self.store = open_store(settings.store_location)
        self.jobs = JobManager(
            self.store,
            self.runtime,
            graphs_dir=settings.graphs_dir,
            limits=settings.limits,
            metrics=self.metrics,
            replica_id=settings.replica_id,
            lease_s=settings.job_lease_s,
            lease_renew_s=settings.job_lease_renew_s,
            max_chunk_starts=settings.max_chunk_starts,
            webhooks=WebhookQueue(
                settings.store_location,
                policy=WebhookPolicy(settings.webhook_hosts),
                secret=_env(settings.webhook_secret_env),
                timeout_s=settings.webhook_timeout_s,
                max_attempts=settings.webhook_max_attempts,
                backoff_s=settings.webhook_backoff_s,
                concurrency=settings.webhook_concurrency,
                view_of=functools.partial(final_view, self.store),
                metrics=self.metrics,
            ),
        )
        self.turns = TurnRunner(self.jobs.graph)
        #: real-time turns being answered now (the route and the fast path both count them)
        self.invokes_in_flight = 0
        #: open server-sent event streams per key (``max_event_streams_per_key``)
        self.event_streams: Counter[str] = Counter()
        self._retention: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Load the skills, connect Ray when the executor needs it, start the job runner and
        warm the configured graphs."""
        self.runtime.registry  # noqa: B018  (load the skills folder once, before threads race)
        self.runtime.reviews  # noqa: B018  (and the review desk, shared by the job runner)
        executor = self.runtime.executor
        if executor.name in ("ray", "serve"):  # Ray starts in the main thread (signal handlers)
            from orchestrator.executors.ray import connect

            try:
                connect(getattr(executor, "address", None), getattr(executor, "num_cpus", None))
            except Exception as exc:  # noqa: BLE001 - /readyz reports it; jobs fail with it
                log.error("ray_unavailable", error=f"{type(exc).__name__}: {exc}")
        self.jobs.start()
        assert self.jobs.webhooks is not None
        self.jobs.webhooks.start()  # after the jobs' recovery: owed deliveries resume
        if self.settings.retention_days is not None:
            self._retention = asyncio.create_task(self._purge_every(_PURGE_EVERY_S))
        for name in self.settings.warm_graphs:
            await self.turns.warm(name)
        # Everything loaded so far (models, Ray, LangGraph) lives as long as the process: move it
        # out of the collector's sight, so a full collection never stalls a turn for ~100 ms.
        gc.collect()
        gc.freeze()

    async def reload_skills(self) -> None:
        """Aliases moved in the skills folder: new jobs and turns use the new versions; running
        jobs finish on theirs."""
        await run_in_threadpool(self.runtime.reload_registry)
        self.jobs.forget_graphs()
        self.turns.forget_graphs()

    async def _purge_every(self, seconds: float) -> None:
        """Retention: erase jobs that ended more than ``retention_days`` ago, now and then every
        ``seconds`` (a failed round is logged and tried again next time)."""
        days = self.settings.retention_days
        assert days is not None
        while True:
            try:
                await purge_expired(self.store, self.runtime, retention_days=days)
            except Exception as exc:  # noqa: BLE001 - retention must not stop the service
                log.error("retention_failed", error=f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(seconds)

    async def stop(self) -> None:
        """Stop the job runner (running jobs become ``interrupted``), the turn workers, the
        runtime if the service made it, and the store."""
        if self._retention is not None:
            self._retention.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retention
        await run_in_threadpool(self.jobs.stop)
        if self.jobs.webhooks is not None:
            await run_in_threadpool(self.jobs.webhooks.close)
        await self.turns.close()
        if self.owns_runtime:
            await run_in_threadpool(self.runtime.close)
        self.store.close()

    # -- real-time turns: shared by the documented route and the middleware's fast path ------

    @property
    def turns_full(self) -> bool:
        """As many turns in flight as ``max_concurrent_invokes``: the next one gets 429."""
        return self.invokes_in_flight >= self.settings.max_concurrent_invokes

    @contextlib.contextmanager
    def turn_slot(self) -> Iterator[None]:
        """Count one turn in flight while the block runs."""
        self.invokes_in_flight += 1
        try:
            yield
        finally:
            self.invokes_in_flight -= 1

    def record_turn(self, graph: str, result: ItemResult, seconds: float) -> None:
        """A turn's latency, outcome and escalation, in the metrics."""
        metrics = self.metrics
        metrics.invoke_seconds.labels(graph).observe(seconds)
        metrics.items.labels(graph, "succeeded" if result.ok else "failed").inc()
        if result.escalate:
            metrics.escalations.labels(graph).inc()


def _env(name: str | None) -> str | None:
    return os.environ.get(name) if name else None
