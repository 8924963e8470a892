"""FastAPI dependencies the routes share: the service, the caller's key, strict query strings.

A route takes what it needs as annotated parameters::

    @router.get("/v1/jobs/{job_id}")
    async def get_job(job_id: JobId, principal: Read, service: ServiceDep) -> ...

:func:`require` answers 401 without a valid key and 403 without the scope; with ``auth`` off
every caller is an admin. :func:`known_query` (an app-wide dependency) answers 400 for a query
parameter the route does not take.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from orchestrator.service.auth import Principal
from orchestrator.service.problems import ApiError
from orchestrator.service.service import Service

__all__ = [
    "Admin",
    "Invoke",
    "JobId",
    "Read",
    "Reviewer",
    "ServiceDep",
    "Skills",
    "Write",
    "get_service",
    "known_query",
    "require",
]

JOB_ID = r"^[0-9a-f]{16}$"


def get_service(request: Request) -> Service:
    """The app's :class:`Service` (set by ``create_app``)."""
    service: Service = request.app.state.service
    return service


ServiceDep = Annotated[Service, Depends(get_service)]

_bearer = HTTPBearer(auto_error=False, description="an API key: Authorization: Bearer ork_...")


def require(scope: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency: the caller's principal, 401 without a valid key, 403 without ``scope``."""

    async def check(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        service = get_service(request)
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


Read = Annotated[Principal, Depends(require("jobs:read"))]
Write = Annotated[Principal, Depends(require("jobs:write"))]
Invoke = Annotated[Principal, Depends(require("graphs:invoke"))]
Skills = Annotated[Principal, Depends(require("skills:read"))]
Reviewer = Annotated[Principal, Depends(require("reviews"))]
Admin = Annotated[Principal, Depends(require("admin"))]
JobId = Annotated[str, Path(pattern=JOB_ID, description="a job id")]


async def known_query(request: Request) -> None:
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
