"""The provider bake-off: is escalating a skill's unsure items to a big model worth it?

``orchestrator providers eval SKILL --csv LABELLED.csv [--providers a,b] [--margin 0.05]``:

1. the skill's **small tiers**: the skill, and the skill calibrated after it in the registry (a
   chain calibration, :mod:`orchestrator.learning.chain_calibrate`), if any, with their
   calibrated thresholds (the pair chosen together when there is a chain);
2. the **unsure items**: rows of the CSV under the skill's threshold and, with a chain, under
   the chain tier's threshold too: what a job's cascade sends to the big model. Rows whose label
   the skill does not know are left out and reported (no answer could match them);
3. each provider answers them **the cascade's way**: the cascade's own
   :class:`~orchestrator.graph.cascade.Escalator` (batches of ``items_per_call``, answers fenced to
   the skill's labels), every call through the privacy guard, budgeted and audited;
4. side by side with the small model's answers on the same items: accuracy, failures, calls,
   tokens, cost, latency per call (p50/p95); a verdict per provider
   (:mod:`orchestrator.accounting.escalation_value`: pays / unproven / worse, with the margin
   given) and the **recommendation**: the cheapest provider (cost per item, then accuracy) whose
   verdict is ``pays``;
5. each provider's measurement is stored (:mod:`orchestrator.store.measurements`), keyed to the
   small tiers' artifacts: jobs that escalate read it (a provider measured worse gets none of the
   skill's unsure items) and the dashboard shows it.

Example::

    report = run_bakeoff("calls", "labelled.csv", providers=["openai"], margin=0.05)
    report.recommended, [m.verdict for m in report.providers]
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from orchestrator.accounting.escalation_value import DEFAULT_MARGIN, PairedScore, verdict
from orchestrator.accounting.ledger import Ledger
from orchestrator.config import Settings
from orchestrator.errors import CalibrationError, UnknownProvider
from orchestrator.graph.cascade import Escalator
from orchestrator.graph.spec import Escalation, Step
from orchestrator.graph.tiers_key import versions_fingerprint
from orchestrator.graph.validation import ResolvedStep
from orchestrator.learning.calibrate import label_field_of, predict_labels, same_label
from orchestrator.learning.datasets import CsvTable, non_empty_column, read_csv
from orchestrator.learning.evaluate import batch_from_table
from orchestrator.llm.gateway import Budget, LLMGateway, LLMSettings, Provider
from orchestrator.llm.privacy import guarded_complete
from orchestrator.registry.calibrations import stored_chain_thresholds, stored_threshold
from orchestrator.registry.registry import Registry
from orchestrator.store.measurements import MeasurementStore, ProviderMeasurement

if TYPE_CHECKING:
    from orchestrator.registry.registry import SkillVersion

__all__ = ["BakeOff", "BakeOffOptions", "SmallSide", "recommend", "run_bakeoff", "select_providers"]

#: what the provider is called when none is configured and the embedded model answers
EMBEDDED = "embedded"


@dataclass(frozen=True, kw_only=True)
class BakeOffOptions:
    """How to ask: the cascade's batching, plus what to measure on."""

    #: the accuracy gain over the small model a provider must show to be recommended
    margin: float = DEFAULT_MARGIN
    label_column: str = "label"
    #: the text column of a one-field skill (default: as trained)
    text_column: str | None = None
    #: the skill's threshold instead of its calibrated one
    threshold: float | None = None
    #: at most this many unsure items (a seeded sample), to bound the bill
    limit: int | None = None
    items_per_call: int = 10
    max_concurrency: int = 4
    timeout_s: float = 60.0
    #: keep the measurements in the store (jobs and the dashboard read them)
    store: bool = True


@dataclass(frozen=True)
class SmallSide:
    """The small tiers on the unsure items: their answers are what a held item keeps."""

    tiers: tuple[str, ...]
    thresholds: tuple[float, ...]
    items: int
    correct: int
    #: seconds per call of ``items_per_call`` items, every tier included
    latency_p50_s: float | None
    latency_p95_s: float | None

    @property
    def accuracy(self) -> float:
        return self.correct / self.items if self.items else 0.0


