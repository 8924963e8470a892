"""A skill and the tier calibrated after it, evaluated as the cascade runs them.

``skills eval NAME`` reports the chain as a whole when ``NAME`` has one (a later tier whose
manifest builds on ``NAME`` and whose build record holds a chain calibration after ``NAME``'s
current artifacts, e.g. ``NAME_minilm`` from ``skills train text-classifier``): the first tier
answers every row, keeps those at or above its chain threshold, the second answers the rest and
keeps those at or above its own; what neither keeps would go to the big model (``escalated``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from orchestrator.registry.registry import SkillVersion

__all__ = ["chain_report", "find_chain"]


def find_chain(first: SkillVersion, skills_dir: Path) -> tuple[SkillVersion, float, float] | None:
    """(the tier calibrated after ``first``, first threshold, second threshold), or None.

    Candidates are the folders whose manifest lists ``first``'s name among the skills it is
    built from; among several, the ``prod`` one, else the newest."""
    from orchestrator.errors import OrchestratorError
    from orchestrator.registry.calibrations import stored_chain_thresholds
    from orchestrator.registry.manifest import load_manifest, skill_folders
    from orchestrator.registry.registry import Registry

    found: list[tuple[bool, SkillVersion, tuple[float, float]]] = []
    for folder in skill_folders(skills_dir):
        try:
            manifest = load_manifest(folder)
            if first.name not in manifest.inputs.skills or folder == first.folder:
                continue
            version = Registry().load_folder(folder)
        except OrchestratorError:
            continue  # a broken unrelated folder is not this skill's chain
        pair = stored_chain_thresholds(version, first)
        if pair is not None:
            found.append(("prod" in manifest.aliases, version, pair))
    if not found:
        return None
    _, version, (t1, t2) = max(found, key=lambda f: (f[0], f[1].version))
    return version, t1, t2


def chain_report(
    first: SkillVersion,
    chain: tuple[SkillVersion, float, float],
    batch: Mapping[str, Sequence[Any]],
    expected: Sequence[str],
    output_field: str | None = None,
    *,
    per_label: bool = False,
) -> dict[str, Any]:
    """Coverage, selective accuracy and escalations of the pair, with per-tier figures; with
    ``per_label``, also each label's counts for the chain's answers (the tier that kept a row,
    else the second tier's)."""
    from orchestrator.learning.calibrate import columns_for, predict_labels, same_label

    second, t1, t2 = chain
    n = len(expected)
    predicted, c1 = predict_labels(first.create(), batch, output_field)
    right1 = np.array([same_label(p, e) for p, e in zip(predicted, expected, strict=True)])
    kept1 = np.asarray(c1) >= t1
    rest = [i for i in range(n) if not kept1[i]]
    sub = {f: [v[i] for i in rest] for f, v in batch.items()}
    second.verify()
    p2, c2 = predict_labels(second.create(), columns_for(second.skill_cls, sub), output_field)
    right2 = np.array([same_label(p, expected[i]) for p, i in zip(p2, rest, strict=True)], bool)
    kept2 = np.asarray(c2) >= t2
    final = right1.copy()
    final[rest] = right2
    kept_right = int((kept1 & right1).sum() + (kept2 & right2).sum())
    kept = int(kept1.sum() + kept2.sum())
    report: dict[str, Any] = {
        "chain": [first.key, second.key],
        "accuracy": round(float(final.mean()), 4),
        "coverage": round(kept / n, 4),
        "kept": kept,
        "escalated": n - kept,
        "selective_accuracy": round(kept_right / kept, 4) if kept else None,
        "tiers": [
            _tier(first.key, t1, n, int(kept1.sum()), int((kept1 & right1).sum()), right1),
            _tier(second.key, t2, len(rest), int(kept2.sum()), int((kept2 & right2).sum()), right2),
        ],
    }
    if per_label:
        from orchestrator.learning.label_counts import per_label_counts

        answers = list(predicted)
        whole_kept = kept1.copy()
        for j, i in enumerate(rest):
            answers[i], whole_kept[i] = p2[j], kept2[j]
        report["per_label"] = per_label_counts(expected, answers, final, whole_kept)
    return report


def _tier(key: str, threshold: float, seen: int, kept: int, right: int, correct: Any) -> dict:
    return {
        "skill": key,
        "threshold": round(float(threshold), 6),
        "seen": seen,
        "kept": kept,
        "kept_accuracy": round(right / kept, 4) if kept else None,
        "accuracy_on_seen": round(float(np.mean(correct)), 4) if seen else None,
    }
