"""What the dashboard shows, reduced from job ledgers: big-model savings, per-skill work, and
escalation rates over time. Pure functions of stored records (no I/O), so they test alone.

Savings compare what a job spent on the big model (the ledger's ``llm_*`` fields) with the
all-big-model baseline (``baseline_*``: every item sent to the big model); a ledger without
baseline fields counts them as 0.

Example::

    savings({"llm_calls": 2, "baseline_llm_calls": 10})["calls"]["saved"]   # 8
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from orchestrator.service.jobs import job_view
from orchestrator.store.jobs import JobRecord

__all__ = [
    "SAVINGS_FIELDS",
    "bucket_for",
    "escalation_series",
    "job_ledger",
    "job_row",
    "savings",
    "skill_rows",
    "totals",
]

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
    from orchestrator.config.prices import price_of

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


def bucket_for(window_s: float) -> int:
    """The escalation bucket width for a window: the smallest giving at most 60 buckets."""
    return next((b for b in _BUCKETS_S if window_s / b <= _MAX_BUCKETS), _BUCKETS_S[-1])


def job_ledger(job: JobRecord, view: Mapping[str, Any]) -> dict[str, Any]:
    """The job's stored ledger (exact numbers), plus the fields the API's view derives."""
    return {**view["ledger"], **(job.ledger or {})}


def job_row(job: JobRecord) -> dict[str, Any]:
    """One job as the dashboard's table shows it: progress, ledger summary, savings."""
    view = job_view(job)
    ledger = job_ledger(job, view)
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


def totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The savings summed over rows of :func:`job_row`."""
    summed: dict[str, Any] = {}
    for row in rows:
        for _, spent, baseline in SAVINGS_FIELDS:
            for name in (spent, baseline):
                summed[name] = summed.get(name, 0) + row["ledger"][name]
    result = savings(summed)
    result["baseline_recorded"] = any(r["savings"]["baseline_recorded"] for r in rows)
    return result


def skill_rows(ledger: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The work of each skill version in a ledger: calls, items, escalations, seconds."""
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
