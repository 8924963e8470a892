"""The operator's dashboard: one HTML page at ``/ui`` and the JSON it polls (no build step).

::

    GET /ui                          the page: asks for an API key (kept in sessionStorage)
    GET /ui/static/...               its script, stylesheet and the vendored Chart.js
    GET /v1/dashboard/jobs           recent jobs: status, progress, ledger summary, savings
    GET /v1/dashboard/jobs/{id}      one job: its whole ledger, per skill version, and savings
    GET /v1/dashboard/escalation     escalation rate per skill version over time
    GET /v1/dashboard/providers      provider measurements: each provider vs the small model on
                                     a skill's unsure items (``orchestrator providers eval``, and
                                     reviewers' answers on items a provider had answered)

The JSON endpoints take the same keys and scope as the rest of the API (``jobs:read``): a key
sees its own jobs, an admin key everybody's. The page also shows the review queue from
``GET /v1/reviews?status=waiting`` ("unavailable" where the service has none).

The numbers come from :mod:`orchestrator.service.savings`. Nothing is fetched from the internet:
Chart.js ships in ``orchestrator/service/static/ui/vendor/``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from orchestrator.service.auth import Principal
from orchestrator.service.deps import JobId, Read, ServiceDep
from orchestrator.service.jobs import job_view
from orchestrator.service.problems import ApiError, problem_responses
from orchestrator.service.savings import (
    SAVINGS_FIELDS,
    bucket_for,
    escalation_series,
    job_ledger,
    job_row,
    skill_rows,
    totals,
)

__all__ = [
    "STATIC_DIR",
    "EscalationView",
    "JobDetail",
    "JobRow",
    "JobsPage",
    "ProvidersView",
    "Savings",
    "router",
]

#: the page, its script and stylesheet, and the vendored chart library
STATIC_DIR = Path(__file__).resolve().parents[1] / "static" / "ui"

#: finished jobs read per escalation query (the newest, when a window holds more)
_MAX_LEDGERS = 20_000

_PAGE_HEADERS = {
    # The page loads only its own files and talks only to this service: an injected script
    # (a hostile job id or review input) could not run, nor send the key elsewhere.
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

Number = int | float


# -- response bodies ---------------------------------------------------------------------------


class Spend(BaseModel):
    """One big-model quantity: what the job spent against the all-big-model baseline."""

    spent: Number = Field(description="what the runtime spent (ledger llm_*)")
    baseline: Number = Field(
        description="what every item sent to the big model would have cost (ledger baseline_*)"
    )
    saved: Number = Field(description="baseline - spent")
    saved_fraction: float | None = Field(description="saved / baseline; null when baseline is 0")


class Savings(BaseModel):
    """Big-model calls, tokens and cost: spent vs the all-big-model baseline."""

    calls: Spend
    prompt_tokens: Spend
    completion_tokens: Spend
    cost_usd: Spend
    baseline_recorded: bool = Field(description="false: the ledger has no baseline_* fields")


class LedgerSummary(BaseModel):
    """The ledger numbers a jobs table shows."""

    items: int
    succeeded: int
    failed: int
    escalated: int
    degraded: int
    escalation_rate: float
    llm_calls: Number
    llm_prompt_tokens: Number
    llm_completion_tokens: Number
    llm_cost_usd: Number
    baseline_llm_calls: Number
    baseline_prompt_tokens: Number
    baseline_completion_tokens: Number
    baseline_cost_usd: Number


class JobRow(BaseModel):
    """One job in the dashboard's table."""

    id: str
    owner: str
    graph: str
    status: str
    items_done: int
    items_total: int
    fraction: float = Field(description="items_done / items_total")
    created_at: str
    finished_at: str | None
    ledger: LedgerSummary
    savings: Savings


class JobsPage(BaseModel):
    """Recent jobs, newest first, and the savings summed over them."""

    jobs: list[JobRow]
    totals: Savings


class SkillRow(BaseModel):
    """One skill version's work in a job."""

    key: str = Field(description="name@version")
    skill: str
    version: str
    calls: int
    items: int
    escalated: int
    escalation_rate: float
    seconds: float


class JobDetail(BaseModel):
    """One job: its row, its whole ledger, the work per skill version."""

    job: JobRow
    ledger: dict[str, Any] = Field(description="the job's ledger (GET /v1/jobs/{id}) + baseline")
    skills: list[SkillRow]
    accuracy: float | None
    kept_accuracy: float | None
    error: dict[str, str] | None


class RatePoint(BaseModel):
    t: float = Field(description="bucket start, seconds since the epoch (UTC)")
    items: int
    escalated: int
    rate: float = Field(description="escalated / items")


class RateSeries(BaseModel):
    key: str = Field(description="name@version")
    skill: str
    version: str
    points: list[RatePoint]


class EscalationView(BaseModel):
    """Escalation rate per skill version, bucketed by the jobs' finish time."""

    since: float = Field(description="window start, seconds since the epoch")
    until: float = Field(description="window end (now)")
    bucket_s: int
    series: list[RateSeries]


