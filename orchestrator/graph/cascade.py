"""The cascade: items a skill is unsure of go up to dearer models; the rest never leave it.

For one step's batch, after the step's skill answered:

1. items under the step's ``threshold`` are flagged ``escalate``;
2. each skill of the escalation ``chain`` (cheapest first) answers the items still pending; an
   answer at or above that skill's threshold is kept (the step's number, or with ``calibrated``
   the thresholds calibrated for the chain, :mod:`orchestrator.graph.thresholds`);
3. with a big model configured for the job (:class:`Escalator`), the remaining items go to it in
   batches of ``items_per_call``, at most ``max_concurrency`` calls at once, with a prompt built
   from the skill's contract (description, output fields, their closed label sets) and an answer
   schema that only admits those labels; the answer is validated like any structured output
   (a knowledge base's step asks grounded instead: each item's top-k passages, only their ids or
   "unknown" admitted, :mod:`orchestrator.graph.grounding`);
4. an item the big model fails to answer (error, budget, time-out) keeps the best small answer,
   marked ``degraded`` — a call turn never fails because of the big model;
5. escalation only where it pays: the :class:`Escalator` may hold a step back (``held``: every
   provider was measured worse than the small model on the skill's unsure items, see
   :mod:`orchestrator.accounting.escalation_value`) — its pending items keep the small answer,
   still flagged ``escalate``, with the reason in ``escalation_held`` — or send a step's items
   only to the providers not measured worse (``step_complete``). The runtime decides both from
   the stored measurements (:mod:`orchestrator.runtime.escalation_routes`).

Every item records who answered (``answered_by``: a skill key or ``llm:<provider>``) and the
confidence of that answer (1.0 for the big model: its answer is final).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, create_model

from orchestrator.accounting.ledger import Ledger, StepStats
from orchestrator.errors import RunError
from orchestrator.executors.base import Executor
from orchestrator.executors.batching import predict_sliced
from orchestrator.graph.answer_envelope import answers_envelope
from orchestrator.graph.grounding import grounded_request, with_candidates
from orchestrator.graph.validation import ResolvedStep
from orchestrator.llm.gateway import Budget, Completion, LLMGateway
from orchestrator.llm.privacy import redact_messages
from orchestrator.skill import Batch, Predictions
from orchestrator.store.examples import Example, ExampleStore
from orchestrator.telemetry.logs import get_logger

__all__ = ["CascadeOutcome", "Escalator", "escalation_messages", "redacted_inputs", "run_cascade"]

log = get_logger(__name__)

#: ``complete(messages, schema=..., budget=..., purpose=..., job_id=..., ledger=...)``: the
#: gateway's own method, or a guard around it (PII redaction) with the same signature.
Complete = Callable[..., Awaitable[Completion[Any]]]

SYSTEM_PROMPT = (
    "You answer for a small model that was unsure. For every item, give the answer the skill "
    "describes, choosing only among the allowed values. Answer with one JSON object."
)


@dataclass
class Escalator:
    """A job's line to the big model: gateway (or a guard around it), budget, ledger."""

    gateway: LLMGateway
    ledger: Ledger
    job_id: str | None = None
    budget: Budget = field(default_factory=Budget)
    complete: Complete | None = None
    #: where accepted big-model answers are kept as labelled examples (distillation)
    examples: ExampleStore | None = None
    #: per step id: the call its items go through instead of ``complete`` (a gateway without the
    #: providers measured worse than the small model on the step's unsure items)
    step_complete: Mapping[str, Complete] = field(default_factory=dict)
    #: per step id: why its unsure items stay with the small model (no provider worth asking)
    held: Mapping[str, str] = field(default_factory=dict)

    def learn(
        self,
        step: ResolvedStep,
        batch: Batch,
        answers: dict[int, dict[str, Any]],
        provider: str,
        confidence: np.ndarray,
        known: Sequence[Any] | None = None,
    ) -> None:
        """Keep the big model's accepted answers as training examples for the step's skill.

        The inputs are kept redacted, whatever the provider saw (a local one gets the text as
        is): an example outlives the job, so it holds placeholders, never a customer's values,
        and the small models learn on placeholders. ``known``: per row, the customer's values
        the guard must hide too."""
        if self.examples is None or not answers:
            return
        fields = list(step.skill.skill_cls.Input.model_fields)
        self.examples.add(
            Example(
                skill=step.skill.key,
                inputs=redacted_inputs(
                    {f: batch[f][i] for f in fields if f in batch},
                    known[i] if known is not None else None,
                ),
                outputs=outputs,
                source=f"llm:{provider}",
                small_confidence=float(confidence[i]),
                job_id=self.job_id,
            )
            for i, outputs in answers.items()
        )

    async def answer(
        self, step: ResolvedStep, batch: Batch, rows: list[int], known: Sequence[Any] | None = None
    ) -> tuple[dict[int, dict[str, Any]], str, str]:
        """Big-model answers for ``rows`` of ``batch`` (row -> output values) and who gave them
        (provider, model).

        Rows missing from the result could not be answered (their call failed or timed out).
        """
        policy = step.spec.escalation
        assert policy is not None
        groups = [
            rows[i : i + policy.items_per_call] for i in range(0, len(rows), policy.items_per_call)
        ]
        gate = asyncio.Semaphore(policy.max_concurrency)

        async def one(group: list[int]) -> tuple[dict[int, dict[str, Any]], str, str]:
            async with gate:
                try:
                    return await asyncio.wait_for(
                        self._ask(step, batch, group, known), timeout=policy.timeout_s
                    )
                except (RunError, TimeoutError) as exc:
                    code = getattr(exc, "code", "timeout")
                    log.warning("escalation_degraded", step=step.id, items=len(group), error=code)
                    return {}, "", ""

        answers: dict[int, dict[str, Any]] = {}
        provider = model = ""
        for found, who, which in await asyncio.gather(*(one(g) for g in groups)):
            answers.update(found)
            provider, model = (who, which) if who else (provider, model)
        return answers, provider, model

    async def _ask(
        self, step: ResolvedStep, batch: Batch, group: list[int], known: Sequence[Any] | None
    ) -> tuple[dict[int, dict[str, Any]], str, str]:
        skill = step.skill.skill_cls
        inputs = list(skill.Input.model_fields)
        items = [{"index": i, **{f: batch[f][i] for f in inputs if f in batch}} for i in group]
        messages = escalation_messages(step, items)
        grounded = grounded_request(step, batch, group)  # a knowledge base: its passages, cited
        if grounded is not None:
            messages = grounded.messages
        extra: dict[str, Any] = {}
        complete = self.step_complete.get(step.id) or self.complete or self.gateway.complete
        if known is not None and complete != self.gateway.complete:  # the guard takes them
            extra["known"] = [known[i] for i in group]
        answer = await complete(
            messages,
            **extra,
            schema=answer_schema(step, group) if grounded is None else grounded.schema,
            budget=self.budget,
            purpose=f"escalate:{step.skill.key}",
            job_id=self.job_id,
            ledger=self.ledger,
        )
        if grounded is not None:
            return grounded.answers(answer.parsed), answer.provider, answer.model
        outputs = list(skill.Output.model_fields)
        answers = answer.parsed.model_dump(by_alias=True)["answers"]
        found = {int(i): {f: a[f] for f in outputs} for i, a in answers.items()}
        return found, answer.provider, answer.model


