"""Every turn to the big model vs the turn graph's cascade, on the same CLINC150 turns.

Both paths ask the same big model (the gateway passed in: the embedded SmolLM2-135M unless
``ORCHESTRATOR_LLM_PROVIDERS`` names another) the same way, through the cascade's
:class:`~orchestrator.graph.cascade.Escalator` (batches of ``items_per_call`` turns, an answer schema that
admits only turn_intent's labels, the privacy guard as in a job):

- **all to the big model**: every turn is escalated, no small model runs;
- **cascade**: ``Runtime.run`` of the outbound-call turn graph with escalation on; turn_intent
  answers every turn, turn_intent_minilm the turns it is unsure of, and only what both are
  unsure of goes to the big model (thresholds calibrated together on val).

The embedded model serves one request at a time, so both paths send one call at a time
(``max_concurrency=1``; more would only queue inside the server and hit the per-call time-out).
``bench/run_all.py`` calls :func:`measure`; this module has no CLI of its own.
"""

from __future__ import annotations

import asyncio
import functools
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cascade import turn_graph

from orchestrator import LocalExecutor, Registry, Runtime
from orchestrator.accounting.ledger import Ledger
from orchestrator.config import Settings
from orchestrator.graph.cascade import Escalator
from orchestrator.graph.compiler import compile_graph
from orchestrator.llm.audit import AuditLog
from orchestrator.llm.gateway import Budget, LLMGateway
from orchestrator.llm.privacy import guarded_complete
from skills.data import clinc150_eval

#: one big-model call at a time, and room for a slow answer from a tiny CPU model
ESCALATION = {"max_concurrency": 1, "timeout_s": 180.0}


def sample_turns(n: int, seed: int) -> tuple[list[tuple[str, str]], tuple[str, str]]:
    """``n`` (utterance, label) pairs drawn from CLINC150 test + oos_test, and one more turn
    outside them for the warm-up call. CLINC150 lists its turns grouped by intent; a seeded draw
    mixes intents and out-of-scope turns as traffic would."""
    turns = clinc150_eval("test")
    drawn = random.Random(seed).sample(turns, n + 1)
    return drawn[:n], drawn[n]


def _escalator(gateway: LLMGateway, settings: Settings, ledger: Ledger) -> Escalator:
    """An escalator built the way a job builds its own (budget, privacy guard)."""
    return Escalator(
        gateway=gateway,
        ledger=ledger,
        job_id=ledger.job_id,
        budget=Budget(max_calls=settings.llm_max_calls, max_tokens=settings.llm_max_tokens),
        complete=functools.partial(guarded_complete, gateway, policy=settings.privacy),
    )


def ask_all(
    gateway: LLMGateway, step: Any, texts: list[str], settings: Settings, job_id: str
) -> tuple[dict[int, dict[str, Any]], Ledger, float]:
    """Every text to the big model through ``step``'s escalation policy: answers, ledger, wall s."""
    ledger = Ledger(job_id=job_id, graph="turn_intent")
    escalator = _escalator(gateway, settings, ledger)

    async def answer() -> dict[int, dict[str, Any]]:
        try:
            found, _, _ = await escalator.answer(step, {"text": texts}, list(range(len(texts))))
            return found
        finally:
            await gateway.aclose()  # the HTTP clients this event loop opened

    started = time.perf_counter()
    answers = asyncio.run(answer())
    return answers, ledger, time.perf_counter() - started


def big_model_round(
    gateway: LLMGateway,
    step: Any,
    turns: list[tuple[str, str]],
    settings: Settings,
    audit: AuditLog | None,
    job_id: str,
) -> dict[str, float]:
    """Path (a) on one slice of turns: every turn answered by the big model. Summable counts."""
    answers, ledger, wall = ask_all(gateway, step, [t for t, _ in turns], settings, job_id)
    correct = sum(answers.get(i, {}).get("intent") == label for i, (_, label) in enumerate(turns))
    return {
        "items": len(turns),
        "to_big_model": len(turns),
        "answered_by_big_model": len(answers),
        "correct": correct,
        **_ledger_counts(ledger, wall),
        **requests_sent(audit, job_id),
    }


def cascade_round(
    runtime: Runtime, spec: Any, turns: list[tuple[str, str]], audit: AuditLog | None
) -> dict[str, float]:
    """Path (b) on one slice of turns: the turn graph with escalation on. Summable counts."""
    items = [{"id": i, "utterance": t, "label": lab} for i, (t, lab) in enumerate(turns)]
    started = time.perf_counter()
    result = runtime.run(spec, items)
    wall = time.perf_counter() - started
    outputs = [r.outputs or {} for r in result.results]
    correct = [out.get("intent") == label for out, (_, label) in zip(outputs, turns, strict=True)]
    kept = [not r.escalate for r in result.results]
    return {
        "items": len(items),
        "to_big_model": result.ledger.escalated,
        "answered_by_big_model": sum(
            str(out.get("answered_by", "")).startswith("llm:") for out in outputs
        ),
        "correct": sum(correct),
        "kept_by_small_model": sum(kept),
        "kept_correct": sum(c and k for c, k in zip(correct, kept, strict=True)),
        "degraded": result.ledger.degraded,
        **_ledger_counts(result.ledger, wall),
        **requests_sent(audit, result.ledger.job_id),
    }


