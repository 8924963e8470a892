"""The operator's dashboard: one HTML page at ``/ui`` and the JSON it polls (no build step).

::

    GET /ui                          the page: asks for an API key (kept in sessionStorage)
    GET /ui/static/...               its script, stylesheet and the vendored Chart.js
    GET /v1/dashboard/jobs           recent jobs: status, progress, ledger summary, savings
    GET /v1/dashboard/jobs/{id}      one job: its whole ledger, per skill version, and savings
    GET /v1/dashboard/escalation     escalation rate per skill version over time

The JSON endpoints take the same keys and scope as the rest of the API (``jobs:read``): a key
sees its own jobs, an admin key everybody's. The page also shows the review queue from
``GET /v1/reviews?status=waiting`` ("unavailable" where the service has none).

Savings compare what a job spent on the big model (the ledger's ``llm_*`` fields) with the
all-big-model baseline (``baseline_*``: every item sent to the big model); a ledger without
baseline fields counts them as 0. Nothing is fetched from the internet: Chart.js ships in
``orchestrator/static/ui/vendor/``.

Example::

    app.include_router(dashboard_router(require))   # require(scope) -> a FastAPI dependency
"""

# No ``from __future__ import annotations``: FastAPI must see the route-local ``Annotated``
# dependency alias as an object, not as a name it cannot resolve.
import math
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from orchestrator.auth import Principal
from orchestrator.jobs import job_view
from orchestrator.problems import ApiError, problem_responses
from orchestrator.store import JobRecord

if TYPE_CHECKING:
    from orchestrator.api import Service

__all__ = [
    "SAVINGS_FIELDS",
    "STATIC_DIR",
    "EscalationView",
    "JobDetail",
    "JobRow",
    "JobsPage",
    "Savings",
    "dashboard_router",
    "escalation_series",
    "savings",
]

#: the page, its script and stylesheet, and the vendored chart library
STATIC_DIR = Path(__file__).parent / "static" / "ui"

#: (savings entry, spent ledger field, baseline ledger field)
SAVINGS_FIELDS = (
    ("calls", "llm_calls", "baseline_llm_calls"),
    ("prompt_tokens", "llm_prompt_tokens", "baseline_prompt_tokens"),
    ("completion_tokens", "llm_completion_tokens", "baseline_completion_tokens"),
    ("cost_usd", "llm_cost_usd", "baseline_cost_usd"),
)
_SUMMARY_FIELDS = ("items", "succeeded", "failed", "escalated", "degraded", "escalation_rate")

#: escalation buckets to choose from: the smallest giving at most _MAX_BUCKETS over the window
_BUCKETS_S = (10, 30, 60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400)
_MAX_BUCKETS = 60
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


# -- pure reducers -----------------------------------------------------------------------------


def savings(ledger: Mapping[str, Any]) -> dict[str, Any]:
    """Spent vs baseline for calls, tokens and cost; missing fields count as 0.

    >>> savings({"llm_calls": 2, "baseline_llm_calls": 10})["calls"]
    {'spent': 2, 'baseline': 10, 'saved': 8, 'saved_fraction': 0.8}
    """
    out: dict[str, Any] = {}
    for name, spent_field, baseline_field in SAVINGS_FIELDS:
        spent, baseline = ledger.get(spent_field) or 0, ledger.get(baseline_field) or 0
        if name == "cost_usd" and ledger.get("baseline_price_model"):
            spent = _at_reference(ledger)  # both sides at one price, as in the cost report
        saved = baseline - spent
        fraction = round(saved / baseline, 4) if baseline else None
        out[name] = {
            "spent": spent,
            "baseline": baseline,
            "saved": saved,
            "saved_fraction": fraction,
        }
    out["baseline_recorded"] = any(f in ledger for _, _, f in SAVINGS_FIELDS)
    return out


