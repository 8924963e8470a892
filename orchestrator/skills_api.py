"""Skill releases over HTTP: ``POST /v1/skills/{name}/promote`` and ``/rollback`` (admin keys).

The same moves as ``orchestrator skills promote|rollback`` (aliases in the skills folder's
manifests), then the running service picks them up without a restart: the registry is reloaded,
compiled graphs are forgotten, and real-time turns compile against the new ``prod`` on their next
call. Jobs already running finish on the version they started with; nothing is dropped.
"""

# No ``from __future__ import annotations``: FastAPI must see the route-local ``Annotated``
# dependency aliases as objects.
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from starlette.concurrency import run_in_threadpool

from orchestrator.auth import Principal
from orchestrator.errors import OrchestratorError, UnknownSkillError
from orchestrator.payloads import GRAPH_NAME
from orchestrator.problems import ApiError, problem_responses

if TYPE_CHECKING:
    from orchestrator.api import Service

__all__ = ["skills_router"]


def skills_router(require: Callable[[str], Callable[..., Awaitable[Principal]]]) -> APIRouter:
    """The release routes; ``require(scope)`` is the API's auth dependency."""
    router = APIRouter(prefix="/v1/skills", tags=["skills"])
    Admin = Annotated[Principal, Depends(require("admin"))]
    SkillName = Annotated[str, Path(pattern=GRAPH_NAME, description="a skill name")]
    problems = problem_responses(401, 403, 404, 409, 422)

    @router.post("/{name}/promote", responses=problems)
    async def promote_skill(request: Request, name: SkillName, principal: Admin) -> dict[str, Any]:
        """Move ``prod`` to the skill's canary version (the old prod stays as ``previous``)."""
        from orchestrator.distill import promote

        return await _release(request, promote, name)

    @router.post("/{name}/rollback", responses=problems)
    async def rollback_skill(request: Request, name: SkillName, principal: Admin) -> dict[str, Any]:
        """Move ``prod`` back to the version it had before the last promotion."""
        from orchestrator.distill import rollback

        return await _release(request, rollback, name)

    return router


async def _release(
    request: Request, move: Callable[..., dict[str, Any]], name: str
) -> dict[str, Any]:
    service: Service = request.app.state.service
    try:
        result = await run_in_threadpool(move, name, skills_dir=service.runtime.settings.skills_dir)
    except UnknownSkillError as exc:
        raise ApiError(404, exc.code, str(exc)) from None
    except OrchestratorError as exc:  # no canary / nothing to roll back: the state forbids it
        raise ApiError(409, exc.code, str(exc)) from None
    await service.reload_skills()
    return result