def requests_sent(audit: AuditLog | None, job_id: str) -> dict[str, float]:
    """HTTP requests to the big model (the audit has one row per attempt, answered or not): the
    ledger counts answered calls only, so a call that timed out shows here and not there."""
    if audit is None:
        return {}
    rows = audit.records(job_id=job_id)
    return {"requests": len(rows), "requests_failed": sum(r.outcome != "ok" for r in rows)}


def _ledger_counts(ledger: Ledger, wall: float) -> dict[str, float]:
    return {
        "llm_calls": ledger.llm_calls,
        "prompt_tokens": ledger.llm_prompt_tokens,
        "completion_tokens": ledger.llm_completion_tokens,
        "wall_s": wall,
    }


def _add(total: dict[str, float], part: dict[str, float]) -> None:
    for key, value in part.items():
        total[key] = total.get(key, 0) + value


def summarise(path: str, counts: dict[str, float]) -> dict[str, Any]:
    """One path's row: its summed counts, and the rates and accuracies derived from them."""
    row: dict[str, Any] = {"path": path, **{k: v for k, v in counts.items() if k != "correct"}}
    row["tokens"] = counts["prompt_tokens"] + counts["completion_tokens"]
    row["wall_s"] = round(counts["wall_s"], 2)
    row["items_per_s"] = round(counts["items"] / counts["wall_s"], 3)
    row["accuracy"] = round(counts["correct"] / counts["items"], 4)
    if "kept_correct" in counts:
        kept = row.pop("kept_correct")
        total = counts["kept_by_small_model"]
        row["kept_accuracy"] = round(kept / total, 4) if total else None
    return row


def measure(
    registry: Registry,
    gateway: LLMGateway,
    n: int,
    items_per_call: int,
    seed: int,
    audit: AuditLog | None = None,
    round_size: int = 50,
) -> dict[str, Any]:
    """Both paths over the same ``n`` turns, and their ratios.

    The turns are cut into rounds of ``round_size``; each round runs both paths on its turns, in
    alternating order (a-b, b-a, ...), so a burst of load from other users hits both paths alike.
    One untimed warm-up first. ``audit`` (the gateway's audit log) adds the HTTP requests.
    """
    spec = turn_graph(None, items_per_call, **ESCALATION)  # the calibrated thresholds
    step = next(s for s in compile_graph(spec, registry).resolved.steps if s.id == "intent")
    thresholds = [step.threshold, *step.chain_thresholds]
    turns, spare = sample_turns(n, seed)
    settings = Settings(escalate=True, executor="local")
    with tempfile.TemporaryDirectory() as tmp:
        runtime = Runtime(
            registry=registry,
            executor=LocalExecutor(),
            gateway=gateway,
            settings=Settings(escalate=True, executor="local", data_dir=Path(tmp)),
        )
        with runtime:
            # Untimed: the skills load, the model's first call warms its caches.
            runtime.run(spec, [{"id": 0, "utterance": spare[0]}])
            ask_all(gateway, step, [spare[0]], settings, "warm-up")
            paths = {
                "a": functools.partial(
                    big_model_round, gateway, step, settings=settings, audit=audit
                ),
                "b": functools.partial(cascade_round, runtime, spec, audit=audit),
            }
            big, small, rounds = run_rounds(paths, turns, round_size)
    return _report(n, seed, thresholds, items_per_call, gateway, big, small, rounds)


def run_rounds(
    paths: dict[str, Callable[..., dict[str, float]]],
    turns: list[tuple[str, str]],
    round_size: int,
) -> tuple[dict[str, float], dict[str, float], list[dict[str, Any]]]:
    """Both paths (``a``: every turn, ``b``: cascade) round by round in alternating order:
    their summed counts and one line per round."""
    big: dict[str, float] = {}
    small: dict[str, float] = {}
    rounds = []
    for k, start in enumerate(range(0, len(turns), round_size)):
        part = turns[start : start + round_size]
        order = "ab" if k % 2 == 0 else "ba"
        done = {}
        for name in order:
            extra = {"job_id": f"all-big-model-{k}"} if name == "a" else {}
            done[name] = paths[name](turns=part, **extra)
        _add(big, done["a"])
        _add(small, done["b"])
        rounds.append(_round_row(k, order, part, done))
    return big, small, rounds


def _round_row(
    k: int, order: str, part: list[Any], done: dict[str, dict[str, float]]
) -> dict[str, Any]:
    return {
        "round": k,
        "order": "every turn first" if order == "ab" else "cascade first",
        "items": len(part),
        "all_big_model_wall_s": round(done["a"]["wall_s"], 2),
        "cascade_wall_s": round(done["b"]["wall_s"], 2),
    }


def _report(
    n: int,
    seed: int,
    thresholds: list[float],
    items_per_call: int,
    gateway: LLMGateway,
    big: dict[str, float],
    small: dict[str, float],
    rounds: list[dict[str, Any]],
) -> dict[str, Any]:
    rows = [
        summarise("every turn to the big model", big),
        summarise("turn graph with the cascade", small),
    ]
    provider = gateway.providers[0]
    return {
        "items": n,
        "seed": seed,
        "thresholds": [round(t, 4) for t in thresholds],
        "items_per_call": items_per_call,
        "provider": f"{provider.name} ({provider.model})",
        "rows": rows,
        "rounds": rounds,
        "ratio": {
            key: round(rows[0][key] / rows[1][key], 2) if rows[1][key] else None
            for key in ("llm_calls", "tokens", "wall_s")
        },
    }
