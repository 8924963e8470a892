"""Real-time turns: ``POST /v1/graphs/{name}/invoke``, one item through a graph, synchronously.

Turns run on the in-process small-model path (no queue, no big model): an unsure answer comes
back flagged ``escalate: true``. Most turns never reach this route: the service's middleware
(:class:`orchestrator.service.middleware.TurnFastPath`) answers well-formed ones first, and hands
this route everything else — a bad key, a malformed body, an invalid item, a cold graph,
overload — so the answers and their documentation live here.
"""

from __future__ import annotations

import json
import time
from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import Response
from pydantic import ValidationError

from orchestrator.runtime.turns import TurnRunner
from orchestrator.service.deps import Invoke, ServiceDep
from orchestrator.service.jobs import GraphNotFound
from orchestrator.service.models import GRAPH_NAME, ItemLine, TurnRequest
from orchestrator.service.problems import ApiError, field_errors, invalid_fields, problem_responses

__all__ = ["router"]

router = APIRouter(tags=["graphs"])

GraphName = Annotated[str, Path(pattern=GRAPH_NAME, description="graphs/<name>.yaml")]


@router.post(
    "/v1/graphs/{name}/invoke",
    response_model=ItemLine,
    responses={**problem_responses(401, 403), **problem_responses(400, 404, 413, 422, 429, 503)},
)
async def invoke(
    name: GraphName, turn: TurnRequest, principal: Invoke, service: ServiceDep
) -> Response:
    """One turn through a graph, synchronously, on the in-process small-model path.

    Answers the same line a job result holds (``id``, outputs, ``escalate``); a turn whose
    input does not fit the graph, or has a text over ``max_input_chars``, gets 422 naming the
    field; a body over ``max_turn_bytes`` gets 413. Unsure answers are flagged
    ``escalate: true``; the turn never waits for the big model.
    """
    if service.turns_full:
        service.metrics.rejected.labels("invoke").inc()
        raise ApiError(429, "overloaded", "too many turns in flight", headers={"Retry-After": "1"})
    started = time.perf_counter()
    with service.turn_slot():
        await _check_input(service.turns, name, turn, service.settings.max_input_chars)
        item = {**turn.input, "id": turn.id if turn.id is not None else "turn"}
        result = await service.turns.invoke(name, item)
    service.record_turn(name, result, time.perf_counter() - started)
    return Response(json.dumps(result.to_dict(), default=str), media_type="application/json")


async def _check_input(turns: TurnRunner, name: str, turn: TurnRequest, max_chars: int) -> None:
    """422 for a text over ``max_input_chars``; 404 for an unknown graph; 422 naming each field
    of an input that does not fit it."""
    long = [k for k, v in turn.input.items() if isinstance(v, str) and len(v) > max_chars]
    if long:
        message = f"longer than {max_chars} characters (the max_input_chars setting)"
        errors = [{"field": f"input.{k}", "message": message} for k in long]
        raise invalid_fields(errors, code="input_too_long")
    try:
        graph = await turns.warm(name)
    except GraphNotFound as exc:
        raise ApiError(404, "unknown_graph", str(exc)) from None
    try:
        graph.resolved.item_model.model_validate(turn.input)
    except ValidationError as exc:
        raise invalid_fields(field_errors(exc, prefix="input."), code="invalid_item") from None
