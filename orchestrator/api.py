"""The HTTP job service (FastAPI): submit and follow jobs, real-time turns, skills, health, metrics.

::

    POST /v1/jobs                      submit: {"graph"|"task"+"fields", "items": [...]} or a JSONL
                                       upload (multipart "file"); Idempotency-Key makes it safe to retry
    GET  /v1/jobs/{id}                 status, progress, ledger
    GET  /v1/jobs/{id}/results         results in input order, paged by cursor
    GET  /v1/jobs/{id}/events          progress as server-sent events, until the job ends
    POST /v1/jobs/{id}/cancel          cancel
    POST /v1/graphs/{name}/invoke      one real-time turn, synchronous (small models, no queue)
    GET  /v1/graphs, /v1/skills[/{name}]
    GET  /healthz, /readyz, /metrics   (open; /metrics can require admin)

Errors are RFC 9457 ``application/problem+json`` with a stable ``code``; a bad payload gets 422
(413 if too large, 415 for an unknown content type) with ``errors`` naming each field
(``body.items``, ``query.limit``, ``input.utterance``). Back-pressure answers 429 with
``Retry-After``. Auth: ``Authorization: Bearer <key>`` (see :mod:`orchestrator.auth`).

Example::

    app = create_app(ServiceSettings(api_keys=[...]))      # then: uvicorn.run(app)
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import io
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from orchestrator.auth import KeyRing, Principal
from orchestrator.dashboard import dashboard_router
from orchestrator.jobs import GraphNotFound, JobManager, inline_items, job_view, jsonl_items
from orchestrator.metrics import CONTENT_TYPE, ServiceMetrics
from orchestrator.middleware import MetricsMiddleware, TurnFastPath
from orchestrator.payloads import (
    FIELDS_TEXT,
    GRAPH_NAME,
    MALFORMED,
    Health,
    ItemLine,
    JobRequest,
    JobView,
    ResultsPage,
    SkillView,
    TurnRequest,
    submit_body,
    webhook_pattern,
)
from orchestrator.problems import (
    ApiError,
    field_errors,
    install_error_handlers,
    problem_responses,
)
from orchestrator.review_api import review_router
from orchestrator.runtime import Runtime
from orchestrator.serve import ServiceSettings
from orchestrator.skills_api import skills_router
from orchestrator.store import JobRecord, open_store
from orchestrator.telemetry import get_logger
from orchestrator.turns import TurnRunner

__all__ = ["Service", "create_app"]

log = get_logger(__name__)

_JOB_ID = r"^[0-9a-f]{16}$"


# -- the app ----------------------------------------------------------------------------------


class Service:
    """What the routes share: settings, store, job manager, turn runner, metrics, keys."""

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
            webhook_secret=_env(settings.webhook_secret_env),
            webhook_timeout_s=settings.webhook_timeout_s,
        )
        self.turns = TurnRunner(self.jobs.graph)
        self.invokes_in_flight = 0

    async def start(self) -> None:
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

    async def stop(self) -> None:
        await run_in_threadpool(self.jobs.stop)
        await self.turns.close()
        if self.owns_runtime:
            await run_in_threadpool(self.runtime.close)
        self.store.close()


def _env(name: str | None) -> str | None:
    import os

    return os.environ.get(name) if name else None


def create_app(settings: ServiceSettings | None = None, runtime: Runtime | None = None) -> FastAPI:
    """The FastAPI app. ``runtime``: share an existing runtime (its executor) instead of making one.

    The job runner starts with the app's lifespan and stops with it (jobs in flight become
    ``interrupted`` and resume at the next start).
    """
    settings = settings or ServiceSettings()
    service = Service(settings, runtime)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    app = FastAPI(
        title="orchestrator",
        version="1",
        summary="Jobs of small-model skills: submit, follow, fetch results; real-time turns.",
        lifespan=lifespan,
        dependencies=[Depends(_known_query)],
    )
    app.state.service = service
    install_error_handlers(app)
    app.add_middleware(MetricsMiddleware, metrics=service.metrics)
    app.add_middleware(TurnFastPath, service=service)  # outermost: turns skip the stack
    _routes(app, service)
    app.include_router(dashboard_router(_require))  # /ui and the JSON it polls
    app.include_router(review_router(_require))  # the review queue
    app.include_router(skills_router(_require))  # promote / rollback
    _openapi_extras(app, settings)
    return app


async def _known_query(request: Request) -> None:
    """400 for a query parameter the route does not take: a typo (``?limt=5``) must not be
    silently ignored."""
    route = request.scope.get("route")
    if not request.query_params or route is None or not hasattr(route, "dependant"):
        return
    known: set[str] = set()
    pending = [route.dependant]
    while pending:  # the route's own parameters and its dependencies'
        dependant = pending.pop()
        known.update(p.alias for p in dependant.query_params)
        pending.extend(dependant.dependencies)
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        takes = ", ".join(sorted(known)) or "none"
        raise ApiError(
            400,
            "unknown_parameter",
            f"unknown query parameter(s) {', '.join(map(repr, unknown))}; this endpoint takes: "
            f"{takes}",
        )


_bearer = HTTPBearer(auto_error=False, description="an API key: Authorization: Bearer ork_...")


def _require(scope: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency: the caller's principal, 401 without a valid key, 403 without ``scope``."""

    async def check(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        service: Service = request.app.state.service
        if not service.settings.auth:
            return Principal("anonymous", frozenset({"admin"}))
        header = f"Bearer {credentials.credentials}" if credentials is not None else None
        principal = service.keys.authenticate(header)
        if principal is None:
            raise ApiError(
                401,
                "unauthorized",
                "send a valid API key: Authorization: Bearer <key>",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not principal.can(scope):
            raise ApiError(403, "forbidden", f"this key lacks the {scope!r} scope")
        return principal

    return check


Read = Annotated[Principal, Depends(_require("jobs:read"))]
Write = Annotated[Principal, Depends(_require("jobs:write"))]
Invoke = Annotated[Principal, Depends(_require("graphs:invoke"))]
Skills = Annotated[Principal, Depends(_require("skills:read"))]
JobId = Annotated[str, Path(pattern=_JOB_ID, description="a job id")]


def _routes(app: FastAPI, service: Service) -> None:
    settings = service.settings

    auth_problems = problem_responses(401, 403)

    def own(job_id: str, principal: Principal) -> JobRecord:
        job = service.store.get(job_id)
        if job is None or (job.owner != principal.name and not principal.admin):
            raise ApiError(404, "job_not_found", f"no job {job_id}")
        return job

    # -- health -------------------------------------------------------------------------

    @app.get("/healthz", response_model=Health, tags=["health"])
    async def healthz() -> dict[str, Any]:
        """The process answers (no auth)."""
        return {"status": "ok", "checks": {}}

    @app.get(
        "/readyz",
        response_model=Health,
        tags=["health"],
        responses={503: {"model": Health, "description": "not ready"}},
    )
    async def readyz() -> Any:
        """The store answers, the job runner runs, and Ray is up when the executor needs it."""
        checks = {"store": "ok", "jobs": "ok" if service.jobs.alive else "stopped"}
        try:
            service.store.ping()
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
            checks["store"] = f"error: {type(exc).__name__}"
        checks["ray"] = await run_in_threadpool(_ray_check, service.runtime)
        ready = all(v in ("ok", "not used") for v in checks.values())
        body = {"status": "ready" if ready else "not ready", "checks": checks}
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get(
        "/metrics",
        tags=["health"],
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE: {"schema": {"type": "string"}}}}},
    )
    async def metrics(request: Request) -> Response:
        """Prometheus metrics (text format); open unless ``metrics_public`` is off."""
        if not settings.metrics_public and settings.auth:
            principal = service.keys.authenticate(request.headers.get("authorization"))
            if principal is None or not principal.admin:
                raise ApiError(401, "unauthorized", "an admin key is required for /metrics")
        return Response(service.metrics.render(), media_type=CONTENT_TYPE)

    # -- jobs ---------------------------------------------------------------------------

    @app.post(
        "/v1/jobs",
        status_code=202,
        response_model=JobView,
        tags=["jobs"],
        responses={
            200: {"model": JobView, "description": "the job this Idempotency-Key created"},
            **auth_problems,
            **problem_responses(400, 409, 413, 415, 422, 429),
        },
        openapi_extra={"requestBody": {"required": True, "content": {}}},  # see _submit_body
    )
    async def submit_job(
        request: Request,
        principal: Write,
        idempotency_key: Annotated[
            str | None,
            Header(
                alias="Idempotency-Key",
                min_length=1,
                max_length=255,
                description="same key, same request: the same job (safe retries)",
            ),
        ] = None,
    ) -> Response:
        """Submit a job: JSON (items inline) or multipart/form-data (a JSONL ``file``)."""
        content_type = request.headers.get("content-type", "").lower()
        if content_type.startswith("multipart/form-data"):
            job, created = await _submit_upload(request, service, principal, idempotency_key)
        elif content_type.startswith("application/json") or not content_type:
            job, created = await _submit_json(request, service, principal, idempotency_key)
        else:
            raise ApiError(
                415, "unsupported_media_type", "send application/json or multipart/form-data"
            )
        view = JobView.model_validate(job_view(job)).model_dump(mode="json")
        headers = {"Location": f"/v1/jobs/{job.id}"}
        return JSONResponse(view, status_code=202 if created else 200, headers=headers)

    @app.get(
        "/v1/jobs/{job_id}",
        response_model=JobView,
        tags=["jobs"],
        responses={**auth_problems, **problem_responses(404, 422)},
    )
    async def get_job(job_id: JobId, principal: Read) -> dict[str, Any]:
        """A job's status (pending, running, interrupted, succeeded, failed, cancelled),
        progress and ledger."""
        return job_view(own(job_id, principal))

    @app.get(
        "/v1/jobs/{job_id}/results",
        response_model=ResultsPage,
        tags=["jobs"],
        responses={**auth_problems, **problem_responses(404, 422)},
    )
    async def job_results(
        job_id: JobId,
        principal: Read,
        cursor: Annotated[
            int, Query(ge=-1, le=2**53, description="last index seen; -1: from the start")
        ] = -1,
        limit: Annotated[int, Query(ge=1, le=10_000, description="results per page")] = 1000,
    ) -> dict[str, Any]:
        """Results committed so far, in input order (a page of at most ``limit``)."""
        job = own(job_id, principal)
        rows = await run_in_threadpool(service.store.results, job.id, after=cursor, limit=limit)
        next_cursor = rows[-1][0] if rows else cursor
        complete = job.terminal and len(rows) < limit
        return {
            "job_id": job.id,
            "status": job_view(job)["status"],
            "results": [result for _, result in rows],
            "next_cursor": next_cursor,
            "complete": complete,
        }

    @app.get(
        "/v1/jobs/{job_id}/events",
        tags=["jobs"],
        response_class=Response,
        responses={
            200: {
                "description": "`progress` events while the job runs, then one `done` event "
                "with the final job view",
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
            },
            **auth_problems,
            **problem_responses(404, 422),
        },
    )
    async def job_events(job_id: JobId, principal: Read) -> Response:
        """Server-sent events: progress until the job ends."""
        from sse_starlette import EventSourceResponse

        own(job_id, principal)
        return EventSourceResponse(_events(service, job_id), ping=15)

    @app.post(
        "/v1/jobs/{job_id}/cancel",
        response_model=JobView,
        tags=["jobs"],
        responses={
            202: {"model": JobView, "description": "cancel requested: the job stops shortly"},
            **auth_problems,
            **problem_responses(404, 409, 422),
        },
    )
    async def cancel_job(job_id: JobId, principal: Write) -> Response:
        """Cancel a job. Results committed before the cancel stay available."""
        job = own(job_id, principal)
        if job.status in ("succeeded", "failed"):
            raise ApiError(409, "job_finished", f"job {job_id} already {job.status}")
        job = await run_in_threadpool(service.jobs.cancel, job_id)
        status = 202 if job.status == "running" else 200
        view = JobView.model_validate(job_view(job)).model_dump(mode="json")
        return JSONResponse(view, status_code=status)

    # -- real-time turns ----------------------------------------------------------------

    @app.post(
        "/v1/graphs/{name}/invoke",
        tags=["graphs"],
        response_model=ItemLine,
        responses={**auth_problems, **problem_responses(400, 404, 422, 429, 503)},
    )
    async def invoke(
        name: Annotated[str, Path(pattern=GRAPH_NAME, description="graphs/<name>.yaml")],
        turn: TurnRequest,
        principal: Invoke,
    ) -> Response:
        """One turn through a graph, synchronously, on the in-process small-model path.

        Answers the same line a job result holds (``id``, outputs, ``escalate``); a turn whose
        input does not fit the graph gets 422 naming the field. Unsure answers are flagged
        ``escalate: true``; the turn never waits for the big model.
        """
        if service.invokes_in_flight >= settings.max_concurrent_invokes:
            service.metrics.rejected.labels("invoke").inc()
            raise ApiError(
                429, "overloaded", "too many turns in flight", headers={"Retry-After": "1"}
            )
        started = time.perf_counter()
        service.invokes_in_flight += 1
        try:
            try:
                graph = await service.turns.warm(name)
            except GraphNotFound as exc:
                raise ApiError(404, "unknown_graph", str(exc)) from None
            try:
                graph.resolved.item_model.model_validate(turn.input)
            except ValidationError as exc:
                errors = field_errors(exc, prefix="input.")
                detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
                raise ApiError(422, "invalid_item", detail, errors=errors) from None
            item = {**turn.input, "id": turn.id if turn.id is not None else "turn"}
            result = await service.turns.invoke(name, item)
        finally:
            service.invokes_in_flight -= 1
        service.metrics.invoke_seconds.labels(name).observe(time.perf_counter() - started)
        service.metrics.items.labels(name, "succeeded" if result.ok else "failed").inc()
        if result.escalate:
            service.metrics.escalations.labels(name).inc()
        return Response(json.dumps(result.to_dict(), default=str), media_type="application/json")

    @app.get("/v1/graphs", tags=["graphs"], responses=auth_problems)
    async def list_graphs(principal: Read) -> list[str]:
        """Names of the graphs jobs and turns can use."""
        return sorted(p.stem for p in settings.graphs_dir.glob("*.yaml"))

    # -- skills -------------------------------------------------------------------------

    @app.get("/v1/skills", response_model=list[SkillView], tags=["skills"], responses=auth_problems)
    async def list_skills(principal: Skills) -> list[dict[str, Any]]:
        """Every registered skill with its versions, aliases and build status."""
        registry = service.runtime.registry
        return [_skill_view(registry, name) for name in registry.names()]

    @app.get(
        "/v1/skills/{name}",
        response_model=SkillView,
        tags=["skills"],
        responses={**auth_problems, **problem_responses(404, 422)},
    )
    async def get_skill(
        name: Annotated[str, Path(pattern=GRAPH_NAME)], principal: Skills
    ) -> dict[str, Any]:
        """One skill's versions."""
        registry = service.runtime.registry
        if name not in registry.names():
            raise ApiError(404, "unknown_skill", f"no skill {name!r}")
        return _skill_view(registry, name)


