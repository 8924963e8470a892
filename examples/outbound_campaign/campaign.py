"""An outbound calling campaign, end to end, on real data, with its cost report.

    leads (UCI Bank Marketing) ─► lead_scoring graph, batch job (Ray) ─► leads ranked by score
    the top leads are called ─► each customer turn (CLINC150 call scripts) through the
        outbound_call_reply graph (the turn graph + the FAQ) on the real-time path (TurnRunner: in-process, no queue)
    calls the summary rule picks (:func:`summary_reason`) ─► a post-call summary from the big
        model, at most ``max_summaries`` of them
    ─► leads.jsonl / leads.csv, calls.jsonl, campaign.json, and the cost report (report.md,
        report.json, charts) against the all-big-model baseline

The baseline of the campaign is what it would have cost with the big model doing everything:
scoring every lead, classifying every turn, summarising every call. Leads and turns are counted
by the runtime's ledger (:mod:`orchestrator.graph.baseline`); the summaries of every call are counted
here, with the same estimate. With ``measure_sample`` the baseline is also measured: that many
leads and turns sent to the big model the baseline's way; the real summaries measure themselves.
"""

from __future__ import annotations

import asyncio
import csv
import functools
import json
import random
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from call_scripts import ScriptedTurn, draw_script
from pydantic import BaseModel, Field
from replies import ground_replies, reply_counts, reply_source

from orchestrator.accounting.ledger import Ledger
from orchestrator.config.prices import price_of
from orchestrator.errors import RunError
from orchestrator.graph.baseline import (
    Measurement,
    add_baseline_calls,
    example_answer,
    measure_baseline,
    message_chars,
    tokens_of,
)
from orchestrator.graph.compiler import CompiledGraph
from orchestrator.llm.gateway import Budget, LLMGateway
from orchestrator.llm.privacy import guarded_complete
from orchestrator.runtime.report import bar_chart, build_report, write_report
from orchestrator.runtime.run_record import ItemSample, record_run
from orchestrator.runtime.runtime import Runtime
from orchestrator.runtime.turns import TurnRunner
from orchestrator.store.item import Item
from orchestrator.store.jobs import Store
from skills.data import BANK_CATEGORICAL, BANK_NUMERIC, OOS_INTENT, bank_marketing

__all__ = ["CampaignConfig", "CampaignResult", "Call", "run_campaign", "summary_reason"]

ROOT = Path(__file__).resolve().parents[2]
LEAD_GRAPH = ROOT / "graphs" / "lead_scoring.yaml"
TURN_GRAPH = ROOT / "graphs" / "outbound_call_reply.yaml"
#: next_action's actions that end a call, and the call's outcome then
TERMINAL = {
    "end_call_do_not_call": "opted_out",
    "schedule_callback": "callback",
    "transfer_to_human": "transferred",
    "end_call": "ended",
}
#: summaries run one at a time: a local model serves one request at a time anyway, and the
#: measured seconds per summary then hold no queueing
SUMMARY_CONCURRENCY = 1


@dataclass(frozen=True, kw_only=True)
class CampaignConfig:
    """What to run: how many leads, how many calls, at most how many summaries."""

    leads: int = 500
    calls: int = 100
    max_summaries: int = 8
    #: unsure question turns answered afterwards by the big model, grounded in the FAQ, at most
    max_grounded: int = 20
    #: leads and turns sent to the big model the baseline's way, each (0: count only)
    measure_sample: int = 2
    seed: int = 7
    #: calls in progress at once (their turns batch together on the real-time path)
    concurrency: int = 32
    #: folder written; default reports/campaign-<id>/
    output: Path | None = None


@dataclass
class TurnOutcome:
    """One customer turn and what the small models made of it."""

    slot: str
    utterance: str
    intent: str | None
    confidence: float | None
    opted_out: bool | None
    action: str | None
    escalate: bool
    error: str | None = None
    #: the reply to a question (action answer_question): the FAQ's answer, or the big model's
    reply: str | None = None
    reply_id: str | None = None
    #: kb, llm:<provider> (grounded), unsure (not sent: over max_grounded), failed, None
    reply_by: str | None = None
    reply_candidates: list[str] = field(default_factory=list)


@dataclass
class Call:
    """One call to one lead."""

    lead_id: str
    rank: int
    lead_score: float
    scenario: str
    turns: list[TurnOutcome] = field(default_factory=list)
    #: opted_out, callback, transferred, ended, or completed (the script ran out)
    outcome: str = "completed"
    summary_reason: str | None = None
    #: not_needed, written, deferred (over max_summaries) or failed (the big model failed)
    summary_status: str = "not_needed"
    summary: str | None = None
    follow_up: str | None = None