class ProviderRow(BaseModel):
    """One provider measured against a skill's small tiers on their unsure items."""

    skill: str = Field(description="name@version of the step's skill")
    provider: str
    model: str
    verdict: str = Field(description="pays | unproven | worse (worse: jobs keep the small answer)")
    margin: float = Field(description="the accuracy gain asked of the provider")
    items: int = Field(description="unsure items measured")
    small_accuracy: float
    provider_accuracy: float
    gain: float = Field(description="provider_accuracy - small_accuracy")
    p_value: float = Field(description="one-sided sign test on the items only one got right")
    failures: int
    calls: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    latency_p50_s: float | None = Field(description="seconds per call")
    latency_p95_s: float | None
    source: str = Field(
        description="bakeoff:<csv file>, or review: people's answers on held items the provider "
        "had answered (their tally, newest answer's time)"
    )
    created_at: float = Field(description="seconds since the epoch")


class ProvidersView(BaseModel):
    """Provider measurements, newest first."""

    measurements: list[ProviderRow]


# -- routes ------------------------------------------------------------------------------------

router = APIRouter(tags=["dashboard"])
router.mount("/ui/static", StaticFiles(directory=STATIC_DIR), name="ui-static")

_PROBLEMS = problem_responses(401, 403, 422)


@router.get("/ui", response_class=HTMLResponse, include_in_schema=False)
async def page() -> HTMLResponse:
    """The dashboard (open: the data behind it needs a key)."""
    html = await run_in_threadpool((STATIC_DIR / "index.html").read_text, "utf-8")
    return HTMLResponse(html, headers=_PAGE_HEADERS)


@router.get("/v1/dashboard/jobs", response_model=JobsPage, responses=_PROBLEMS)
async def dashboard_jobs(
    principal: Read,
    service: ServiceDep,
    limit: Annotated[int, Query(ge=1, le=500, description="newest jobs to list")] = 50,
) -> dict[str, Any]:
    """Recent jobs (the caller's; an admin's: everybody's), newest first, with progress,
    ledger summary and big-model savings."""
    jobs = await run_in_threadpool(
        service.store.recent_jobs, owner=_owner_filter(principal), limit=limit
    )
    rows = [job_row(job) for job in jobs]
    return {"jobs": rows, "totals": totals(rows)}


@router.get(
    "/v1/dashboard/jobs/{job_id}",
    response_model=JobDetail,
    responses={**_PROBLEMS, **problem_responses(404)},
)
async def dashboard_job(principal: Read, service: ServiceDep, job_id: JobId) -> dict[str, Any]:
    """One job: its whole ledger, the work of each skill version, and its savings."""
    job = await run_in_threadpool(service.store.get, job_id)
    if job is None or (job.owner != principal.name and not principal.admin):
        raise ApiError(404, "job_not_found", f"no job {job_id}")
    view = job_view(job)
    ledger = job_ledger(job, view)
    for _, spent, baseline in SAVINGS_FIELDS:
        ledger.setdefault(spent, 0)
        ledger.setdefault(baseline, 0)
    return {
        "job": job_row(job),
        "ledger": ledger,
        "skills": skill_rows(ledger),
        "accuracy": view["accuracy"],
        "kept_accuracy": view["kept_accuracy"],
        "error": view["error"],
    }


@router.get("/v1/dashboard/escalation", response_model=EscalationView, responses=_PROBLEMS)
async def dashboard_escalation(
    principal: Read,
    service: ServiceDep,
    hours: Annotated[float, Query(gt=0, le=24 * 90, description="window: the last N hours")] = 24,
    bucket_s: Annotated[
        int | None,
        Query(ge=10, le=86400, description="bucket width; default: at most 60 buckets"),
    ] = None,
) -> dict[str, Any]:
    """Escalation rate (escalated / items) per skill version, from the ledgers of jobs that
    finished in the window, bucketed by finish time."""
    until = time.time()
    since = until - hours * 3600
    width = bucket_s or bucket_for(hours * 3600)
    ledgers = await run_in_threadpool(
        service.store.finished_ledgers,
        owner=_owner_filter(principal),
        since=since,
        limit=_MAX_LEDGERS,
    )
    return {
        "since": since,
        "until": until,
        "bucket_s": width,
        "series": escalation_series(ledgers, width),
    }


@router.get("/v1/dashboard/providers", response_model=ProvidersView, responses=_PROBLEMS)
async def dashboard_providers(
    principal: Read,
    service: ServiceDep,
    limit: Annotated[int, Query(ge=1, le=1000, description="newest measurements to list")] = 50,
) -> dict[str, Any]:
    """Provider measurements, newest first: what escalating each skill's unsure items to each
    provider is worth, by bake-off and by reviewers' answers (measurements are about skills, not
    jobs: every reader sees them)."""
    found = await run_in_threadpool(service.runtime.provider_measurements, limit)
    return {"measurements": [m.to_dict() for m in found]}


def _owner_filter(principal: Principal) -> str | None:
    """Whose jobs the caller sees: its own, or (admin) everybody's."""
    return None if principal.admin else principal.name