@dataclass
class CascadeOutcome:
    """One step's final per-item answers (live rows only), after the cascade."""

    outputs: dict[str, list[Any]]
    confidence: np.ndarray
    escalate: np.ndarray
    answered_by: list[str]
    degraded: list[bool]
    #: per chain skill that ran: the items it saw, its calls, the items it left unsure, its time
    chain_stats: list[StepStats] = field(default_factory=list)
    #: per row: why an unsure item was not escalated although the job escalates (None: it was,
    #: or it did not need to be); e.g. ``provider_measured_worse``
    escalation_held: list[str | None] = field(default_factory=list)
    #: per row a provider answered: ``{"provider", "model", "small"}``, ``small`` being the answer
    #: it replaced (what the item keeps when nobody is asked), so a reviewer's answer can score
    #: the provider against the small tiers (:mod:`orchestrator.review.desk`); None elsewhere
    escalation: list[dict[str, Any] | None] = field(default_factory=list)


async def run_cascade(
    step: ResolvedStep,
    batch: Batch,
    preds: Predictions,
    executor: Executor,
    escalator: Escalator | None,
    *,
    known: Sequence[Any] | None = None,
) -> CascadeOutcome:
    """Apply the step's escalation policy to one batch the step's skill has answered.

    ``known``: per row, what the item knows about its customer (``KnownValues``), so the PII
    guard redacts those values from what goes to the big model."""
    size = len(preds)
    failed = set() if preds.errors is None else {i for i, e in enumerate(preds.errors) if e}
    outputs = {f: _as_list(col) for f, col in preds.outputs.items()}
    confidence = np.asarray(preds.confidence, dtype=np.float64).copy()
    threshold = step.threshold
    escalate = confidence < threshold
    for i in failed:
        escalate[i] = False
    outcome = CascadeOutcome(outputs, confidence, escalate, [step.skill.key] * size, [False] * size)
    outcome.escalation_held = [None] * size
    outcome.escalation = [None] * size
    pending = [i for i in range(size) if escalate[i]]
    policy = step.spec.escalation
    if not pending or policy is None:
        return outcome
    tiers = step.chain_thresholds or (threshold,) * len(step.chain)
    for version, tier_threshold in zip(step.chain, tiers, strict=True):
        started = time.perf_counter()
        seen = len(pending)
        pending, calls = await _try_skill(
            step, version, batch, pending, tier_threshold, executor, outcome
        )
        outcome.chain_stats.append(
            StepStats(
                step.id, version.key, seen, calls, len(pending), time.perf_counter() - started
            )
        )
        if not pending:
            return outcome
    if escalator is None or not policy.to_llm:
        return outcome  # flagged only: no big model for this job
    reason = escalator.held.get(step.id)
    if reason is not None:  # measured not to pay: the small answers stand, flagged, not sent
        for i in pending:
            outcome.escalation_held[i] = reason
        return outcome
    grounding = with_candidates(step, batch, outcome.outputs)  # unchanged unless a KB's step
    answers, provider, model = await escalator.answer(step, grounding, pending, known)
    escalator.learn(step, batch, answers, provider, outcome.confidence, known)
    for i in pending:
        if i in answers:
            small = {f: outcome.outputs[f][i] for f in answers[i]}
            outcome.escalation[i] = {"provider": provider, "model": model, "small": small}
            for f, value in answers[i].items():
                outcome.outputs[f][i] = value
            outcome.confidence[i] = 1.0
            outcome.answered_by[i] = f"llm:{provider}"
        else:
            outcome.degraded[i] = True
    return outcome