def _at_reference(ledger: Mapping[str, Any]) -> float:
    """The job's big-model tokens priced like its baseline (the embedded model costs $0 itself:
    comparing that with a list-priced baseline would overstate the saving)."""
    from orchestrator.prices import price_of

    try:
        price = price_of(str(ledger["baseline_price_model"]))
    except ValueError:  # a custom price from another process's environment: keep the recorded
        return float(ledger.get("llm_cost_usd") or 0.0)
    tokens = (
        int(ledger.get("llm_prompt_tokens") or 0),
        int(ledger.get("llm_completion_tokens") or 0),
    )
    return round(price.cost_usd(*tokens), 6)


def escalation_series(
    ledgers: Iterable[tuple[float, Mapping[str, Any]]], bucket_s: int
) -> list[dict[str, Any]]:
    """Per skill version, ``escalated / items`` per bucket of finish time (ledgers' ``skill_items``
    and ``skill_escalated``), series sorted by key, points by time.

    >>> escalation_series([(65.0, {"skill_items": {"a@1": 4}, "skill_escalated": {"a@1": 1}})], 60)
    [{'key': 'a@1', 'skill': 'a', 'version': '1', 'points': [{'t': 60.0, 'items': 4, 'escalated': 1, 'rate': 0.25}]}]
    """
    counts: dict[str, dict[float, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for finished, ledger in ledgers:
        bucket = math.floor(finished / bucket_s) * bucket_s
        escalated = ledger.get("skill_escalated") or {}
        for key, items in (ledger.get("skill_items") or {}).items():
            cell = counts[key][float(bucket)]
            cell[0] += int(items)
            cell[1] += int(escalated.get(key, 0))
    series = []
    for key in sorted(counts):
        name, _, version = key.partition("@")
        points = [
            {"t": t, "items": n, "escalated": e, "rate": round(e / n, 4) if n else 0.0}
            for t, (n, e) in sorted(counts[key].items())
        ]
        series.append({"key": key, "skill": name, "version": version, "points": points})
    return series


def _bucket_for(window_s: float) -> int:
    return next((b for b in _BUCKETS_S if window_s / b <= _MAX_BUCKETS), _BUCKETS_S[-1])


def _ledger(job: JobRecord, view: Mapping[str, Any]) -> dict[str, Any]:
    """The job's stored ledger (exact numbers), plus the fields the API's view derives."""
    return {**view["ledger"], **(job.ledger or {})}


def _row(job: JobRecord) -> dict[str, Any]:
    view = job_view(job)
    ledger = _ledger(job, view)
    summary = {name: ledger.get(name) or 0 for name in _SUMMARY_FIELDS}
    for _, spent, baseline in SAVINGS_FIELDS:
        summary[spent], summary[baseline] = ledger.get(spent) or 0, ledger.get(baseline) or 0
    return {
        "id": job.id,
        "owner": job.owner,
        "graph": view["graph"],
        "status": view["status"],
        "items_done": job.items_done,
        "items_total": job.items_total,
        "fraction": view["progress"]["fraction"],
        "created_at": view["created_at"],
        "finished_at": view["finished_at"],
        "ledger": summary,
        "savings": savings(ledger),
    }


def _totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    summed: dict[str, Any] = {}
    for row in rows:
        for _, spent, baseline in SAVINGS_FIELDS:
            for name in (spent, baseline):
                summed[name] = summed.get(name, 0) + row["ledger"][name]
    totals = savings(summed)
    totals["baseline_recorded"] = any(r["savings"]["baseline_recorded"] for r in rows)
    return totals


def _skills(ledger: Mapping[str, Any]) -> list[dict[str, Any]]:
    items, escalated = ledger.get("skill_items") or {}, ledger.get("skill_escalated") or {}
    calls, seconds = ledger.get("skill_calls") or {}, ledger.get("skill_seconds") or {}
    rows = []
    for key in sorted(set(items) | set(calls)):
        name, _, version = key.partition("@")
        n, e = int(items.get(key, 0)), int(escalated.get(key, 0))
        rows.append(
            {
                "key": key,
                "skill": name,
                "version": version,
                "calls": int(calls.get(key, 0)),
                "items": n,
                "escalated": e,
                "escalation_rate": round(e / n, 4) if n else 0.0,
                "seconds": round(float(seconds.get(key, 0.0)), 4),
            }
        )
    return rows


# -- routes ------------------------------------------------------------------------------------


def dashboard_router(require: Callable[[str], Callable[..., Awaitable[Principal]]]) -> APIRouter:
    """The page, its files and its JSON. ``require(scope)``: the API's auth dependency."""
    Reader = Annotated[Principal, Depends(require("jobs:read"))]
    router = APIRouter()
    router.mount("/ui/static", StaticFiles(directory=STATIC_DIR), name="ui-static")
    problems = {**problem_responses(401, 403, 422)}

    def owner_filter(principal: Principal) -> str | None:
        return None if principal.admin else principal.name

    @router.get("/ui", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        """The dashboard (open: the data behind it needs a key)."""
        html = await run_in_threadpool((STATIC_DIR / "index.html").read_text, "utf-8")
        return HTMLResponse(html, headers=_PAGE_HEADERS)

    @router.get(
        "/v1/dashboard/jobs", response_model=JobsPage, tags=["dashboard"], responses=problems
    )
    async def dashboard_jobs(
        request: Request,
        principal: Reader,
        limit: Annotated[int, Query(ge=1, le=500, description="newest jobs to list")] = 50,
    ) -> dict[str, Any]:
        """Recent jobs (the caller's; an admin's: everybody's), newest first, with progress,
        ledger summary and big-model savings."""
        service: Service = request.app.state.service
        jobs = await run_in_threadpool(
            service.store.recent_jobs, owner=owner_filter(principal), limit=limit
        )
        rows = [_row(job) for job in jobs]
        return {"jobs": rows, "totals": _totals(rows)}

    @router.get(
        "/v1/dashboard/jobs/{job_id}",
        response_model=JobDetail,
        tags=["dashboard"],
        responses={**problems, **problem_responses(404)},
    )
    async def dashboard_job(
        request: Request,
        principal: Reader,
        job_id: Annotated[str, PathParam(pattern=r"^[0-9a-f]{16}$", description="a job id")],
    ) -> dict[str, Any]:
        """One job: its whole ledger, the work of each skill version, and its savings."""
        service: Service = request.app.state.service
        job = await run_in_threadpool(service.store.get, job_id)
        if job is None or (job.owner != principal.name and not principal.admin):
            raise ApiError(404, "job_not_found", f"no job {job_id}")
        view = job_view(job)
        ledger = _ledger(job, view)
        for _, spent, baseline in SAVINGS_FIELDS:
            ledger.setdefault(spent, 0)
            ledger.setdefault(baseline, 0)
        return {
            "job": _row(job),
            "ledger": ledger,
            "skills": _skills(ledger),
            "accuracy": view["accuracy"],
            "kept_accuracy": view["kept_accuracy"],
            "error": view["error"],
        }

    @router.get(
        "/v1/dashboard/escalation",
        response_model=EscalationView,
        tags=["dashboard"],
        responses=problems,
    )
    async def dashboard_escalation(
        request: Request,
        principal: Reader,
        hours: Annotated[
            float, Query(gt=0, le=24 * 90, description="window: the last N hours")
        ] = 24,
        bucket_s: Annotated[
            int | None,
            Query(ge=10, le=86400, description="bucket width; default: at most 60 buckets"),
        ] = None,
    ) -> dict[str, Any]:
        """Escalation rate (escalated / items) per skill version, from the ledgers of jobs that
        finished in the window, bucketed by finish time."""
        service: Service = request.app.state.service
        until = time.time()
        since = until - hours * 3600
        width = bucket_s or _bucket_for(hours * 3600)
        ledgers = await run_in_threadpool(
            service.store.finished_ledgers,
            owner=owner_filter(principal),
            since=since,
            limit=_MAX_LEDGERS,
        )
        return {
            "since": since,
            "until": until,
            "bucket_s": width,
            "series": escalation_series(ledgers, width),
        }

    return router
