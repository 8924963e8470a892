"""The review queue: ``GET /v1/reviews``, ``GET /v1/reviews/{id}``, ``POST /v1/reviews/{id}/answer``.

Reviewers hold keys with the ``reviews`` scope: they see and answer the tickets of their own
key's jobs; a key with ``reviews:all`` (or ``admin``) is a cross-tenant reviewer and sees every
job's. Another tenant's ticket is a 404, as if it did not exist. The reviewer recorded with an
answer is the key's name, never a name the request claims. Answering finishes the held item on the
service's process (its dependent steps on local models); the ticket closes and the item's result
in the job store is replaced in one transaction, and of two concurrent answers only one resumes
the item (the other gets 409). The answer is kept as a labelled example for distillation.

What a ticket shows (``inputs``) follows the runtime's ``review_inputs`` setting: redacted by the
PII guard by default, as given with ``raw`` (docs/operators.md).
"""

from __future__ import annotations

import pathlib
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from orchestrator.config.locations import is_postgres
from orchestrator.errors import ReviewError
from orchestrator.review.queue import Ticket
from orchestrator.service.auth import Principal
from orchestrator.service.deps import Reviewer, ServiceDep
from orchestrator.service.problems import ApiError, problem_responses
from orchestrator.service.service import Service
from orchestrator.store.jobs import replace_result_in
from orchestrator.store.postgres import public_location

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
    small: dict[str, Any] | None = Field(
        None,
        description="when a provider answered (answered_by llm:<provider>): the small tiers' "
        "answer it replaced; the reviewer's answer scores both",
    )
    status: Literal["waiting", "answering", "answered"]
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
    """Tickets oldest first (of the key's own jobs, unless it reviews for all): what was held,
    the proposed answer, how sure the models were."""
    mine = not principal.reviews_all
    shared = _shares_database(service)
    found = await run_in_threadpool(
        service.runtime.reviews.queue.list,
        status=None if status == "all" else status,
        job_id=job_id,
        after=after,
        limit=limit,
        owner=principal.name if mine and shared else None,  # filtered in SQL, with the jobs
    )
    if mine and not shared:  # the queue lives apart from the jobs: filter here (pages may be short)
        owners = await run_in_threadpool(_owners, service, {t.job_id for t in found})
        found = [t for t in found if owners.get(t.job_id) == principal.name]
    return [t.to_dict() for t in found]


def _owners(service: Service, job_ids: set[str]) -> dict[str, str]:
    jobs = {job_id: service.store.get(job_id) for job_id in job_ids}
    return {job_id: job.owner for job_id, job in jobs.items() if job is not None}


@router.get(
    "/{ticket_id}", response_model=TicketView, responses={**_PROBLEMS, **problem_responses(404)}
)
async def get_review(ticket_id: TicketId, principal: Reviewer, service: ServiceDep) -> Any:
    """One ticket."""
    ticket = await run_in_threadpool(_visible_ticket, service, ticket_id, principal)
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
    await run_in_threadpool(_visible_ticket, service, ticket_id, principal)
    shared = _shares_database(service)

    def also(run: Any, ticket: Any, result: dict[str, Any]) -> None:
        replace_result_in(run, ticket.job_id, ticket.item_idx, result)

    try:
        done = await service.runtime.reviews.answer(
            ticket_id, body.answer, reviewer=principal.name, also=also if shared else None
        )
    except ReviewError as exc:
        raise ApiError(_STATUS.get(exc.code, 422), exc.code, str(exc)) from None
    assert done.result is not None
    if not shared:  # the queue lives apart from the jobs: two steps, result last
        await run_in_threadpool(
            service.store.replace_result, done.job_id, done.item_idx, done.result
        )
    return done.to_dict()


def _visible_ticket(service: Service, ticket_id: int, principal: Principal) -> Ticket:
    """The ticket if this key may review it (its own job's, or any with ``reviews:all``); else
    404, so other tenants' ticket ids stay unknown."""
    ticket = service.runtime.reviews.queue.get(ticket_id)
    if ticket is not None and not principal.reviews_all:
        job = service.store.get(ticket.job_id)
        ticket = ticket if job is not None and job.owner == principal.name else None
    if ticket is None:
        raise ApiError(404, "review_not_found", f"no review ticket {ticket_id}")
    return ticket


def _shares_database(service: Service) -> bool:
    """Whether the review queue and the job store are one database (the service's default:
    ``ServiceSettings.store_url`` is the runtime's), so one transaction can span both."""
    queue = str(service.runtime.reviews.queue.path)
    if is_postgres(queue):
        return service.store.location == public_location(queue)
    return pathlib.Path(queue).resolve() == pathlib.Path(service.store.location).resolve()