def redacted_inputs(inputs: dict[str, Any], known: Any = None) -> dict[str, Any]:
    """``inputs`` with every text value through the PII guard (one placeholder per value across
    the fields); other values as they are. What examples and review tickets keep at rest."""
    texts = {name: value for name, value in inputs.items() if isinstance(value, str) and value}
    if not texts:
        return inputs
    messages = [{"role": "user", "content": value} for value in texts.values()]
    redacted, _ = redact_messages(messages, known)
    return {**inputs, **{name: m["content"] for name, m in zip(texts, redacted, strict=True)}}


async def _try_skill(
    step: ResolvedStep,
    version: Any,
    batch: Batch,
    pending: list[int],
    threshold: float,
    executor: Executor,
    outcome: CascadeOutcome,
) -> tuple[list[int], int]:
    """Let one chain skill answer the pending rows (in slices of its ``max_batch``); returns the
    rows still under the threshold, and the calls it took."""
    fields = list(version.skill_cls.Input.model_fields)
    sub = {f: [batch[f][i] for i in pending] for f in fields if f in batch}
    where = f"step {step.id!r}, chain {version.key}"
    preds, calls = await predict_sliced(executor, version, sub, len(pending), where)
    confidence = np.asarray(preds.confidence, dtype=np.float64)
    still: list[int] = []
    for j, i in enumerate(pending):
        if (preds.errors is not None and preds.errors[j]) or confidence[j] < threshold:
            still.append(i)
            continue
        for f in outcome.outputs:
            outcome.outputs[f][i] = _as_list(preds.outputs[f])[j]
        outcome.confidence[i] = confidence[j]
        outcome.answered_by[i] = version.key
        outcome.escalate[i] = False  # settled by a small model: it never reaches the big one
    return still, calls


def answer_schema(step: ResolvedStep, group: Sequence[int]) -> type[BaseModel]:
    """``{"answers": {"<index>": {<outputs>}, ...}}``: every item's index a required key (so no
    item can be skipped or answered twice, as a list of answers allowed), labels enumerated."""
    skill = step.skill.skill_cls
    labels = skill.output_labels()
    fields: dict[str, Any] = {}
    for name, info in skill.Output.model_fields.items():
        annotation: Any = (
            Literal.__getitem__(tuple(labels[name])) if name in labels else info.annotation
        )
        fields[name] = (annotation, ...)
    item = create_model(f"{skill.name}_answer", __config__=ConfigDict(extra="forbid"), **fields)
    keys: dict[str, Any] = {f"item_{i}": (item, Field(alias=str(i))) for i in group}
    return answers_envelope(f"{skill.name}_answers", keys)


def escalation_messages(step: ResolvedStep, items: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The chat the cascade sends for ``items`` (each ``{"index": row, <skill inputs>}``); the
    all-big-model baseline counts the same chat per item (:mod:`orchestrator.graph.baseline`)."""
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": _prompt(step, items)},
    ]


def _prompt(step: ResolvedStep, items: list[dict[str, Any]]) -> str:
    skill = step.skill.skill_cls
    labels = skill.output_labels()
    lines = [f"Skill: {skill.name}", f"What it does: {skill.description}", "Give for each item:"]
    for name, info in skill.Output.model_fields.items():
        allowed = f" — one of: {', '.join(labels[name])}" if name in labels else ""
        lines.append(f"- {name} ({getattr(info.annotation, '__name__', info.annotation)}){allowed}")
    lines.append('Answer {"answers": {"<item index>": {...}, ...}} with one entry per item.')
    lines.append(f"Items:\n{json.dumps(items, ensure_ascii=False)}")
    return "\n".join(lines)


def _as_list(column: Any) -> list[Any]:
    return list(column.tolist()) if hasattr(column, "tolist") else list(column)