def summary_reason(call: Call) -> str | None:
    """THE rule: why this call needs a post-call summary from the big model, or None.

    - an opted-out call never does: the do-not-call entry is all that follows;
    - a turn a small model was unsure of (``escalate``), or an out-of-scope turn: a person will
      read the call, the big model writes what happened;
    - a callback or a transfer to a human (an interested lead): whoever picks it up needs the
      context.
    Every other call (ended, script completed) needs none.
    """
    if call.outcome == "opted_out":
        return None
    if any(t.escalate for t in call.turns):
        return "unsure_turn"
    if any(t.intent == OOS_INTENT for t in call.turns):
        return "out_of_scope"
    if call.outcome == "callback":
        return "callback"
    if call.outcome == "transferred":
        return "interested"
    return None


class CallSummary(BaseModel):
    """The big model's post-call note."""

    summary: str = Field(max_length=240, description="two short sentences for the next agent")
    follow_up: Literal["none", "call_back", "human_follow_up", "send_offer"]


SUMMARY_SYSTEM = (
    "You write post-call notes for a bank's outbound sales agents. Use only what the call "
    "shows. Answer with one JSON object."
)
SUMMARY_ANSWER_CHARS = len(json.dumps(example_answer(CallSummary)))


def summary_messages(call: Call) -> list[dict[str, str]]:
    """The chat asking for ``call``'s summary."""
    lines = [
        f"Lead {call.lead_id}: rank {call.rank}, propensity to subscribe {call.lead_score:.2f}.",
        f"Call outcome: {call.outcome}. Notes needed because: {call.summary_reason or 'policy'}.",
        "Customer turns, with what the small models made of them:",
    ]
    for n, turn in enumerate(call.turns, start=1):
        unsure = " (unsure)" if turn.escalate else ""
        lines.append(f'{n}. "{turn.utterance}" -> {turn.intent}{unsure}; agent: {turn.action}')
    lines.append("Write the summary and the follow-up.")
    return [
        {"role": "system", "content": SUMMARY_SYSTEM},
        {"role": "user", "content": "\n".join(lines)},
    ]


@dataclass
class CampaignResult:
    """What a campaign produced (the files are in ``output``)."""

    campaign_id: str
    lead_job_id: str
    output: Path
    leads: list[dict[str, Any]]
    calls: list[Call]
    ledger: Ledger
    figures: dict[str, Any]
    files: list[Path]


async def run_campaign(config: CampaignConfig, runtime: Runtime) -> CampaignResult:
    """Run the campaign on ``runtime`` (its executor scores leads, its gateway summarises)."""
    started, started_at = time.perf_counter(), time.time()
    campaign_id = uuid.uuid4().hex[:16]
    rng = random.Random(config.seed)
    output = config.output or ROOT / "reports" / f"campaign-{campaign_id}"
    leads = _pick_leads(config.leads, rng)

    lead_graph = runtime.compile(LEAD_GRAPH)
    sample = ItemSample(seed=config.seed)
    job = runtime.submit(lead_graph, sample.wrap(Item(i, lead) for i, lead in enumerate(leads)))
    scored = [r async for chunk in job.achunks() for r in chunk]
    lead_job = record_run(
        runtime.settings, job, started_at=started_at, sample=sample, owner="campaign"
    )
    ranked = sorted(
        ((lead, r.outputs) for lead, r in zip(leads, scored, strict=True) if r.outputs),
        key=lambda pair: -pair[1]["subscribe_probability"],
    )

    turn_graph = runtime.compile(TURN_GRAPH)
    turn_ledger = Ledger(job_id=campaign_id, graph=turn_graph.name)
    calls, turn_items = await _place_calls(config, rng, ranked, turn_graph, turn_ledger)

    reply_ledger = Ledger(job_id=campaign_id, graph="grounded_replies")
    unsure = [t for call in calls for t in call.turns if t.reply_by == "unsure"]
    grounded_calls = await ground_replies(
        unsure[: config.max_grounded], runtime, turn_graph, reply_ledger, campaign_id
    )
    replies = reply_counts([t for call in calls for t in call.turns], grounded_calls)

    summary_ledger = Ledger(job_id=campaign_id, graph="post_call_summary")
    for call in calls:
        call.summary_reason = summary_reason(call)
    needed = [c for c in calls if c.summary_reason]  # ranked: the best leads first
    for call in needed[config.max_summaries :]:
        call.summary_status = "deferred"
    gateway: LLMGateway | None = (
        runtime.gateway
        if needed[: config.max_summaries] or config.measure_sample or grounded_calls
        else None
    )
    try:
        seconds, who = await _summarize(
            needed[: config.max_summaries], runtime, summary_ledger, campaign_id
        )
        # the all-big-model campaign summarises every call
        add_baseline_calls(
            summary_ledger,
            calls=len(calls),
            prompt_chars=sum(message_chars(summary_messages(c)) for c in calls),
            completion_chars=len(calls) * SUMMARY_ANSWER_CHARS,
        )
        measurements = await _measure(
            config, runtime, lead_graph, leads, turn_graph, turn_items, campaign_id
        )
    finally:
        if gateway is not None:
            await gateway.aclose()
    measurements.append(_summary_measurement(calls, summary_ledger, seconds, who))

    ledger = Ledger(job_id=campaign_id, graph="outbound_campaign")
    for part in (job.ledger, turn_ledger, reply_ledger, summary_ledger):
        ledger.merge(part)
    ledger.wall_s = time.perf_counter() - started
    with Store(runtime.settings.data_dir / "orchestrator.db") as store:
        record = store.record_finished(
            campaign_id,
            owner="campaign",
            ledger=ledger,
            status="succeeded",
            started_at=started_at,
            finished_at=time.time(),
            chunk_size=runtime.settings.chunk_size,
        )
    price = price_of(runtime.settings.report_price_model)
    report = build_report(record, price, [m for m in measurements if m.calls or m.failed])
    rows = _lead_rows(leads, scored, calls)
    figures = _figures(report.to_dict(), len(leads), calls, needed, lead_job.id, len(turn_items))
    figures["replies"] = replies
    files = _write(output, rows, calls, figures)
    files += write_report(report, output, appendix=_appendix(output, figures))
    return CampaignResult(campaign_id, lead_job.id, output, rows, calls, ledger, figures, files)


