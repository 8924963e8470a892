"""The review queue: ``GET /v1/reviews``, ``GET /v1/reviews/{id}``, ``POST /v1/reviews/{id}/answer``.

Reviewers hold keys with the ``reviews`` scope (or ``admin``). The reviewer recorded with an
answer is the key's name, never a name the request claims. Answering finishes the held item on the
service's process (its dependent steps on local models), replaces the item's result in the job
store, and keeps the answer as a labelled example for distillation.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from orchestrator.errors import ReviewError
from orchestrator.service.deps import Reviewer, ServiceDep
from orchestrator.service.problems import ApiError, problem_responses

__all__ = ["ReviewAnswer", "TicketView", "router"]

#: ReviewError codes -> HTTP status
_STATUS = {"review_not_found": 404, "review_already_answered": 409, "review_invalid": 422}


class ReviewAnswer(BaseModel):
    """A reviewer's answer: a value for every output field of the step's skill."""

    model_config = ConfigDict(extra="forbid")

    answer: dict[str, Any] = Field(description="output field -> value, e.g. {'intent': 'balance'}")


class TicketView(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: int
    job_id: str
    item: int
    item_id: Any
    graph: str
    step: str
    skill: str
    inputs: dict[str, Any]
    proposed: dict[str, Any]
    confidence: float
    answered_by: str
    status: Literal["waiting", "answered"]
    answer: dict[str, Any] | None
    reviewer: str | None
    result: dict[str, Any] | None
    created_at: float
    answered_at: float | None


router = APIRouter(prefix="/v1/reviews", tags=["reviews"])

TicketId = Annotated[int, Path(ge=1, le=2**62, description="a review ticket id")]
_PROBLEMS = problem_responses(401, 403, 422)


@router.get("", response_model=list[TicketView], responses=_PROBLEMS)
async def list_reviews(
    principal: Reviewer,
    service: ServiceDep,
    status: Annotated[Literal["waiting", "answered", "all"], Query()] = "waiting",
    job_id: Annotated[str | None, Query(max_length=64)] = None,
    after: Annotated[int, Query(ge=0, le=2**62, description="tickets after this id (paging)")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """Tickets oldest first: what was held, the proposed answer, how sure the models were."""
    found = await run_in_threadpool(
        service.runtime.reviews.queue.list,
        status=None if status == "all" else status,
        job_id=job_id,
        after=after,
        limit=limit,
    )
    return [t.to_dict() for t in found]


@router.get(
    "/{ticket_id}", response_model=TicketView, responses={**_PROBLEMS, **problem_responses(404)}
)
async def get_review(ticket_id: TicketId, principal: Reviewer, service: ServiceDep) -> Any:
    """One ticket."""
    ticket = await run_in_threadpool(service.runtime.reviews.queue.get, ticket_id)
    if ticket is None:
        raise ApiError(404, "review_not_found", f"no review ticket {ticket_id}")
    return ticket.to_dict()


@router.post(
    "/{ticket_id}/answer",
    response_model=TicketView,
    responses={**_PROBLEMS, **problem_responses(404, 409, 422)},
)
async def answer_review(
    ticket_id: TicketId, body: ReviewAnswer, principal: Reviewer, service: ServiceDep
) -> Any:
    """Answer a ticket: the held item finishes with the answer; returns the closed ticket."""
    try:
        done = await service.runtime.reviews.answer(ticket_id, body.answer, reviewer=principal.name)
    except ReviewError as exc:
        raise ApiError(_STATUS.get(exc.code, 422), exc.code, str(exc)) from None
    assert done.result is not None
    await run_in_threadpool(service.store.replace_result, done.job_id, done.item_idx, done.result)
    return done.to_dict()
