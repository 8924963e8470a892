"""The HTTP job service (FastAPI): submit and follow jobs, real-time turns, skills, health, metrics.

The endpoints, one router per resource, are listed in :mod:`orchestrator.service.routes`.

Errors are RFC 9457 ``application/problem+json`` with a stable ``code``; a bad payload gets 422
(413 if too large, 415 for an unknown content type) with ``errors`` naming each field
(``body.items``, ``query.limit``, ``input.utterance``). Back-pressure answers 429 with
``Retry-After``. Auth: ``Authorization: Bearer <key>`` (see :mod:`orchestrator.service.auth`).

This module only assembles the app (lifespan, middleware, error handlers, routers, OpenAPI
extras); the state the routes share is :class:`orchestrator.service.service.Service`.

Example::

    app = create_app(ServiceSettings(api_keys=[...]))      # then: uvicorn.run(app)
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Depends, FastAPI

from orchestrator.runtime.runtime import Runtime
from orchestrator.service.deps import known_query
from orchestrator.service.gate import RequestGate
from orchestrator.service.middleware import MetricsMiddleware, TurnFastPath
from orchestrator.service.models import MALFORMED, submit_body, webhook_pattern
from orchestrator.service.problems import install_error_handlers
from orchestrator.service.routes import dashboard, graphs, health, jobs, reviews, skills, turns
from orchestrator.service.service import Service
from orchestrator.service.settings import ServiceSettings

__all__ = ["Service", "create_app"]

#: in the order the OpenAPI document lists them
_ROUTERS = (health, jobs, turns, graphs, skills, dashboard, reviews)


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
        dependencies=[Depends(known_query)],
    )
    app.state.service = service  # what deps.get_service hands the routes
    install_error_handlers(app)
    app.add_middleware(MetricsMiddleware, metrics=service.metrics)
    app.add_middleware(TurnFastPath, service=service)  # turns skip the stack
    # outermost: host, key and body size are checked before anything reads the body
    app.add_middleware(RequestGate, settings=settings, keys=service.keys, metrics=service.metrics)
    for module in _ROUTERS:
        app.include_router(module.router)
    _openapi_extras(app, settings)
    return app


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
