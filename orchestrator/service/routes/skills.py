"""Skills: list them, and release them without a restart.

::

    GET  /v1/skills                    every skill: versions, aliases, build status (skills:read)
    GET  /v1/skills/{name}             one skill's versions
    POST /v1/skills/{name}/promote     move ``prod`` to the canary version (admin)
    POST /v1/skills/{name}/rollback    move ``prod`` back to the version before the last promotion

Promote and rollback make the same moves as ``orchestrator skills promote|rollback`` (aliases in
the skills folder's manifests); then the running service picks them up: the registry is reloaded,
compiled graphs are forgotten, and real-time turns compile against the new ``prod`` on their next
call. Jobs already running finish on the version they started with; nothing is dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Path
from starlette.concurrency import run_in_threadpool

from orchestrator.errors import OrchestratorError, UnknownSkillError
from orchestrator.service.deps import Admin, ServiceDep, Skills
from orchestrator.service.models import GRAPH_NAME, SkillView
from orchestrator.service.problems import ApiError, problem_responses
from orchestrator.service.service import Service

__all__ = ["router"]

router = APIRouter(prefix="/v1/skills", tags=["skills"])

_AUTH = problem_responses(401, 403)
_RELEASE = problem_responses(401, 403, 404, 409, 422)
SkillName = Annotated[str, Path(pattern=GRAPH_NAME, description="a skill name")]


@router.get("", response_model=list[SkillView], responses=_AUTH)
async def list_skills(principal: Skills, service: ServiceDep) -> list[dict[str, Any]]:
    """Every registered skill with its versions, aliases and build status."""
    registry = service.runtime.registry
    return [_skill_view(registry, name) for name in registry.names()]


@router.get("/{name}", response_model=SkillView, responses={**_AUTH, **problem_responses(404, 422)})
async def get_skill(
    name: Annotated[str, Path(pattern=GRAPH_NAME)], principal: Skills, service: ServiceDep
) -> dict[str, Any]:
    """One skill's versions."""
    registry = service.runtime.registry
    if name not in registry.names():
        raise ApiError(404, "unknown_skill", f"no skill {name!r}")
    return _skill_view(registry, name)


@router.post("/{name}/promote", responses=_RELEASE)
async def promote_skill(name: SkillName, principal: Admin, service: ServiceDep) -> dict[str, Any]:
    """Move ``prod`` to the skill's canary version (the old prod stays as ``previous``)."""
    from orchestrator.learning.distill import promote

    return await _release(service, promote, name)


@router.post("/{name}/rollback", responses=_RELEASE)
async def rollback_skill(name: SkillName, principal: Admin, service: ServiceDep) -> dict[str, Any]:
    """Move ``prod`` back to the version it had before the last promotion."""
    from orchestrator.learning.distill import rollback

    return await _release(service, rollback, name)


async def _release(
    service: Service, move: Callable[..., dict[str, Any]], name: str
) -> dict[str, Any]:
    """Move the aliases (404: no such skill; 409: no canary, nothing to roll back), then reload."""
    try:
        result = await run_in_threadpool(move, name, skills_dir=service.runtime.settings.skills_dir)
    except UnknownSkillError as exc:
        raise ApiError(404, exc.code, str(exc)) from None
    except OrchestratorError as exc:  # no canary / nothing to roll back: the state forbids it
        raise ApiError(409, exc.code, str(exc)) from None
    await service.reload_skills()
    return result


def _skill_view(registry: Any, name: str) -> dict[str, Any]:
    """A skill's versions: aliases pointing at each, backend, build status and metrics."""
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
