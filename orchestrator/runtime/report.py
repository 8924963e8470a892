"""The cost report: what a job spent on the big model next to what doing it all with the big model
would have cost, in calls, tokens and dollars, with charts.

A report is read from the job store (``<data dir>/orchestrator.db``): jobs the service ran, jobs
``orchestrator run`` recorded (:func:`record_run`) and jobs scripts recorded with
:meth:`~orchestrator.store.jobs.Store.record_finished`. It shows:

- big-model calls, tokens and cost of the job against its all-big-model baseline (counted into
  the ledger by :mod:`orchestrator.graph.baseline`), both priced with one reference price
  (:mod:`orchestrator.config.prices`), so the saving reads in dollars even with a free local model;
- small-model calls and items, wall time, the escalation rate of every skill version, and where
  items were answered (small model, flagged, chain, big model, degraded);
- optionally, the baseline **measured** on a sample of the job's items
  (:func:`measure_job`): real calls to the configured big model, the baseline's way, with
  tokens and seconds per call extrapolated to the job.

Example::

    with open_store(settings.store_location) as store:
        report = build_report(load_job(store, job_id), price_of("gpt-4o-mini"))
    write_report(report, Path("reports") / job_id)   # report.md, report.json, *.png

Charts use matplotlib (Agg backend), imported only when a report is written.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.accounting.ledger import Ledger
from orchestrator.config.prices import Price
from orchestrator.errors import UnknownJob
from orchestrator.graph.baseline import CHARS_PER_TOKEN, Measurement
from orchestrator.store.jobs import JobRecord, Store, ledger_from_raw

if TYPE_CHECKING:
    from orchestrator.config import Settings

__all__ = [
    "CostReport",
    "UnknownJob",
    "bar_chart",
    "build_report",
    "load_job",
    "measure_job",
    "usd",
    "write_report",
]

#: Where an item's final answer came from (``Ledger.answered``), in chart order.
SOURCES = {
    "small_model": "small model",
    "flagged": "small model, flagged unsure",
    "chain": "chain skill",
    "big_model": "big model",
    "degraded": "degraded (big model failed)",
    "held_back": "small model, kept: provider measured worse",
    "review": "held for review",
}


def load_job(store: Store, job_id: str) -> JobRecord:
    """The job, or :class:`UnknownJob` naming the id and the store file."""
    job = store.get(job_id)
    if job is None:
        raise UnknownJob(
            f"no job {job_id!r} in the job store {store.location}; `orchestrator run` and the job "
            "service record their jobs there (set ORCHESTRATOR_DATA_DIR or --data-dir to look "
            "elsewhere)"
        )
    return job


# --- the figures ---------------------------------------------------------------------------------


@dataclass
class CostReport:
    """A job's figures, priced with one reference price; see :func:`build_report`."""

    job: JobRecord
    ledger: Ledger
    price: Price
    measurements: list[Measurement] = field(default_factory=list)
    #: extra lines for the report (e.g. why nothing was measured)
    notes: list[str] = field(default_factory=list)

    @property
    def runtime_cost(self) -> float:
        return self.price.cost_usd(self.ledger.llm_prompt_tokens, self.ledger.llm_completion_tokens)

    @property
    def baseline_cost(self) -> float:
        ledger = self.ledger
        return self.price.cost_usd(ledger.baseline_prompt_tokens, ledger.baseline_completion_tokens)

    @property
    def measured_baseline_cost(self) -> float | None:
        """The baseline's cost from the measured samples, extrapolated (None: nothing measured)."""
        if not any(m.calls for m in self.measurements):
            return None
        return sum(
            self.price.cost_usd(m.extrapolated_prompt_tokens, m.extrapolated_completion_tokens)
            for m in self.measurements
        )

    def to_dict(self) -> dict[str, Any]:
        ledger = self.ledger
        calls_saved = ledger.baseline_llm_calls - ledger.llm_calls
        return {
            "job_id": self.job.id,
            "graph": self.job.graph,
            "status": self.job.status,
            "owner": self.job.owner,
            "price": {
                "model": self.price.model,
                "prompt_per_1m": self.price.prompt_per_1m,
                "completion_per_1m": self.price.completion_per_1m,
                "source": self.price.source,
            },
            "runtime": {
                "llm_calls": ledger.llm_calls,
                "llm_prompt_tokens": ledger.llm_prompt_tokens,
                "llm_completion_tokens": ledger.llm_completion_tokens,
                "cost_usd": round(self.runtime_cost, 6),
                "provider_cost_usd": round(ledger.llm_cost_usd, 6),
                "small_model_calls": sum(ledger.skill_calls.values()),
                "small_model_items": sum(ledger.skill_items.values()),
                "wall_s": round(ledger.wall_s, 3),
            },
            "baseline": {
                "llm_calls": ledger.baseline_llm_calls,
                "prompt_tokens": ledger.baseline_prompt_tokens,
                "completion_tokens": ledger.baseline_completion_tokens,
                "cost_usd": round(self.baseline_cost, 6),
                "method": ledger.baseline_method,
                "measured_cost_usd": _round(self.measured_baseline_cost),
            },
            "saved": {
                "llm_calls": calls_saved,
                "llm_calls_fraction": _fraction(calls_saved, ledger.baseline_llm_calls),
                "cost_usd": round(self.baseline_cost - self.runtime_cost, 6),
                "cost_fraction": _fraction(
                    self.baseline_cost - self.runtime_cost, self.baseline_cost
                ),
            },
            "escalation": {
                key: {
                    "items": ledger.skill_items[key],
                    "escalated": ledger.skill_escalated.get(key, 0),
                    "rate": _fraction(ledger.skill_escalated.get(key, 0), ledger.skill_items[key]),
                }
                for key in ledger.skill_items
            },
            "answered": dict(ledger.answered),
            "measured": [m.to_dict() for m in self.measurements],
            "notes": list(self.notes),
            "ledger": ledger.to_dict(),
        }


