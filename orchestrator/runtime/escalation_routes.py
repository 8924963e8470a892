"""Escalate only where it pays: which providers each escalating step may send its items to.

Before a job escalates, the runtime reads the stored provider measurements
(:mod:`orchestrator.store.measurements`, written by ``orchestrator providers eval``) for each
step's small tiers (its skill and chain, keyed by their artifacts) and, per step:

- providers measured **worse** than the small model on its unsure items
  (:mod:`orchestrator.accounting.escalation_value`) are taken out of the step's route;
- when that leaves none, the step is **held**: its unsure items keep the small answer, flagged
  ``escalate: true``, with ``escalation_held: provider_measured_worse`` (counted as
  ``held_back`` in the ledger's ``answered``);
- a provider with no measurement (or one measured on another model) stays in, as before, and the
  job says so in one warning line.

A provider's value comes from the newest bake-off and from reviewers' answers: a held item the
provider answered, once a person answers it, scores the provider against the small tiers
(:meth:`orchestrator.review.queue.ReviewQueue.measured`); both are pooled
(:func:`orchestrator.store.measurements.pooled`).

``force`` (the run's ``--force-escalation``, or the step's ``escalation.force``) skips the
measurements for that step: everything goes as configured.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from orchestrator.accounting.escalation_value import HELD_REASON
from orchestrator.graph.tiers_key import step_fingerprint
from orchestrator.store.measurements import MeasurementStore, ProviderMeasurement, pooled

if TYPE_CHECKING:
    from orchestrator.graph.validation import ResolvedGraph
    from orchestrator.llm.gateway import Provider
    from orchestrator.review.queue import ReviewQueue

__all__ = ["EscalationRoutes", "StepRoute", "escalation_routes"]


@dataclass(frozen=True)
class StepRoute:
    """Where one escalating step's unsure items may go."""

    step: str
    skill: str
    #: providers allowed, in the gateway's order (empty: held)
    allowed: tuple[str, ...]
    #: provider -> verdict of its newest measurement for these tiers (pays/unproven/worse)
    verdicts: dict[str, str] = field(default_factory=dict)
    #: providers allowed without a measurement of their model on these tiers
    unmeasured: tuple[str, ...] = ()
    forced: bool = False

    @property
    def held(self) -> str | None:
        """Why nothing is sent (every provider measured worse), or None."""
        return HELD_REASON if not self.allowed else None


@dataclass(frozen=True)
class EscalationRoutes:
    """Every escalating step's route, for one job."""

    steps: dict[str, StepRoute]
    providers: tuple[str, ...]

    @property
    def held(self) -> dict[str, str]:
        """Step id -> reason, for the steps whose items are not sent at all."""
        return {sid: route.held for sid, route in self.steps.items() if route.held is not None}

    @property
    def restricted(self) -> dict[str, tuple[str, ...]]:
        """Step id -> allowed providers, for steps that lose some providers (not all)."""
        return {
            sid: route.allowed
            for sid, route in self.steps.items()
            if route.allowed and len(route.allowed) < len(self.providers)
        }

    def warning(self) -> str | None:
        """One line when some step escalates to a provider nobody measured, with how to measure."""
        unmeasured = [r for r in self.steps.values() if r.unmeasured and not r.forced]
        if not unmeasured:
            return None
        what = ", ".join(f"{r.skill} -> {'/'.join(r.unmeasured)}" for r in unmeasured)
        first = unmeasured[0].skill.split("@")[0]
        return (
            f"escalating without a measurement ({what}): nothing shows the big model beats the "
            f"small one on its unsure items; measure: `orchestrator providers eval {first} "
            "--csv LABELLED.csv`"
        )


def escalation_routes(
    graph: ResolvedGraph,
    providers: Sequence[Provider],
    store: MeasurementStore | None,
    *,
    force: bool = False,
    reviews: ReviewQueue | None = None,
) -> EscalationRoutes:
    """The route of every step that escalates to the big model (see the module docstring);
    ``reviews``: the queue whose answered tickets measure providers too."""
    names = tuple(p.name for p in providers)
    steps: dict[str, StepRoute] = {}
    for step in graph.steps:
        policy = step.spec.escalation
        if policy is None or not policy.to_llm:
            continue
        forced = force or policy.force
        current: dict[str, ProviderMeasurement] = {}
        if not forced:
            current = _measured(step.skill.key, step_fingerprint(step), providers, store, reviews)
        steps[step.id] = StepRoute(
            step=step.id,
            skill=step.skill.key,
            allowed=tuple(n for n in names if n not in current or current[n].verdict != "worse"),
            verdicts={n: m.verdict for n, m in current.items()},
            unmeasured=tuple(n for n in names if n not in current),
            forced=forced,
        )
    return EscalationRoutes(steps, names)


def _measured(
    skill: str,
    fingerprint: str,
    providers: Sequence[Provider],
    store: MeasurementStore | None,
    reviews: ReviewQueue | None,
) -> dict[str, ProviderMeasurement]:
    """Each provider's value on these tiers, for the model it points at now (a measurement of
    another model does not count: that provider is unmeasured)."""
    found = store.latest(skill, fingerprint) if store is not None else {}
    reviewed = reviews.measured(skill, fingerprint) if reviews is not None else []
    current: dict[str, ProviderMeasurement] = {}
    for p in providers:
        bakeoff = found.get(p.name)
        answers = [m for m in reviewed if m.provider == p.name and m.model == p.model]
        value = pooled(
            bakeoff if bakeoff is not None and bakeoff.model == p.model else None,
            answers[0] if answers else None,
        )
        if value is not None:
            current[p.name] = value
    return current
