"""A step's escalation thresholds as numbers: its own, and one per skill of its chain.

A number in the graph applies to every tier. ``calibrated`` looks the numbers up in the skills'
build records (``artifacts/build.json``, computed by ``orchestrator skills build``): when the
chain's first skill was calibrated *after* the step's skill (the pair chosen together,
:mod:`orchestrator.learning.chain_calibrate`), the step uses that pair; otherwise each skill uses its own
calibrated threshold. A skill with no calibration for its current artifacts is an
issue naming the step, found at compile time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from orchestrator.graph.spec import Step
    from orchestrator.registry.registry import SkillVersion

__all__ = ["step_thresholds"]


def step_thresholds(
    step: Step, skill: SkillVersion | None, chain: tuple[SkillVersion, ...]
) -> tuple[float, tuple[float, ...], list[str]]:
    """(the step's threshold, one threshold per chain skill, problems found)."""
    if step.escalation is None or skill is None:
        return 0.0, (), []
    if step.escalation.threshold != "calibrated":
        threshold = float(step.escalation.threshold)
        return threshold, (threshold,) * len(chain), []
    from orchestrator.registry.calibrations import stored_chain_thresholds, stored_threshold

    problems: list[str] = []

    def own(version: SkillVersion, role: str) -> float:
        found = stored_threshold(version)
        if found is None:
            problems.append(
                f"threshold 'calibrated' but {role}{version.key} has no calibration for its "
                f"current artifacts; run `orchestrator skills build` (it calibrates what the "
                f"manifests and graphs/ ask for), `orchestrator skills calibrate {version.name}`, "
                "or give a number"
            )
            return 0.0
        return found

    pair = stored_chain_thresholds(chain[0], skill) if chain else None
    if pair is not None:
        rest = tuple(own(v, "escalation chain skill ") for v in chain[1:])
        return pair[0], (pair[1], *rest), problems
    threshold = own(skill, "")
    return threshold, tuple(own(v, "escalation chain skill ") for v in chain), problems