def build_report(
    job: JobRecord,
    price: Price,
    measurements: Sequence[Measurement] = (),
    notes: Sequence[str] = (),
) -> CostReport:
    """The report's figures for a stored job (its ledger), priced with ``price``."""
    ledger = ledger_from_raw(job.ledger) if job.ledger else Ledger(job_id=job.id, graph=job.graph)
    return CostReport(job, ledger, price, list(measurements), list(notes))


# --- measuring -----------------------------------------------------------------------------------


def measure_job(
    store: Store, job: JobRecord, size: int, settings: Settings
) -> tuple[Measurement | None, str]:
    """Send ``size`` of the job's stored items to the configured big model the baseline's way.

    Returns the measurement and a note (why nothing was measured, or what was left out). Uses the
    runtime's gateway (``ORCHESTRATOR_LLM_PROVIDERS``, else the embedded model) under the
    runtime's privacy policy, one call at a time; the calls are audited, not put in any ledger.
    """
    if size <= 0:
        return None, ""
    if not job.spec_yaml:
        return None, "nothing measured: the job has no single graph recorded"
    items = _sample_items(store, job, size)
    if not items:
        return None, "nothing measured: the store keeps none of the job's items"
    import yaml

    from orchestrator.graph.baseline import baseline_steps, measure_baseline
    from orchestrator.graph.spec import GraphSpec
    from orchestrator.llm.gateway import Budget
    from orchestrator.llm.privacy import guarded_complete
    from orchestrator.runtime.runtime import Runtime

    spec = GraphSpec.from_dict(yaml.safe_load(job.spec_yaml), source=f"job {job.id}")
    local = settings.model_copy(update={"executor": "local"})
    with Runtime(settings=local) as runtime:
        graph = runtime.compile(spec)
        steps = len(baseline_steps(graph.resolved))
        if not steps:
            return None, "nothing measured: the graph has no step the big model would do"
        ledger = ledger_from_raw(job.ledger) if job.ledger else Ledger(job.id, job.graph)
        gateway = runtime.gateway
        complete = functools.partial(guarded_complete, gateway, policy=settings.privacy)

        async def run() -> Measurement:
            try:
                return await measure_baseline(
                    graph,
                    items,
                    complete=complete,
                    budget=Budget(max_calls=2 * len(items) * steps),
                    items_in_job=ledger.baseline_llm_calls // steps,
                    job_id=job.id,
                )
            finally:
                await gateway.aclose()

        measurement = asyncio.run(run())
    return measurement, measurement.note