def _pick_leads(count: int, rng: random.Random) -> list[dict[str, Any]]:
    rows = bank_marketing()
    picked = sorted(rng.sample(range(len(rows)), min(count, len(rows))))
    fields = (*BANK_NUMERIC, *BANK_CATEGORICAL)
    return [
        {"id": f"lead-{i:05d}", **{f: rows[i][f] for f in fields}, "label": rows[i]["subscribed"]}
        for i in picked
    ]


async def _place_calls(
    config: CampaignConfig,
    rng: random.Random,
    ranked: list[tuple[dict[str, Any], dict[str, Any]]],
    graph: CompiledGraph,
    ledger: Ledger,
) -> tuple[list[Call], list[dict[str, Any]]]:
    """Call the top leads; every turn goes through the real-time path. Returns the calls (in rank
    order) and every turn item sent."""
    turns = TurnRunner(lambda name: graph, ledger=ledger)
    gate = asyncio.Semaphore(config.concurrency)
    sent: list[dict[str, Any]] = []
    plans = []
    for rank, (lead, outputs) in enumerate(ranked[: config.calls], start=1):
        score = float(outputs["subscribe_probability"])
        scenario, script = draw_script(rng, score)  # drawn in rank order: seeded, reproducible
        plans.append((Call(lead["id"], rank, score, scenario), script))

    async def place(call: Call, script: list[ScriptedTurn]) -> None:
        async with gate:
            for n, scripted in enumerate(script, start=1):
                item = {
                    "id": f"{call.lead_id}-t{n}",
                    "utterance": scripted.utterance,
                    "lead_score": call.lead_score,
                }
                sent.append(item)
                result = await turns.invoke(graph.name, item)
                out = result.outputs or {}
                call.turns.append(
                    TurnOutcome(
                        slot=scripted.slot,
                        utterance=scripted.utterance,
                        intent=out.get("intent"),
                        confidence=out.get("intent_confidence"),
                        opted_out=out.get("opted_out"),
                        action=out.get("action"),
                        escalate=result.escalate,
                        error=result.error.message if result.error else None,
                        reply=out.get("reply") or None,
                        reply_id=out.get("reply_id") or None,
                        reply_by=reply_source(out),
                        reply_candidates=list(out.get("reply_candidates") or []),
                    )
                )
                if out.get("action") in TERMINAL:
                    call.outcome = TERMINAL[out["action"]]
                    return

    try:
        await asyncio.gather(*(place(call, script) for call, script in plans))
    finally:
        await turns.close()
    return [call for call, _ in plans], sent


