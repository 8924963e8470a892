"""The key a provider measurement is stored under: a step's small tiers and their artifacts.

A bake-off (``orchestrator providers eval``) and a reviewer's answer
(:mod:`orchestrator.review.desk`) both score a provider against a step's small tiers: the step's
skill, then its escalation chain. They key what they measured with :func:`step_fingerprint`, and
a job reads measurements under the same key (:mod:`orchestrator.runtime.escalation_routes`), so
a retrained skill, or another chain, reads as unmeasured instead of reusing an old verdict.
"""

from __future__ import annotations

from collections.abc import Sequence

from orchestrator.graph.validation import ResolvedStep
from orchestrator.registry.build_record import artifacts_fingerprint
from orchestrator.registry.registry import SkillVersion
from orchestrator.store.measurements import tiers_fingerprint

__all__ = ["step_fingerprint", "versions_fingerprint"]


def versions_fingerprint(tiers: Sequence[SkillVersion]) -> str:
    """The measurement key of small tiers, in cascade order, with their artifacts."""
    return tiers_fingerprint([(v.key, artifacts_fingerprint(v.build)) for v in tiers])


def step_fingerprint(step: ResolvedStep) -> str:
    """The measurement key of a step's small tiers: its skill, then its chain."""
    return versions_fingerprint((step.skill, *step.chain))
