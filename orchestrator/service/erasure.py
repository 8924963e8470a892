"""Forgetting a job: everything the service kept of it, and retention.

A job leaves traces in five places: its row, items, results and chunk runs (the job store), its
step checkpoints (one LangGraph thread per chunk), its review tickets and their paused threads,
and the labelled examples learned from its escalations and answers. :func:`erase_job` removes
all of them (``DELETE /v1/jobs/{id}``); :func:`purge_expired` does it for every job that ended
more than ``retention_days`` ago (the service runs it at start and then hourly).

Order: the derived data first, the job row last, so a crash half-way leaves a job that can be
deleted again rather than orphans nobody can name.

Example::

    await erase_job(store, runtime, "3f2a9c0d1e4b5a6f")
    erased = await purge_expired(store, runtime, retention_days=30)
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool

from orchestrator.store.checkpoints import chunk_thread
from orchestrator.telemetry.logs import get_logger

if TYPE_CHECKING:
    from orchestrator.runtime.runtime import Runtime
    from orchestrator.store.jobs import JobRecord, Store

__all__ = ["erase_job", "purge_expired"]

log = get_logger(__name__)


async def erase_job(store: Store, runtime: Runtime, job: JobRecord) -> dict[str, int]:
    """Delete one (finished) job and all it left behind; what was removed, by kind."""
    threads = await _forget_step_checkpoints(runtime, job)
    tickets = await runtime.reviews.forget_job(job.id)
    examples = await run_in_threadpool(runtime.examples.delete_job, job.id)
    await run_in_threadpool(store.delete_job, job.id)
    removed = {"tickets": tickets, "examples": examples, "checkpoint_threads": threads}
    log.info("job_erased", job_id=job.id, **removed)
    return removed


async def purge_expired(store: Store, runtime: Runtime, *, retention_days: float) -> int:
    """Erase every job that ended more than ``retention_days`` ago; how many."""
    cutoff = time.time() - retention_days * 86400
    erased = 0
    while ids := await run_in_threadpool(store.finished_before, cutoff, limit=100):
        for job_id in ids:
            job = await run_in_threadpool(store.get, job_id)
            if job is not None:
                await erase_job(store, runtime, job)
                erased += 1
    if erased:
        log.info("jobs_purged", jobs=erased, retention_days=retention_days)
    return erased


async def _forget_step_checkpoints(runtime: Runtime, job: JobRecord) -> int:
    """Delete the job's chunk threads (committed chunks deleted theirs already; a cancelled or
    failed job may have left some)."""
    settings = runtime.settings
    if not settings.step_checkpoints or job.items_total == 0:
        return 0
    from orchestrator.store.checkpoints import open_step_checkpoints

    # the runtime's chunks within the job's: both sizes, in case the setting changed in between
    firsts = {
        *range(0, job.items_total, job.chunk_size),
        *range(0, job.items_total, settings.chunk_size),
    }
    async with open_step_checkpoints(settings) as saver:
        for first in sorted(firsts):
            await saver.adelete_thread(chunk_thread(job.id, first))
    return len(firsts)
