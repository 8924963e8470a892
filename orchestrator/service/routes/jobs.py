"""Jobs: submit, follow, fetch results, cancel.

::

    POST /v1/jobs                      submit: {"graph"|"task"+"fields", "items": [...]} or a JSONL
                                       upload (multipart "file"); Idempotency-Key makes it safe to retry
    GET  /v1/jobs/{id}                 status, progress, ledger
    GET  /v1/jobs/{id}/results         results in input order, paged by cursor
    GET  /v1/jobs/{id}/events          progress as server-sent events, until the job ends
    POST /v1/jobs/{id}/cancel          cancel
    DELETE /v1/jobs/{id}               delete a finished job and all it left: items, results,
                                       checkpoints, review tickets, examples

A key sees its own jobs (an admin key everybody's): another's job is a 404, as if it did not exist.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
import weakref
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from orchestrator.service.auth import Principal
from orchestrator.service.deps import JobId, Read, ServiceDep, Write
from orchestrator.service.erasure import erase_job
from orchestrator.service.jobs import job_view
from orchestrator.service.models import JobView, ResultsPage
from orchestrator.service.problems import ApiError, problem_responses
from orchestrator.service.service import Service
from orchestrator.service.submission import submit_json, submit_upload
from orchestrator.store.jobs import JobRecord

__all__ = ["router"]

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

_AUTH = problem_responses(401, 403)
_ONE_JOB = {**_AUTH, **problem_responses(404, 422)}

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="same key, same request: the same job (safe retries)",
    ),
]


@router.post(
    "",
    status_code=202,
    response_model=JobView,
    responses={
        200: {"model": JobView, "description": "the job this Idempotency-Key created"},
        **_AUTH,
        **problem_responses(400, 409, 413, 415, 422, 429),
    },
    # the body is read by hand: create_app puts models.submit_body here
    openapi_extra={"requestBody": {"required": True, "content": {}}},
)
async def submit_job(
    request: Request,
    principal: Write,
    service: ServiceDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Submit a job: JSON (items inline) or multipart/form-data (a JSONL ``file``)."""
    content_type = request.headers.get("content-type", "").lower()
    if content_type.startswith("multipart/form-data"):
        job, created = await submit_upload(request, service, principal, idempotency_key)
    elif content_type.startswith("application/json") or not content_type:
        job, created = await submit_json(request, service, principal, idempotency_key)
    else:
        raise ApiError(
            415, "unsupported_media_type", "send application/json or multipart/form-data"
        )
    headers = {"Location": f"/v1/jobs/{job.id}"}
    return JSONResponse(_view(job), status_code=202 if created else 200, headers=headers)


@router.get("/{job_id}", response_model=JobView, responses=_ONE_JOB)
async def get_job(job_id: JobId, principal: Read, service: ServiceDep) -> dict[str, Any]:
    """A job's status (pending, running, interrupted, succeeded, failed, cancelled),
    progress and ledger."""
    return job_view(await _own(service, job_id, principal))


@router.get("/{job_id}/results", response_model=ResultsPage, responses=_ONE_JOB)
async def job_results(
    job_id: JobId,
    principal: Read,
    service: ServiceDep,
    cursor: Annotated[
        int, Query(ge=-1, le=2**53, description="last index seen; -1: from the start")
    ] = -1,
    limit: Annotated[int, Query(ge=1, le=10_000, description="results per page")] = 1000,
) -> dict[str, Any]:
    """Results committed so far, in input order (a page of at most ``limit``)."""
    job = await _own(service, job_id, principal)
    rows = await run_in_threadpool(service.store.results, job.id, after=cursor, limit=limit)
    return {
        "job_id": job.id,
        "status": job_view(job)["status"],
        "results": [result for _, result in rows],
        "next_cursor": rows[-1][0] if rows else cursor,
        "complete": job.terminal and len(rows) < limit,
    }