async def _summarize(
    calls: Sequence[Call], runtime: Runtime, ledger: Ledger, campaign_id: str
) -> float:
    """Ask the big model for each call's summary; returns the seconds the answered ones took and
    who answered (provider, model)."""
    who = ("", "")
    if not calls:
        return 0.0, who
    complete = functools.partial(guarded_complete, runtime.gateway, policy=runtime.settings.privacy)
    budget = Budget(max_calls=2 * len(calls))  # a re-ask each at most
    gate = asyncio.Semaphore(SUMMARY_CONCURRENCY)
    took: list[float] = []
    answered_by: list[tuple[str, str]] = []

    async def one(call: Call) -> None:
        async with gate:
            begun = time.perf_counter()
            try:
                answer = await complete(
                    summary_messages(call),
                    schema=CallSummary,
                    budget=budget,
                    purpose="post_call_summary",
                    job_id=campaign_id,
                    ledger=ledger,
                )
            except RunError as exc:
                call.summary_status, call.summary = "failed", f"{exc.code}: {exc}"[:300]
                return
            took.append(time.perf_counter() - begun)
            answered_by.append((answer.provider, answer.model))
            call.summary_status = "written"
            call.summary, call.follow_up = answer.parsed.summary, answer.parsed.follow_up

    await asyncio.gather(*(one(call) for call in calls))
    return sum(took), answered_by[-1] if answered_by else who