def _ray_check(runtime: Runtime) -> str:
    if runtime.executor.name not in ("ray", "serve"):
        return "not used"
    try:
        import ray

        if not ray.is_initialized():
            return "not started"  # it starts with the first job
        ray.cluster_resources()
        return "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
        return f"error: {type(exc).__name__}"


def _skill_view(registry: Any, name: str) -> dict[str, Any]:
    aliases = registry.aliases(name)
    versions = []
    for version in registry.versions(name):
        problem = version.problem()
        versions.append(
            {
                "version": version.version,
                "aliases": sorted(a for a, v in aliases.items() if v == version.version),
                "backend": version.skill_cls.backend,
                "status": "ready" if problem is None else "not built",
                "problem": problem,
                "description": version.skill_cls.description,
                "metrics": version.build.metrics if version.build else {},
            }
        )
    return {"name": name, "versions": versions}


# -- submission -------------------------------------------------------------------------------


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "request_too_large", f"the body is larger than {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "request_too_large", f"the body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _check_job_request(job: JobRequest, settings: ServiceSettings) -> None:
    """The cross-field rules the JSON schema states with oneOf, with errors naming the field."""

    def reject(field: str, message: str) -> ApiError:
        return ApiError(
            422, "invalid_request", message, errors=[{"field": field, "message": message}]
        )

    if (job.graph is None) == (job.task is None):
        field = "body.graph" if job.graph is None else "body.task"
        raise reject(field, "give exactly one of 'graph' (a checked-in graph) or 'task' (to plan)")
    if job.task is not None and not job.fields:
        raise reject("body.fields", "a task needs 'fields': the items' fields and their types")
    if job.graph is not None and job.fields is not None:
        raise reject("body.fields", "'fields' goes with 'task'; a graph declares its own inputs")
    if job.webhook_url and not re.match(webhook_pattern(settings.webhook_hosts), job.webhook_url):
        raise reject("body.webhook_url", "webhooks may only target the configured webhook_hosts")


