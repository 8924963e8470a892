"""Health and metrics: ``GET /healthz``, ``GET /readyz``, ``GET /metrics``.

``/healthz`` and ``/readyz`` are open (probes hold no key); ``/metrics`` is open unless
``metrics_public`` is off, then it needs an admin key.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from orchestrator.runtime.runtime import Runtime
from orchestrator.service.deps import ServiceDep
from orchestrator.service.metrics import CONTENT_TYPE
from orchestrator.service.models import Health
from orchestrator.service.problems import ApiError

__all__ = ["router"]

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
async def healthz() -> dict[str, Any]:
    """The process answers (no auth)."""
    return {"status": "ok", "checks": {}}


@router.get(
    "/readyz",
    response_model=Health,
    responses={503: {"model": Health, "description": "not ready"}},
)
async def readyz(service: ServiceDep) -> Any:
    """The store answers, the job runner runs, and Ray is up when the executor needs it."""
    checks = {"store": "ok", "jobs": "ok" if service.jobs.alive else "stopped"}
    try:
        await run_in_threadpool(service.store.ping)  # a store failing over must not stall turns
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
        checks["store"] = f"error: {type(exc).__name__}"
    checks["ray"] = await run_in_threadpool(_ray_check, service.runtime)
    ready = all(v in ("ok", "not used") for v in checks.values())
    body = {"status": "ready" if ready else "not ready", "checks": checks}
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE: {"schema": {"type": "string"}}}}},
)
async def metrics(request: Request, service: ServiceDep) -> Response:
    """Prometheus metrics (text format); open unless ``metrics_public`` is off."""
    settings = service.settings
    if not settings.metrics_public and settings.auth:
        principal = service.keys.authenticate(request.headers.get("authorization"))
        if principal is None or not principal.admin:
            raise ApiError(401, "unauthorized", "an admin key is required for /metrics")
    return Response(service.metrics.render(), media_type=CONTENT_TYPE)


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