async def _measure(
    config: CampaignConfig,
    runtime: Runtime,
    lead_graph: CompiledGraph,
    leads: list[dict[str, Any]],
    turn_graph: CompiledGraph,
    turn_items: list[dict[str, Any]],
    campaign_id: str,
) -> list[Measurement]:
    """The baseline measured on ``measure_sample`` leads and as many turns."""
    n = config.measure_sample
    if n <= 0:
        return []
    complete = functools.partial(guarded_complete, runtime.gateway, policy=runtime.settings.privacy)
    found = []
    for graph, items, label in (
        (lead_graph, leads, "leads"),
        (turn_graph, turn_items, "call turns"),
    ):
        picked = [items[k * len(items) // n] for k in range(n)] if items else []
        found.append(
            await measure_baseline(
                graph,
                picked,
                complete=complete,
                budget=Budget(max_calls=4 * n),
                items_in_job=len(items),
                job_id=campaign_id,
                label=f"{label} ({graph.name})",
            )
        )
    return found


def _summary_measurement(
    calls: list[Call], ledger: Ledger, seconds: float, who: tuple[str, str]
) -> Measurement:
    """The summaries written are real big-model calls: they measure the summary baseline."""
    written = [c for c in calls if c.summary_status == "written"]
    return Measurement(
        label="post-call summaries (the real ones)",
        calls=ledger.llm_calls,
        failed=sum(1 for c in calls if c.summary_status == "failed"),
        prompt_tokens=ledger.llm_prompt_tokens,
        completion_tokens=ledger.llm_completion_tokens,
        seconds=seconds,
        counted_prompt_tokens=sum(tokens_of(message_chars(summary_messages(c))) for c in written),
        counted_completion_tokens=len(written) * tokens_of(SUMMARY_ANSWER_CHARS),
        scale_to=len(calls),
        provider=who[0],
        model=who[1],
        note="every call gets one in the all-big-model baseline",
    )


def _lead_rows(
    leads: list[dict[str, Any]], scored: list[Any], calls: list[Call]
) -> list[dict[str, Any]]:
    by_lead = {call.lead_id: call for call in calls}
    order = sorted(
        (i for i, r in enumerate(scored) if r.outputs),
        key=lambda i: -scored[i].outputs["subscribe_probability"],
    )
    rank = {leads[i]["id"]: n for n, i in enumerate(order, start=1)}
    rows = []
    for lead, result in zip(leads, scored, strict=True):
        call = by_lead.get(lead["id"])
        out = result.outputs or {}
        rows.append(
            {
                "lead_id": lead["id"],
                "rank": rank.get(lead["id"]),
                "subscribe_probability": round(float(out.get("subscribe_probability", 0.0)), 4),
                "will_subscribe": out.get("will_subscribe"),
                "subscribed": lead["label"],
                "called": call is not None,
                "scenario": call.scenario if call else None,
                "outcome": call.outcome if call else None,
                "turns": len(call.turns) if call else 0,
                "unsure_turns": sum(t.escalate for t in call.turns) if call else 0,
                "summary_reason": call.summary_reason if call else None,
                "summary_status": call.summary_status if call else None,
                "follow_up": call.follow_up if call else None,
                "summary": call.summary if call else None,
                "error": result.error.message if result.error else None,
            }
        )
    return sorted(rows, key=lambda row: row["rank"] or len(rows) + 1)


def _figures(
    report: dict[str, Any],
    leads: int,
    calls: list[Call],
    needed: list[Call],
    lead_job: str,
    turns: int,
) -> dict[str, Any]:
    status = Counter(c.summary_status for c in calls)
    return {
        "campaign_id": report["job_id"],
        "lead_scoring_job_id": lead_job,
        "leads": leads,
        "calls": len(calls),
        "turns": turns,
        "outcomes": dict(Counter(c.outcome for c in calls)),
        "summary_reasons": dict(Counter(c.summary_reason for c in needed)),
        "summaries_needed": len(needed),
        "summaries_written": status["written"],
        "summaries_deferred": status["deferred"],
        "summaries_failed": status["failed"],
        "runtime": report["runtime"],
        "baseline": report["baseline"],
        "saved": report["saved"],
        "price": report["price"],
    }


def _write(
    output: Path, rows: list[dict[str, Any]], calls: list[Call], figures: dict[str, Any]
) -> list[Path]:
    output.mkdir(parents=True, exist_ok=True)
    leads_jsonl, leads_csv = output / "leads.jsonl", output / "leads.csv"
    with leads_jsonl.open("w", encoding="utf-8") as out:
        out.writelines(json.dumps(row) + "\n" for row in rows)
    with leads_csv.open("w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else ["lead_id"])
        writer.writeheader()
        writer.writerows(rows)
    calls_jsonl = output / "calls.jsonl"
    with calls_jsonl.open("w", encoding="utf-8") as out:
        out.writelines(json.dumps(asdict(call)) + "\n" for call in calls)
    summary = output / "campaign.json"
    summary.write_text(json.dumps(figures, indent=2) + "\n")
    return [leads_jsonl, leads_csv, calls_jsonl, summary]


def _replies_line(replies: dict[str, Any] | None) -> str:
    """Where the replies to questions came from: the FAQ alone, or the big model grounded in it."""
    if not replies:
        return "- replies to questions: none"
    return (
        f"- replies to {replies['questions']:,} questions: {replies['kb']:,} from the FAQ "
        f"(knowledge base, no big model), {replies['big_model']:,} from the big model grounded "
        f"in the FAQ's top-5 passages ({replies['big_model_unknown']:,} of them 'unknown') in "
        f"{replies['grounded_calls']:,} calls, {replies['not_sent']:,} unsure not sent "
        f"(over --max-grounded), {replies['failed']:,} failed"
    )


def _appendix(output: Path, figures: dict[str, Any]) -> str:
    chart = bar_chart(
        output / "calls_and_summaries.png",
        "calls and post-call summaries",
        [
            "calls made",
            "summaries needed\n(the rule)",
            "summaries written",
            "all big model:\nevery call",
        ],
        [
            figures["calls"],
            figures["summaries_needed"],
            figures["summaries_written"],
            figures["calls"],
        ],
        ylabel="calls",
        fmt=lambda v: f"{v:,.0f}",
        colors=["#264653", "#e9c46a", "#2a9d8f", "#e76f51"],
    )
    outcomes = " | ".join(f"{k}: {v:,}" for k, v in sorted(figures["outcomes"].items()))
    reasons = " | ".join(f"{k}: {v:,}" for k, v in sorted(figures["summary_reasons"].items()))
    return "\n".join(
        [
            "## The campaign",
            "",
            "| leads scored | calls made | turns | calls needing a summary | summaries written | deferred (over --max-summaries) | failed |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
            f"| {figures['leads']:,} | {figures['calls']:,} | {figures['turns']:,} | {figures['summaries_needed']:,} "
            f"| {figures['summaries_written']:,} | {figures['summaries_deferred']:,} | {figures['summaries_failed']:,} |",
            "",
            f"- call outcomes: {outcomes or '-'}",
            f"- why summaries were needed: {reasons or '-'}",
            "- the rule (`summary_reason` in examples/outbound_campaign/campaign.py): a call gets a "
            "summary when a turn was unsure or out of scope, or the lead asked for a callback or "
            "was handed to a human; opted-out calls never do. The all-big-model baseline "
            "summarises every call.",
            f"- lead scoring ran as its own job: `orchestrator report {figures['lead_scoring_job_id']}`",
            _replies_line(figures.get("replies")),
            "",
            f"![calls and post-call summaries]({chart.name})",
            "",
        ]
    )
