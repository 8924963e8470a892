"""Calibrating a two-tier cascade: a cheap skill first, a dearer one on what it is unsure of.

A step's escalation ``chain`` hands the items its skill is unsure of to the next skill (e.g. TF-IDF
-> sentence embeddings) before the big model. Calibrated one at a time, each tier keeps what it
gets right on the *whole* validation split; in the chain the second tier only sees what the first
passed on, the hard items, where the same threshold keeps more errors. So the two thresholds are
chosen together, on the items as the chain routes them (:func:`choose_chain_thresholds`):

- for each candidate first threshold ``t1`` (quantiles of the first tier's confidences), the items
  at or above it keep the first tier's answer; the rest are ordered by the second tier's
  confidence, and :func:`orchestrator.learning.calibrate.choose_threshold` picks the lowest ``t2`` whose
  kept union (first tier's + second tier's) reaches the target, with the same rules and margin as
  a single skill;
- the pair keeping most of the (weighted) split wins; on a tie, the one sending fewer items to the
  second tier.

The result is stored in the *second* skill's build record, keyed by the first skill's version and
both artifacts' fingerprints (``calibration_after``): a step whose threshold is
``calibrated`` uses the pair when its skill and chain match, and each skill's own threshold
otherwise.

Example::

    pair = calibrate_after(registry.resolve("turn_intent_minilm"), registry.resolve("turn_intent"),
                           texts, labels, 0.97, label_shares={"oos": 0.18})
    pair.first_threshold, pair.threshold, pair.coverage
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from orchestrator.learning.calibrate import (
    CalibrationError,
    choose_threshold,
    columns_for,
    provenance,
    same_label,
    share_weights,
    split_answers,
)
from orchestrator.registry.build_record import (
    artifacts_fingerprint,
    load_build_record,
    update_build_record,
)

if TYPE_CHECKING:
    from orchestrator.registry.registry import SkillVersion

__all__ = [
    "DEFAULT_CHAIN_CONFIDENCE_LEVEL",
    "ChainCalibration",
    "calibrate_after",
    "choose_chain_thresholds",
]

#: The chain's margin: the pair is the best of ~200 candidate first thresholds, and the second
#: tier keeps the hard tail, so its val accuracy is a more optimistic estimate than a single
#: skill's; the default level is above a single skill's 0.9. Chosen on validation data only
#: (bench/confidence_level.py, CLINC150 val split in halves: the lowest level whose pair, chosen
#: on one half, keeps the target on the other in at least 80 % of the splits; 0.95 did in 74 %,
#: 0.975 in 84 %). A skill's manifest may set its own (``calibration.chain_confidence_level``).
DEFAULT_CHAIN_CONFIDENCE_LEVEL = 0.975
#: Candidate first-tier thresholds: this many quantiles of its confidences.
FIRST_CANDIDATES = 201
#: Marks the first tier's kept items when they are ranked with the second tier's confidences.
_ABOVE_ALL = 2.0


@dataclass(frozen=True)
class ChainCalibration:
    """Thresholds of a two-tier cascade and what they do on the split they were chosen on."""

    #: Key of the skill answering first (``turn_intent@1.0.0``).
    after: str
    #: Threshold of the first skill in this chain (not its own, single-skill one).
    first_threshold: float
    #: Threshold of the second skill.
    threshold: float
    target_accuracy: float
    reachable: bool
    #: Share of the (weighted) split kept by either tier.
    coverage: float
    selective_accuracy: float
    #: Share of the split the second tier sees (its calls).
    second_share: float
    #: Share of the split the second tier keeps.
    second_kept: float
    items: int
    confidence_level: float | None = None
    label_shares: dict[str, float] | None = None
    source: str | None = None

    def record(self) -> dict[str, Any]:
        """The block stored under ``calibration_after[after]`` in the build record (JSON/YAML-safe)."""
        out: dict[str, Any] = {
            "first_threshold": float(self.first_threshold),
            "threshold": float(self.threshold),
            "target_accuracy": float(self.target_accuracy),
            "reachable": bool(self.reachable),
            "val_coverage": round(float(self.coverage), 4),
            "val_selective_accuracy": round(float(self.selective_accuracy), 4),
            "val_second_share": round(float(self.second_share), 4),
            "val_second_kept": round(float(self.second_kept), 4),
            "val_items": int(self.items),
        }
        return out | provenance(self.confidence_level, self.label_shares, self.source)

    def summary(self) -> dict[str, Any]:
        """One JSON-ready line."""
        return {"after": self.after, **self.record()}


def choose_chain_thresholds(
    first_confidence: Sequence[float] | np.ndarray,
    first_correct: Sequence[bool] | np.ndarray,
    second_confidence: Sequence[float] | np.ndarray,
    second_correct: Sequence[bool] | np.ndarray,
    target_accuracy: float,
    *,
    after: str,
    weights: Sequence[float] | np.ndarray | None = None,
    min_kept: int | None = None,
    confidence_level: float | None = DEFAULT_CHAIN_CONFIDENCE_LEVEL,
) -> ChainCalibration:
    """The (first, second) thresholds keeping most of the split at the target (module docstring).

    Unreachable (no pair reaches the target): thresholds 1.0 and ``reachable`` false.
    """
    c1 = np.asarray(first_confidence, dtype=np.float64).ravel()
    c2 = np.asarray(second_confidence, dtype=np.float64).ravel()
    r1 = np.asarray(first_correct, dtype=bool).ravel()
    r2 = np.asarray(second_correct, dtype=bool).ravel()
    if not (len(c1) == len(c2) == len(r1) == len(r2)) or len(c1) == 0:
        raise CalibrationError(
            f"{len(c1)} and {len(c2)} confidences, {len(r1)} and {len(r2)} correctness flags: give "
            "both tiers' answers for every item of a non-empty split"
        )
    w = np.ones(len(c1)) if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    best = _best_pair(
        (c1, r1), (c2, r2), w, target_accuracy, min_kept=min_kept, confidence_level=confidence_level
    )
    if best is None:
        return ChainCalibration(
            after, 1.0, 1.0, target_accuracy, False, 0.0, 0.0, 0.0, 0.0, len(c1), confidence_level
        )
    coverage, neg_share, t1, t2, accuracy = best
    second_kept = float(w[(c1 < t1) & (c2 >= t2)].sum() / float(w.sum()))
    return ChainCalibration(
        after=after,
        first_threshold=t1,
        threshold=t2,
        target_accuracy=target_accuracy,
        reachable=True,
        coverage=coverage,
        selective_accuracy=accuracy,
        second_share=-neg_share,
        second_kept=second_kept,
        items=len(c1),
        confidence_level=confidence_level,
    )


def _best_pair(
    first: tuple[np.ndarray, np.ndarray],
    second: tuple[np.ndarray, np.ndarray],
    w: np.ndarray,
    target_accuracy: float,
    *,
    min_kept: int | None,
    confidence_level: float | None,
) -> tuple[float, float, float, float, float] | None:
    """(coverage, -second share, first threshold, second threshold, selective accuracy) of the
    pair keeping most of the split (then sending the least to the second tier); None if no pair
    reaches the target. Each candidate first threshold ranks its kept items above all the
    second tier's, so one :func:`choose_threshold` picks the second threshold."""
    (c1, r1), (c2, r2) = first, second
    candidates = np.unique(np.quantile(c1, np.linspace(0.0, 1.0, FIRST_CANDIDATES)))
    best: tuple[float, float, float, float, float] | None = None
    for t1 in [*candidates, 1.0]:
        kept_first = c1 >= t1
        result = choose_threshold(
            np.where(kept_first, _ABOVE_ALL, c2),
            np.where(kept_first, r1, r2),
            target_accuracy,
            weights=w,
            min_kept=min_kept,
            confidence_level=confidence_level,
            on_unreachable="escalate_all",
        )
        if not result.reachable:
            continue
        share = float(w[~kept_first].sum() / w.sum())
        key = (result.coverage, -share, float(t1), min(result.threshold, 1.0))
        if best is None or key[:2] > best[:2]:
            best = (*key, result.selective_accuracy)
    return best