def _sample_items(store: Store, job: JobRecord, size: int) -> list[Any]:
    """``size`` of the job's items, evenly spread: point reads for a job whose items are all
    stored (the service's), else the sample ``orchestrator run`` kept."""
    total = job.items_total
    picks = sorted({k * total // size for k in range(size)}) if total else []
    found = [raw for i in picks for raw in store.items(job.id, i, i + 1)]
    if len(found) < len(picks):
        kept = store.items(job.id, 0, total)  # a run's sample: a few hundred rows at most
        step = max(1, len(kept) / size)
        found = [kept[int(k * step)] for k in range(min(size, len(kept)))]
    return [raw.value for raw in found if raw.parse_error is None]


# --- writing -------------------------------------------------------------------------------------


def usd(value: float) -> str:
    """Dollars as the report writes them: cents above $1, more digits below."""
    if abs(value) >= 1:
        return f"${value:,.2f}"
    return f"${value:.4f}" if abs(value) >= 0.01 else f"${value:.6f}"


def write_report(report: CostReport, output: Path, *, appendix: str = "") -> list[Path]:
    """Write ``report.md``, ``report.json`` and the charts into ``output``; returns the paths.

    ``appendix`` (Markdown) is added at the end, e.g. a campaign's own section and charts.
    """
    output.mkdir(parents=True, exist_ok=True)
    charts = [
        _savings_chart(report, output / "savings.png"),
        _escalation_chart(report, output / "escalation.png"),
        _answered_chart(report, output / "answered.png"),
    ]
    markdown = output / "report.md"
    markdown.write_text(_markdown(report) + (f"\n{appendix.strip()}\n" if appendix else ""))
    data = output / "report.json"
    data.write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    return [markdown, data, *charts]


def _markdown(report: CostReport) -> str:
    job, ledger, price = report.job, report.ledger, report.price
    lines = [
        f"# Cost report: job `{job.id}` ({job.graph})",
        "",
        f"- status: {job.status}; recorded by: {job.owner}; finished: {_when(job.finished_at)}",
        f"- items: {ledger.items:,} ({ledger.succeeded:,} succeeded, {ledger.failed:,} failed); "
        f"wall time {ledger.wall_s:,.2f} s",
        f"- price: {price.describe()}. Both columns below are priced with it; the job's own "
        f"providers billed {usd(ledger.llm_cost_usd)} (the embedded model and self-hosted "
        "endpoints are free).",
        "",
        "## Runtime vs all-big-model baseline",
        "",
        "| | runtime | all-big-model baseline | saved |",
        "| --- | ---: | ---: | ---: |",
        _row("big-model calls", ledger.llm_calls, ledger.baseline_llm_calls),
        _row("prompt tokens", ledger.llm_prompt_tokens, ledger.baseline_prompt_tokens),
        _row("completion tokens", ledger.llm_completion_tokens, ledger.baseline_completion_tokens),
        _cost_row(f"cost ({price.model})", report.runtime_cost, report.baseline_cost),
        f"| small-model calls (batched) | {sum(ledger.skill_calls.values()):,} | 0 | |",
        f"| small-model items | {sum(ledger.skill_items.values()):,} | 0 | |",
        f"| wall time | {ledger.wall_s:,.2f} s | | |",
        "",
        f"The baseline is *{ledger.baseline_method}*: one big-model call per item for every step "
        "a big model would do in an all-big-model deployment (model-backed skills and steps "
        "whose escalation ends at the big model; rules stay rules; a gated step, which answers "
        "only on some labels of its `when` input, only for the items its gate let in), with the "
        "prompt the cascade sends for that item alone; tokens ≈ characters / "
        f"{CHARS_PER_TOKEN}. The runtime's "
        "tokens are the provider's own counts.",
        "",
        "![big-model calls and cost: runtime vs baseline](savings.png)",
        "",
    ]
    lines += _measured_lines(report)
    lines += ["## Escalation per skill version", ""]
    lines += ["| skill version | items | escalated | rate |", "| --- | ---: | ---: | ---: |"]
    for key, items in sorted(ledger.skill_items.items()):
        escalated = ledger.skill_escalated.get(key, 0)
        rate = _fraction(escalated, items)
        lines.append(f"| {key} | {items:,} | {escalated:,} | {rate:.1%} |")
    lines += ["", "![escalation rate per skill version](escalation.png)", ""]
    lines += ["## Where items were answered", ""]
    sources = [(SOURCES.get(k, k), ledger.answered.get(k, 0)) for k in _source_keys(ledger)]
    lines += ["| " + " | ".join(name for name, _ in sources) + " |"]
    lines += ["| " + " | ".join("---:" for _ in sources) + " |"]
    lines += ["| " + " | ".join(f"{count:,}" for _, count in sources) + " |", ""]
    lines += ["![where items were answered](answered.png)", ""]
    if ledger.answered.get("flagged"):
        lines += [
            f"{ledger.answered['flagged']:,} items were flagged unsure and kept the small model's "
            "answer: this job did not send them to the big model (`--escalate` does, in batches "
            "of the step's `items_per_call`).",
            "",
        ]
    if ledger.answered.get("held_back"):
        lines += [
            f"{ledger.answered['held_back']:,} unsure items kept the small model's answer although "
            "the job escalated: every provider was measured worse than the small model on such "
            "items (`orchestrator providers eval`; `--force-escalation` sends them anyway).",
            "",
        ]
    if report.notes:
        lines += ["## Notes", "", *(f"- {note}" for note in report.notes), ""]
    return "\n".join(lines)


def _measured_lines(report: CostReport) -> list[str]:
    if not report.measurements:
        return []
    price = report.price
    lines = [
        "## The baseline measured on a sample",
        "",
        "Sample items sent to the configured big model the baseline's way, one call at a time; "
        "per call, measured (provider's token counts) vs counted (characters / "
        f"{CHARS_PER_TOKEN}), then extrapolated to the job's baseline calls.",
        "",
        "| sample | provider / model | calls (failed) | prompt tokens / call | completion tokens "
        "/ call | seconds / call | extrapolated to | tokens | cost | time, one call at a time |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for m in report.measurements:
        tokens = m.extrapolated_prompt_tokens + m.extrapolated_completion_tokens
        cost = price.cost_usd(m.extrapolated_prompt_tokens, m.extrapolated_completion_tokens)
        lines.append(
            f"| {m.label} | {m.provider or '-'} / {m.model or '-'} | {m.calls:,} ({m.failed:,}) "
            f"| {m.per_call(m.prompt_tokens):,.1f} (counted {m.per_call(m.counted_prompt_tokens):,.1f}) "
            f"| {m.per_call(m.completion_tokens):,.1f} "
            f"(counted {m.per_call(m.counted_completion_tokens):,.1f}) "
            f"| {m.per_call(m.seconds):,.2f} | {m.scale_to:,} calls | {tokens:,} | {usd(cost)} "
            f"| {_duration(m.extrapolated_seconds)} |"
        )
    measured = report.measured_baseline_cost
    if measured is not None:
        lines += [
            "",
            f"Baseline cost from the measured tokens: **{usd(measured)}** "
            f"(counted: {usd(report.baseline_cost)}).",
        ]
    notes = [f"{m.label}: {m.note}" for m in report.measurements if m.note]
    lines += ["", *(f"- {note}" for note in notes), ""] if notes else [""]
    return lines


def _row(name: str, runtime: int, baseline: int) -> str:
    saved = baseline - runtime
    return f"| {name} | {runtime:,} | {baseline:,} | {saved:,} ({_fraction(saved, baseline):.1%}) |"


def _cost_row(name: str, runtime: float, baseline: float) -> str:
    saved = baseline - runtime
    share = _fraction(saved, baseline)
    return f"| {name} | {usd(runtime)} | {usd(baseline)} | {usd(saved)} ({share:.1%}) |"


def _fraction(part: float, whole: float) -> float:
    return round(part / whole, 4) if whole else 0.0


def _round(value: float | None) -> float | None:
    return round(value, 6) if value is not None else None


def _when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC") if ts else "-"


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:,.1f} h"
    return f"{seconds / 60:,.1f} min" if seconds >= 60 else f"{seconds:,.1f} s"


def _source_keys(ledger: Ledger) -> list[str]:
    extra = [k for k in ledger.answered if k not in SOURCES]
    rare = ("review", "held_back")  # shown only when some item was
    return [k for k in SOURCES if k not in rare or ledger.answered.get(k)] + extra


# --- charts --------------------------------------------------------------------------------------


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


RUNTIME_COLOR, BASELINE_COLOR, MEASURED_COLOR = "#2a9d8f", "#e76f51", "#f4a261"
SOURCE_COLORS = {
    "small_model": "#2a9d8f",
    "flagged": "#e9c46a",
    "chain": "#457b9d",
    "big_model": "#f4a261",
    "degraded": "#e63946",
    "held_back": "#bc6c25",
    "review": "#8d99ae",
}


def _savings_chart(report: CostReport, path: Path) -> Path:
    plt = _pyplot()
    ledger = report.ledger
    fig, (calls_ax, cost_ax) = plt.subplots(1, 2, figsize=(10, 4.2))
    _bars(
        calls_ax,
        ["runtime", "all big model"],
        [ledger.llm_calls, ledger.baseline_llm_calls],
        [RUNTIME_COLOR, BASELINE_COLOR],
        lambda v: f"{v:,.0f}",
    )
    calls_ax.set_title("big-model calls")
    labels, values = (
        ["runtime", "all big model\n(counted)"],
        [report.runtime_cost, report.baseline_cost],
    )
    colors = [RUNTIME_COLOR, BASELINE_COLOR]
    if report.measured_baseline_cost is not None:
        labels.append("all big model\n(measured)")
        values.append(report.measured_baseline_cost)
        colors.append(MEASURED_COLOR)
    _bars(cost_ax, labels, values, colors, usd)
    cost_ax.set_title(f"cost at {report.price.model} prices (USD)")
    fig.suptitle(f"job {report.job.id} ({report.job.graph}): runtime vs all-big-model baseline")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _escalation_chart(report: CostReport, path: Path) -> Path:
    ledger = report.ledger
    keys = sorted(ledger.skill_items)
    rates = [100 * _fraction(ledger.skill_escalated.get(k, 0), ledger.skill_items[k]) for k in keys]
    return bar_chart(
        path,
        "escalation rate per skill version",
        keys,
        rates,
        ylabel="items under the step's threshold (%)",
        fmt=lambda v: f"{v:.1f} %",
        horizontal=True,
    )


def _answered_chart(report: CostReport, path: Path) -> Path:
    ledger = report.ledger
    keys = _source_keys(ledger)
    return bar_chart(
        path,
        "where items were answered",
        [SOURCES.get(k, k) for k in keys],
        [ledger.answered.get(k, 0) for k in keys],
        ylabel="items",
        fmt=lambda v: f"{v:,.0f}",
        horizontal=True,
        colors=[SOURCE_COLORS.get(k, "#8d99ae") for k in keys],
    )


def bar_chart(
    path: Path,
    title: str,
    labels: Sequence[str],
    values: Sequence[float],
    *,
    ylabel: str = "",
    fmt: Any = str,
    horizontal: bool = False,
    colors: Sequence[str] | None = None,
) -> Path:
    """One bar chart as a PNG (for a report's own extra charts)."""
    plt = _pyplot()
    height = max(3.0, 0.45 * len(labels) + 1.5) if horizontal else 4.2
    fig, ax = plt.subplots(figsize=(8, height))
    _bars(ax, list(labels), list(values), list(colors or [RUNTIME_COLOR] * len(labels)), fmt,
          horizontal=horizontal)  # fmt: skip
    if horizontal:
        ax.set_xlabel(ylabel)
        ax.invert_yaxis()
    else:
        ax.set_ylabel(ylabel)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _bars(
    ax: Any,
    labels: list[str],
    values: list[float],
    colors: list[str],
    fmt: Any,
    *,
    horizontal: bool = False,
) -> None:
    if not labels:
        ax.text(0.5, 0.5, "nothing to show", ha="center", va="center", transform=ax.transAxes)
        return
    bars = (ax.barh if horizontal else ax.bar)(labels, values, color=colors)
    ax.bar_label(bars, labels=[fmt(v) for v in values], padding=3)
    ax.margins(x=0.2) if horizontal else ax.margins(y=0.15)
    ax.spines[["top", "right"]].set_visible(False)