@router.get(
    "/{job_id}/events",
    response_class=Response,
    responses={
        200: {
            "description": "`progress` events while the job runs, then one `done` event "
            "with the final job view",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        **_ONE_JOB,
    },
)
async def job_events(job_id: JobId, principal: Read, service: ServiceDep) -> Response:
    """Server-sent events: progress until the job ends. A key holds at most
    ``max_event_streams_per_key`` streams (then 429); a stream open longer than
    ``event_stream_max_s`` ends with an ``expired`` event (reconnect to go on)."""
    from sse_starlette import EventSourceResponse

    await _own(service, job_id, principal)
    settings = service.settings
    if service.event_streams[principal.name] >= settings.max_event_streams_per_key:
        service.metrics.rejected.labels("events").inc()
        raise ApiError(
            429,
            "quota_exceeded",
            f"this key holds {settings.max_event_streams_per_key} event streams open "
            "(max_event_streams_per_key); close one, or poll GET /v1/jobs/{id}",
            headers={"Retry-After": str(settings.retry_after_s)},
        )
    service.event_streams[principal.name] += 1  # checked and taken in one step of the loop
    release = _once(functools.partial(service.event_streams.subtract, [principal.name]))
    events = _events(service, job_id, release)
    # a stream that never started runs no finally: the slot then comes back when it is collected
    weakref.finalize(events, release)
    return EventSourceResponse(events, ping=15)


@router.post(
    "/{job_id}/cancel",
    response_model=JobView,
    responses={
        202: {"model": JobView, "description": "cancel requested: the job stops shortly"},
        **_AUTH,
        **problem_responses(404, 409, 422),
    },
)
async def cancel_job(job_id: JobId, principal: Write, service: ServiceDep) -> Response:
    """Cancel a job. Results committed before the cancel stay available."""
    job = await _own(service, job_id, principal)
    if job.status in ("succeeded", "failed"):
        raise ApiError(409, "job_finished", f"job {job_id} already {job.status}")
    job = await run_in_threadpool(service.jobs.cancel, job_id)
    return JSONResponse(_view(job), status_code=202 if job.status == "running" else 200)


async def _own(service: Service, job_id: str, principal: Principal) -> JobRecord:
    """The job, if the caller may see it; else 404 (never 403: ids of others' jobs stay unknown).
    The store is read on a worker thread, off the loop that answers real-time turns."""
    job = await run_in_threadpool(service.store.get, job_id)
    if job is None or (job.owner != principal.name and not principal.admin):
        raise ApiError(404, "job_not_found", f"no job {job_id}")
    return job


@router.delete(
    "/{job_id}",
    status_code=204,
    response_class=Response,
    responses={
        204: {"description": "deleted, with everything the job left behind"},
        **_AUTH,
        **problem_responses(404, 409, 422),
    },
)
async def delete_job(job_id: JobId, principal: Write, service: ServiceDep) -> Response:
    """Delete a finished job (its owner, or an admin): its items, results, step checkpoints,
    review tickets and the examples learned from it. A job still waiting or running is a 409:
    cancel it first."""
    job = await _own(service, job_id, principal)
    if not job.terminal:
        raise ApiError(
            409,
            "job_active",
            f"job {job_id} is {job_view(job)['status']}; cancel it (POST /v1/jobs/{job_id}/cancel)"
            " and delete it once it ended",
        )
    await erase_job(service.store, service.runtime, job)
    return Response(status_code=204)


def _view(job: JobRecord) -> dict[str, Any]:
    """The job's view as JSON, through the response model (for routes that set the status)."""
    return JobView.model_validate(job_view(job)).model_dump(mode="json")


async def _events(
    service: Service, job_id: str, release: Callable[[], None]
) -> AsyncIterator[dict[str, str]]:
    """``progress`` whenever it changes (polled every 0.25 s on a worker thread: a store query
    must not stall the loop that answers real-time turns), then ``done`` with the job view; or
    ``expired`` once the stream is ``event_stream_max_s`` old. ``release`` gives the key's
    stream slot back, however the stream ends."""
    last: dict[str, Any] | None = None
    ends = time.monotonic() + service.settings.event_stream_max_s
    try:
        while True:
            job = await run_in_threadpool(service.store.get, job_id)
            if job is None:
                return
            view = job_view(job)
            progress = {"status": view["status"], **view["progress"]}
            if progress != last:
                yield {"event": "progress", "data": json.dumps(progress), "id": str(job.items_done)}
                last = progress
            if job.terminal:
                yield {"event": "done", "data": json.dumps(view)}
                return
            if time.monotonic() >= ends:
                expired = {"status": view["status"], "reconnect": f"/v1/jobs/{job_id}/events"}
                yield {"event": "expired", "data": json.dumps(expired)}
                return
            await asyncio.sleep(0.25)
    finally:
        release()


def _once(action: Callable[[], object]) -> Callable[[], None]:
    """``action``, run at most once however often it is called."""
    done = False

    def run() -> None:
        nonlocal done
        if not done:
            done = True
            action()

    return run