def calibrate_after(
    version: SkillVersion,
    first: SkillVersion,
    texts_or_rows: Sequence[Any] | Mapping[str, Sequence[Any]],
    labels: Sequence[Any],
    target_accuracy: float,
    *,
    label_shares: Mapping[str, float] | None = None,
    min_kept: int | None = None,
    confidence_level: float | None = DEFAULT_CHAIN_CONFIDENCE_LEVEL,
    output_field: str | None = None,
    source: str | None = None,
    store: bool = True,
    by: str = "hand",
    own_split: bool = False,
) -> ChainCalibration:
    """Run ``first`` then ``version`` on a labelled split, choose both thresholds, store them.

    ``own_split``: the items are the declared validation split, so a cross-fitted tier's held-out
    answers stand in for its own (:func:`orchestrator.learning.calibrate.split_answers`)."""
    from dataclasses import replace

    expected = list(labels)
    correct = []
    confidence = []
    for skill in (first, version):
        batch = columns_for(skill.skill_cls, texts_or_rows)
        size = len(next(iter(batch.values()))) if batch else 0
        if size != len(expected):
            raise CalibrationError(f"{size} items but {len(expected)} labels")
        skill.verify()
        predicted, conf = split_answers(skill, batch, expected, own_split, output_field)
        correct.append([same_label(p, e) for p, e in zip(predicted, expected, strict=True)])
        confidence.append(conf)
    weights = share_weights(expected, label_shares) if label_shares else None
    result = choose_chain_thresholds(
        confidence[0],
        correct[0],
        confidence[1],
        correct[1],
        target_accuracy,
        after=first.key,
        weights=weights,
        min_kept=min_kept,
        confidence_level=confidence_level,
    )
    result = replace(
        result, source=source, label_shares=dict(label_shares) if label_shares else None
    )
    if store and version.folder is not None:
        write_chain_calibration(version.folder, result, first, by=by)
    return result


def write_chain_calibration(
    folder: Any, result: ChainCalibration, first: SkillVersion, *, by: str = "hand"
) -> None:
    """Add (or replace) ``calibration_after[first.key]`` in the folder's build record."""
    from pathlib import Path

    folder = Path(folder)
    build = load_build_record(folder)
    record = result.record()
    record["artifacts_fingerprint"] = artifacts_fingerprint(build)
    record["after_fingerprint"] = artifacts_fingerprint(first.build)
    record["by"] = by
    after = dict(build.calibration_after) if build is not None else {}
    after[result.after] = record
    update_build_record(folder, calibration_after=after)