def _parse_fields_text(text: str) -> dict[str, str]:
    """``utterance,lead_score:float`` -> ``{"utterance": "str", "lead_score": "float"}``."""
    if not re.match(FIELDS_TEXT, text):
        raise ApiError(
            422,
            "invalid_request",
            "fields: name or name:type, comma-separated (types: str, int, float, bool)",
            errors=[{"field": "body.fields", "message": "e.g. utterance,lead_score:float"}],
        )
    pairs = (part.partition(":") for part in text.split(","))
    return {name: kind or "str" for name, _, kind in pairs}


async def _submit_json(
    request: Request, service: Service, principal: Principal, key: str | None
) -> tuple[JobRecord, bool]:
    body = await _read_body(request, service.settings.max_request_bytes)
    try:
        job = JobRequest.model_validate_json(body)
    except ValidationError as exc:
        errors = field_errors(exc, prefix="body.")
        if any(e.get("type") == "json_invalid" for e in exc.errors()):
            raise ApiError(
                400, "invalid_json", "the body is not valid JSON", errors=errors
            ) from None
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
        raise ApiError(422, "invalid_request", detail, errors=errors) from None
    _check_job_request(job, service.settings)
    return await run_in_threadpool(
        service.jobs.submit,
        owner=principal.name,
        items=inline_items(job.items),
        graph=job.graph,
        task=job.task,
        fields=dict(job.fields) if job.fields else None,
        idempotency_key=key,
        request_sha256=hashlib.sha256(body).hexdigest(),
        webhook_url=job.webhook_url,
    )