@dataclass(frozen=True)
class BakeOff:
    """A finished bake-off: the small side, each provider's measurement, the recommendation."""

    skill: str
    csv: str
    rows: int
    #: rows under the small tiers' thresholds (labels the skill knows)
    unsure: int
    small: SmallSide
    providers: list[ProviderMeasurement]
    margin: float
    recommended: str | None
    #: labels in the CSV the skill does not know -> rows (left out)
    left_out: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (``--json``)."""
        small = self.small
        return {
            "skill": self.skill,
            "csv": self.csv,
            "rows": self.rows,
            "unsure": self.unsure,
            "measured": small.items,
            "margin": self.margin,
            "recommended": self.recommended,
            "left_out_labels": self.left_out,
            "small": {
                "tiers": list(small.tiers),
                "thresholds": [round(t, 4) for t in small.thresholds],
                "items": small.items,
                "correct": small.correct,
                "accuracy": round(small.accuracy, 4),
                "latency_p50_s": small.latency_p50_s,
                "latency_p95_s": small.latency_p95_s,
            },
            "providers": [m.to_dict() for m in self.providers],
        }


@dataclass(frozen=True)
class _Unsure:
    rows: list[int]
    batch: dict[str, list[Any]]  # the skill's inputs of those rows
    truth: list[str]
    small: list[Any]  # the first tier's answer: what the cascade keeps when nobody is asked
    small_latencies: list[float]
    #: rows unsure before ``limit`` sampled them
    total: int


def run_bakeoff(
    skill: str,
    csv_path: Path | str,
    *,
    providers: Sequence[str] | None = None,
    options: BakeOffOptions | None = None,
    settings: Settings | None = None,
    gateway: LLMGateway | None = None,
) -> BakeOff:
    """Measure ``providers`` (default: every configured one, or the embedded model) against the
    small tiers of ``skill`` on the CSV's unsure items (see the module docstring).

    Raises :class:`UnknownProvider` before any call for a name the configuration lacks,
    :class:`CalibrationError` for a skill with no calibrated threshold (give ``threshold``)."""
    options = options or BakeOffOptions()
    settings = settings or Settings()
    configured = [p.name for p in gateway.providers] if gateway else _configured_names()
    chosen = select_providers(configured, providers)  # before any work: a typo costs nothing
    registry = Registry.from_folder(settings.skills_dir)
    version = registry.resolve(skill)
    tiers, thresholds = small_tiers(registry, version, options.threshold)
    for tier in tiers:
        tier.verify()  # artifacts match their build records
    table = read_csv(csv_path)
    labels = non_empty_column(table, options.label_column, "label")
    unsure, left_out = _unsure_items(tiers, thresholds, table, labels, options)
    answers: list[tuple[str, _Asked]] = []
    with contextlib.ExitStack() as stack:
        if unsure.rows:  # else nothing to measure: no provider is asked, nothing is stored
            gateway = gateway or _gateway(settings, stack)
            step = _step(tiers, thresholds, options)
            answers = asyncio.run(_ask_all(gateway, chosen, step, unsure, settings))
    small = _small_side(tiers, thresholds, unsure)
    key = versions_fingerprint(tiers)
    detail = {
        "tiers": list(small.tiers),
        "thresholds": list(thresholds),
        "csv": Path(csv_path).name,
        "csv_rows": len(labels),
        "unsure": unsure.total,
        "left_out_labels": left_out,
        "small_latency_p50_s": small.latency_p50_s,
        "small_latency_p95_s": small.latency_p95_s,
        "items_per_call": options.items_per_call,
    }
    label_field = label_field_of(version.skill_cls)
    measured = [
        _measurement(version.key, key, provider, found, unsure, label_field, options, detail)
        for provider, found in answers
    ]
    if options.store and measured:
        with MeasurementStore(settings.store_location) as store:
            measured = [store.add(m) for m in measured]
    return BakeOff(
        skill=version.key,
        csv=str(csv_path),
        rows=len(labels),
        unsure=unsure.total,
        small=small,
        providers=measured,
        margin=options.margin,
        recommended=recommend(measured),
        left_out=left_out,
    )


def _small_side(
    tiers: tuple[SkillVersion, ...], thresholds: tuple[float, ...], unsure: _Unsure
) -> SmallSide:
    return SmallSide(
        tiers=tuple(v.key for v in tiers),
        thresholds=thresholds,
        items=len(unsure.rows),
        correct=sum(same_label(s, t) for s, t in zip(unsure.small, unsure.truth, strict=True)),
        latency_p50_s=_percentile(unsure.small_latencies, 50),
        latency_p95_s=_percentile(unsure.small_latencies, 95),
    )


def small_tiers(
    registry: Registry, version: SkillVersion, threshold: float | None = None
) -> tuple[tuple[SkillVersion, ...], tuple[float, ...]]:
    """The skill and, if one was calibrated after it, its chain tier; their thresholds (the pair
    chosen together; ``threshold`` replaces the skill's own)."""
    candidates = [
        registry.resolve(name)
        for name in registry.names()
        if name != version.name and stored_chain_thresholds(registry.resolve(name), version)
    ]
    if candidates:
        chain = min(candidates, key=lambda v: (v.skill_cls.relative_cost, v.name))
        pair = stored_chain_thresholds(chain, version)
        assert pair is not None
        first = pair[0] if threshold is None else threshold
        return (version, chain), (first, pair[1])
    own = threshold if threshold is not None else stored_threshold(version)
    if own is None:
        raise CalibrationError(
            f"skill {version.key} has no calibrated threshold for its current artifacts, so its "
            f"unsure items are unknown: run `orchestrator skills calibrate {version.name}` (or "
            "`orchestrator skills build`), or give --threshold"
        )
    return (version,), (float(own),)


def select_providers(configured: Sequence[str], names: Sequence[str] | None) -> list[str]:
    """``names`` checked against the configured providers (all of them when None)."""
    if not names:
        return list(configured)
    unknown = [n for n in names if n not in configured]
    if unknown:
        raise UnknownProvider(
            f"unknown provider(s) {', '.join(unknown)}: configured are {', '.join(configured)} "
            "(ORCHESTRATOR_LLM_PROVIDERS or ORCHESTRATOR_LLM_PROVIDERS_FILE; with none, the "
            f"embedded model answers as {EMBEDDED!r})"
        )
    return list(dict.fromkeys(names))


def recommend(measurements: Sequence[ProviderMeasurement]) -> str | None:
    """The cheapest provider (cost per item, then the higher accuracy) whose verdict is
    ``pays``; None when none beats the small model by the margin."""
    paying = [m for m in measurements if m.verdict == "pays"]
    if not paying:
        return None
    best = min(
        paying,
        key=lambda m: (m.cost_usd / max(m.score.items, 1), -m.score.provider_accuracy, m.provider),
    )
    return best.provider


def _configured_names() -> list[str]:
    return [p.name for p in LLMSettings().load_providers()] or [EMBEDDED]


def _gateway(settings: Settings, stack: contextlib.ExitStack) -> LLMGateway:
    """The configured providers (or the embedded model), every attempt audited in the store."""
    from orchestrator.llm.audit import AuditLog
    from orchestrator.llm.embedded import default_gateway

    audit = AuditLog(settings.store_location)
    stack.callback(audit.close)
    return default_gateway(stack=stack, audit=audit)


def _unsure_items(
    tiers: tuple[SkillVersion, ...],
    thresholds: tuple[float, ...],
    table: CsvTable,
    labels: list[str],
    options: BakeOffOptions,
) -> tuple[_Unsure, dict[str, int]]:
    """The rows every small tier is unsure of (labels the skill knows), and the unknown labels."""
    first = tiers[0]
    batch = batch_from_table(first, table, options.text_column)
    known = first.skill_cls.output_labels().get(label_field_of(first.skill_cls))
    names = {str(k).strip().lower() for k in known} if known else None
    left_out = Counter(x for x in labels if names is not None and x.strip().lower() not in names)
    predicted, confidence = predict_labels(first.create(), batch)
    rows = [
        i
        for i, label in enumerate(labels)
        if label not in left_out and confidence[i] < thresholds[0]
    ]
    for tier, threshold in zip(tiers[1:], thresholds[1:], strict=True):
        if not rows:
            break
        columns = batch_from_table(tier, table, options.text_column)
        sub = {f: [values[i] for i in rows] for f, values in columns.items()}
        _, tier_confidence = predict_labels(tier.create(), sub)
        rows = [i for i, c in zip(rows, tier_confidence, strict=True) if c < threshold]
    total = len(rows)
    if options.limit is not None and total > options.limit:
        rows = sorted(random.Random(0).sample(rows, options.limit))
    unsure = _Unsure(
        rows=rows,
        batch={f: [values[i] for i in rows] for f, values in batch.items()},
        truth=[labels[i] for i in rows],
        small=[predicted[i] for i in rows],
        small_latencies=_small_latencies(tiers, table, rows, options),
        total=total,
    )
    return unsure, dict(sorted(left_out.items()))


def _small_latencies(
    tiers: tuple[SkillVersion, ...], table: CsvTable, rows: list[int], options: BakeOffOptions
) -> list[float]:
    """Seconds the small tiers take per group of ``items_per_call`` unsure rows (what a call to
    a provider answers), every tier on every row: the small side's latency per call."""
    skills = [(tier.create(), batch_from_table(tier, table, options.text_column)) for tier in tiers]
    latencies: list[float] = []
    for start in range(0, len(rows), options.items_per_call):
        group = rows[start : start + options.items_per_call]
        started = time.perf_counter()
        for skill, columns in skills:
            predict_labels(skill, {f: [values[i] for i in group] for f, values in columns.items()})
        latencies.append(time.perf_counter() - started)
    return latencies


def _step(
    tiers: tuple[SkillVersion, ...], thresholds: tuple[float, ...], options: BakeOffOptions
) -> ResolvedStep:
    """A one-step graph's step for the skill, escalating the way the options say."""
    policy = Escalation(
        threshold=thresholds[0],
        items_per_call=options.items_per_call,
        max_concurrency=options.max_concurrency,
        timeout_s=options.timeout_s,
    )
    spec = Step(id="bakeoff", skill=tiers[0].key, escalation=policy)
    return ResolvedStep(
        spec=spec,
        skill=tiers[0],
        depends_on=(),
        chain=tiers[1:],
        threshold=thresholds[0],
        chain_thresholds=thresholds[1:],
    )


@dataclass
class _Asked:
    provider: Provider
    answers: dict[int, dict[str, Any]]
    ledger: Ledger
    latencies: list[float]


async def _ask_all(
    gateway: LLMGateway, names: list[str], step: ResolvedStep, unsure: _Unsure, settings: Settings
) -> list[tuple[str, _Asked]]:
    """Every chosen provider's answers to the unsure items, one provider after the other (so
    their latencies do not share the machine)."""
    found: list[tuple[str, _Asked]] = []
    try:
        for name in names:
            provider = next(p for p in gateway.providers if p.name == name)
            found.append((name, await _ask(gateway.only([provider]), step, unsure, settings)))
    finally:
        await gateway.aclose()
    return found


async def _ask(
    gateway: LLMGateway, step: ResolvedStep, unsure: _Unsure, settings: Settings
) -> _Asked:
    """One provider's answers, asked through the cascade's escalator and the privacy guard."""
    job_id = f"bakeoff-{uuid.uuid4().hex[:12]}"
    ledger = Ledger(job_id=job_id, graph=f"bakeoff:{step.skill.key}")
    latencies: list[float] = []
    guarded = functools.partial(guarded_complete, gateway, policy=settings.privacy)

    async def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return await guarded(*args, **kwargs)
        finally:  # failed calls too: a time-out is what the cascade would have waited
            latencies.append(time.perf_counter() - started)

    escalator = Escalator(
        gateway=gateway,
        ledger=ledger,
        job_id=job_id,
        budget=Budget(max_calls=settings.llm_max_calls, max_tokens=settings.llm_max_tokens),
        complete=timed,
    )
    answers, _, _ = await escalator.answer(step, unsure.batch, list(range(len(unsure.rows))))
    return _Asked(gateway.providers[0], answers, ledger, latencies)


def _measurement(
    skill: str,
    fingerprint: str,
    name: str,
    asked: _Asked,
    unsure: _Unsure,
    label_field: str,
    options: BakeOffOptions,
    detail: dict[str, Any],
) -> ProviderMeasurement:
    """One provider's answers scored against the small model's on the same items."""
    small_right = [same_label(s, t) for s, t in zip(unsure.small, unsure.truth, strict=True)]
    big_right = [
        i in asked.answers and same_label(asked.answers[i].get(label_field), truth)
        for i, truth in enumerate(unsure.truth)
    ]
    score = PairedScore.of(zip(small_right, big_right, strict=True))
    ledger = asked.ledger
    return ProviderMeasurement(
        skill=skill,
        fingerprint=fingerprint,
        provider=name,
        model=asked.provider.model,
        score=score,
        verdict=verdict(score, options.margin),
        margin=options.margin,
        failures=len(unsure.rows) - len(asked.answers),
        calls=ledger.llm_calls,
        prompt_tokens=ledger.llm_prompt_tokens,
        completion_tokens=ledger.llm_completion_tokens,
        cost_usd=round(ledger.llm_cost_usd, 6),
        latency_p50_s=_percentile(asked.latencies, 50),
        latency_p95_s=_percentile(asked.latencies, 95),
        source=f"bakeoff:{detail['csv']}",
        detail=detail,
    )


def _percentile(values: Sequence[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 4) if values else None
