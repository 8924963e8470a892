"""Calibration as part of the build: every threshold a graph asks for is recomputed when stale.

After ``orchestrator skills build`` has brought the artifacts up to date, it calibrates:

- every skill whose manifest declares a ``calibration`` block (its validation split, target and
  traffic mix), alone;
- every escalation chain a graph under ``graphs/`` uses with ``threshold: calibrated``: the pair
  (step skill, first chain skill) chosen together, stored with the chain skill;
- every other skill such a step names (alone), when it has a calibration block.

A calibration is kept while it was measured on the current artifacts (both skills' for a pair)
and, when the build made it, with the settings the manifest declares now. A calibration made by
hand (``orchestrator skills calibrate``) is kept until the artifacts change. One that is stale
or missing is recomputed from the new artifacts and the validation split, never dropped: a graph
step whose skill cannot be calibrated (no calibration block, no stored calibration) stops the
build with an error naming the graph and the step.

Example::

    notes = calibrate_for_build(Path("skills"), Path("graphs"))
    notes["turn_intent"]  # ['calibrated alone: threshold 0.6551, val coverage 65.4%']
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.errors import SetupError

if TYPE_CHECKING:
    from orchestrator.registry.manifest import CalibrationSpec
    from orchestrator.registry.registry import Registry, SkillVersion

__all__ = ["CalibrationNeed", "calibrate_for_build", "calibration_needs"]


@dataclass(frozen=True)
class CalibrationNeed:
    """One calibration a build must have: a skill alone (``first`` None) or after ``first``."""

    version: SkillVersion
    first: SkillVersion | None = None
    #: Where it is needed (``graph outbound_call_turn, step intent``), for error messages.
    where: str = "its manifest"


def calibration_needs(registry: Registry, graphs_dir: Path | None) -> list[CalibrationNeed]:
    """What the skills' manifests and the graphs' ``threshold: calibrated`` steps need."""
    needs: list[CalibrationNeed] = [
        CalibrationNeed(v) for v in registry if v.manifest and v.manifest.calibration
    ]
    for path in sorted(graphs_dir.glob("*.yaml")) if graphs_dir and graphs_dir.is_dir() else []:
        needs += _graph_needs(registry, path)
    unique: dict[tuple[str, str | None], CalibrationNeed] = {}
    for need in needs:
        key = (need.version.key, need.first.key if need.first else None)
        unique.setdefault(key, need)
    return list(unique.values())


def _graph_needs(registry: Registry, path: Path) -> list[CalibrationNeed]:
    from orchestrator.graph.spec import load_graph

    spec = load_graph(path)
    needs: list[CalibrationNeed] = []
    for step in spec.steps:
        if step.escalation is None or step.escalation.threshold != "calibrated":
            continue
        where = f"graph {spec.name} ({path.name}), step {step.id!r}"
        skill = registry.resolve(step.skill)
        chain = [registry.resolve(ref) for ref in step.escalation.chain]
        if chain:
            needs.append(CalibrationNeed(chain[0], skill, where))
            needs += [CalibrationNeed(v, None, where) for v in chain[1:]]
        else:
            needs.append(CalibrationNeed(skill, None, where))
    return needs


def calibrate_for_build(root: Path, graphs_dir: Path | None) -> dict[str, list[str]]:
    """Bring every needed calibration up to date; skill name -> what was done, for the log.

    Raises SetupError listing every need that cannot be met.
    """
    from orchestrator.registry.registry import Registry

    registry = Registry.from_folder(root)
    done: dict[str, list[str]] = {}
    problems: list[str] = []
    for need in calibration_needs(registry, graphs_dir):
        if _is_current(need):
            continue
        owner = _governing(need)
        if owner is None:
            problems.append(
                f"{need.where}: threshold 'calibrated' but {need.version.key} has no calibration "
                "for its current artifacts and its manifest declares no validation split; add a "
                "`calibration:` block to its manifest, run `orchestrator skills calibrate "
                f"{need.version.name}` by hand, or give the step a number"
            )
            continue
        note = _calibrate(need, owner)
        done.setdefault(need.version.name, []).append(note)
    if problems:
        raise SetupError("cannot calibrate what the graphs need:\n- " + "\n- ".join(problems))
    return done


def _governing(need: CalibrationNeed) -> SkillVersion | None:
    """The version whose manifest's calibration block (settings and validation split) governs a
    need: the skill's own, else the first tier's; None when neither has one."""
    for version in (need.version, need.first):
        if version is not None and version.manifest and version.manifest.calibration:
            return version
    return None


def _spec(version: SkillVersion) -> CalibrationSpec:
    assert version.manifest is not None and version.manifest.calibration is not None
    return version.manifest.calibration


def _is_current(need: CalibrationNeed) -> bool:
    """Whether the stored calibration fits the current artifacts (and, if the build made it, the
    manifest's settings)."""
    from orchestrator.registry.calibrations import stored_calibration, stored_chain_record

    if need.first is None:
        record = stored_calibration(need.version.build)
    else:
        record = stored_chain_record(need.version, need.first)
    if record is None:
        return False
    if record.get("by") != "build":
        return True  # made by hand: kept until the artifacts change
    owner = _governing(need)
    return owner is not None and _settings(need, _spec(owner)) == _settings_of(record)


def _level(need: CalibrationNeed, spec: CalibrationSpec) -> float:
    from orchestrator.learning.calibrate import DEFAULT_CONFIDENCE_LEVEL
    from orchestrator.learning.chain_calibrate import DEFAULT_CHAIN_CONFIDENCE_LEVEL

    if need.first is None:
        return spec.confidence_level or DEFAULT_CONFIDENCE_LEVEL
    return spec.chain_confidence_level or DEFAULT_CHAIN_CONFIDENCE_LEVEL


def _settings(need: CalibrationNeed, spec: CalibrationSpec) -> dict[str, Any]:
    return {
        "target_accuracy": float(spec.target_accuracy),
        "confidence_level": float(_level(need, spec)),
        "label_shares": {k: float(v) for k, v in (spec.label_shares or {}).items()},
    }


def _settings_of(record: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "target_accuracy": float(record.get("target_accuracy", -1.0)),
        "confidence_level": float(record.get("confidence_level", -1.0)),
        "label_shares": dict(record.get("label_shares") or {}),
    }


def _calibrate(need: CalibrationNeed, owner: SkillVersion) -> str:
    """Compute and store one calibration from the validation split ``owner`` declares."""
    from orchestrator.learning.calibrate import calibrate
    from orchestrator.learning.chain_calibrate import calibrate_after
    from orchestrator.learning.evaluate import validation_data

    spec = _spec(owner)
    data, labels, source, shares = validation_data(owner)
    common: dict[str, Any] = {
        "label_shares": shares,
        "confidence_level": _level(need, spec),
        "source": source,
        "by": "build",
        "own_split": True,
    }
    if need.first is None:
        alone = calibrate(
            need.version,
            data,
            labels,
            spec.target_accuracy,
            on_unreachable="escalate_all",
            **common,
        )
        what = f"calibrated alone: threshold {alone.threshold:.4f}"
        coverage, reachable = alone.coverage, alone.reachable
    else:
        pair = calibrate_after(
            need.version, need.first, data, labels, spec.target_accuracy, **common
        )
        what = (
            f"calibrated after {need.first.key}: thresholds {pair.first_threshold:.4f} / "
            f"{pair.threshold:.4f}"
        )
        coverage, reachable = pair.coverage, pair.reachable
    reach = "" if reachable else " (unreachable: every item escalates)"
    return f"{what}, val coverage {coverage:.1%}{reach}"