async def _submit_upload(
    request: Request, service: Service, principal: Principal, key: str | None
) -> tuple[JobRecord, bool]:
    from starlette.datastructures import UploadFile

    declared = request.headers.get("content-length")
    limit = service.settings.max_upload_bytes
    if declared and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "request_too_large", f"the upload is larger than {limit} bytes")
    try:
        form = await request.form(max_files=1, max_fields=8)
    except Exception as exc:  # noqa: BLE001 - malformed multipart raises many kinds
        raise ApiError(400, "invalid_multipart", f"could not parse the form: {exc}") from None
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(form.close)
        upload = form.get("file")
        if isinstance(upload, str):  # a part without a filename arrives as text (bounded: 1 MiB)
            upload = UploadFile(io.BytesIO(upload.encode()), filename="file")
        if not isinstance(upload, UploadFile):
            message = "attach the items as a JSONL file in the form field 'file'"
            raise ApiError(
                422, "invalid_request", message, errors=[{"field": "body.file", "message": message}]
            )
        values: dict[str, Any] = {}
        for name in ("graph", "task", "fields", "webhook_url"):
            value = form.get(name)
            if isinstance(value, str):
                values[name] = value
        unknown = sorted(set(form.keys()) - {"file", "graph", "task", "fields", "webhook_url"})
        if unknown:
            message = f"unknown form field(s): {', '.join(unknown)}"
            errors = [{"field": f"body.{u}", "message": "not a known field"} for u in unknown]
            raise ApiError(422, "invalid_request", message, errors=errors)
        if "fields" in values:
            values["fields"] = _parse_fields_text(values["fields"])
        try:
            checked = JobRequest.model_validate({**values, "items": [None]})
        except ValidationError as exc:
            errors = field_errors(exc, prefix="body.")
            detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
            raise ApiError(422, "invalid_request", detail, errors=errors) from None
        _check_job_request(checked, service.settings)
        digest = await run_in_threadpool(_hash_upload, upload.file, values)
        return await run_in_threadpool(
            service.jobs.submit,
            owner=principal.name,
            items=jsonl_items(upload.file),
            graph=checked.graph,
            task=checked.task,
            fields=dict(checked.fields) if checked.fields else None,
            idempotency_key=key,
            request_sha256=digest,
            webhook_url=checked.webhook_url,
        )
    raise AssertionError("unreachable")  # pragma: no cover


def _hash_upload(file: Any, values: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(values, sort_keys=True).encode())
    file.seek(0)
    while block := file.read(2**20):
        digest.update(block)
    file.seek(0)
    return digest.hexdigest()


async def _events(service: Service, job_id: str) -> AsyncIterator[dict[str, str]]:
    last: dict[str, Any] | None = None
    while True:
        job = service.store.get(job_id)
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
        await asyncio.sleep(0.25)


def _openapi_extras(app: FastAPI, settings: ServiceSettings) -> None:
    """Describe the hand-read submit body, with the graphs this service knows."""
    from fastapi.openapi.utils import get_openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, summary=app.summary, routes=app.routes
            )
            graphs = sorted(p.stem for p in settings.graphs_dir.glob("*.yaml"))
            body = submit_body(graphs, webhook_pattern(settings.webhook_hosts))
            schema["paths"]["/v1/jobs"]["post"]["requestBody"] = body
            for path in schema["paths"].values():  # the HTTP server itself may answer 400
                for operation in path.values():
                    operation["responses"].setdefault("400", MALFORMED)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
