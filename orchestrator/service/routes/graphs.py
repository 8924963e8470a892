"""Graphs: ``GET /v1/graphs``, the names jobs (``"graph": NAME``) and turns can use.

A graph is ``<graphs_dir>/<name>.yaml``; turns on one are in :mod:`.turns`.
"""

from __future__ import annotations

from fastapi import APIRouter

from orchestrator.service.deps import Read, ServiceDep
from orchestrator.service.problems import problem_responses

__all__ = ["router"]

router = APIRouter(tags=["graphs"])


@router.get("/v1/graphs", responses=problem_responses(401, 403))
async def list_graphs(principal: Read, service: ServiceDep) -> list[str]:
    """Names of the graphs jobs and turns can use."""
    return sorted(p.stem for p in service.settings.graphs_dir.glob("*.yaml"))
