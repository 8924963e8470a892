"""Calibration: the confidence threshold at which a skill's kept answers reach a target accuracy.

A skill answers every item with a confidence; the cascade keeps answers at or above the step's
threshold and escalates the rest. On a labelled validation split, sorting the items by confidence
gives the *selective accuracy vs coverage* curve: keeping the items at or above threshold ``t``
covers a share of the split (coverage) and gets a share of those right (selective accuracy).

How the threshold is chosen (:func:`choose_threshold`):

- Candidates are the distinct confidences of the split (keep ``confidence >= t``).
- **The curve must hold just above the threshold too.** The answer is the lowest ``t`` whose kept
  set reaches the target *and* so does every kept set between half its size and its size.
  Selective accuracy is not monotone: a pocket of correct answers lower down can lift the curve
  back over the target right after it dipped under, and the plain rule would stop in that pocket;
  this one stops above the dip. Dips among far fewer items (the top of the curve, where a couple
  of errors swing the accuracy) do not veto a threshold that keeps many more: requiring the whole
  curve above to hold would let three early errors out of 26 cap the coverage at a few percent.
- **Too-small kept sets do not count** (``min_kept``, default ``ceil(1 / (1 - target))``, 34 at
  0.97): below that one error already breaks the target, so the top of the curve is noise.
- **Optional margin** (``confidence_level``): the chosen point's one-sided Wilson lower bound of
  the selective accuracy must reach the target too, not only its point estimate; the margin
  shrinks as the kept set grows, so small validation splits get conservative thresholds.
- **Optional traffic mix** (``weights``, or ``label_shares`` in :func:`calibrate`): reweight the
  split so that, e.g., out-of-scope items weigh what they will in production. CLINC150's val split
  is 3 % out-of-scope and its test split 18 %: unweighted, a 97 % threshold from val keeps 95 % on
  test. The margin then uses the variance of the *weighted* estimate: 100 out-of-scope items
  standing for 18 % of the traffic are a small sample, and the bound says so.
- If the whole split reaches the target, the threshold is 0.0 (keep everything). If no threshold
  does, :class:`CalibrationError` says how close the best one came (or, with
  ``on_unreachable="escalate_all"``, the threshold is 1.0 and ``reachable`` is false).

The result is stored with the skill version, in its build record (``artifacts/build.json``, beside
the artifacts, not tracked), as ``calibration``, with a fingerprint of the artifacts it was
measured on: retraining makes it stale, and ``orchestrator skills build`` recomputes it from the
validation split the manifest names (:mod:`orchestrator.learning.build_calibration`).

Example::

    calibration = calibrate(registry.resolve("turn_intent"), texts, labels, 0.97)
    calibration.threshold, calibration.coverage, calibration.selective_accuracy
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from orchestrator.errors import CalibrationError, SkillDefinitionError
from orchestrator.registry.build_record import (
    BuildRecord,
    artifacts_fingerprint,
    load_build_record,
    update_build_record,
)

if TYPE_CHECKING:
    from orchestrator.registry.registry import SkillVersion
    from orchestrator.skill import Skill

__all__ = [
    "Calibration",
    "CalibrationError",
    "Curve",
    "DEFAULT_CONFIDENCE_LEVEL",
    "calibrate",
    "choose_threshold",
    "columns_for",
    "default_min_kept",
    "label_field_of",
    "predict_labels",
    "selective_curve",
    "share_weights",
    "write_calibration",
]

#: Default of :func:`calibrate` and of the commands: the chosen point's 90 % one-sided Wilson lower
#: bound must reach the target (0.5 turns the margin off: the bound is then the point estimate).
DEFAULT_CONFIDENCE_LEVEL = 0.9
#: Items per predict call when the skill sets no max_batch.
PREDICT_CHUNK = 4096


@dataclass(frozen=True)
class Curve:
    """Selective accuracy vs coverage: one point per distinct confidence, highest first.

    Point ``i`` keeps the items with confidence ``>= thresholds[i]``: ``kept[i]`` of them, a share
    ``coverage[i]`` of the (weighted) split, ``selective_accuracy[i]`` of them right.
    """

    thresholds: np.ndarray
    kept: np.ndarray
    coverage: np.ndarray
    selective_accuracy: np.ndarray
    #: Effective sample size of each kept set's accuracy (== kept when unweighted; see
    #: ``_effective_size``).
    effective_kept: np.ndarray

    def __len__(self) -> int:
        return len(self.thresholds)

    def at(self, threshold: float) -> tuple[float, float, int]:
        """(coverage, selective accuracy, kept items) when keeping ``confidence >= threshold``."""
        # thresholds descend: the points kept at `threshold` are those with thresholds >= it.
        index = int(np.searchsorted(-self.thresholds, -threshold, side="right")) - 1
        if index < 0:
            return 0.0, float("nan"), 0
        return (
            float(self.coverage[index]),
            float(self.selective_accuracy[index]),
            int(self.kept[index]),
        )

    def rows(self, chosen: float | None = None, points: int = 12) -> list[dict[str, float]]:
        """A readable summary: thresholds at round coverage levels, plus the chosen one."""
        if not len(self):
            return []
        levels = np.linspace(1.0, 0.0, points, endpoint=False)[::-1]
        picked = {int(np.searchsorted(self.coverage, level, side="left")) for level in levels}
        picked = {min(i, len(self) - 1) for i in picked} | {len(self) - 1}
        if chosen is not None:
            i = int(np.searchsorted(-self.thresholds, -chosen, side="right")) - 1
            if i >= 0:
                picked.add(i)
        return [
            {
                "threshold": float(self.thresholds[i]),
                "coverage": float(self.coverage[i]),
                "selective_accuracy": float(self.selective_accuracy[i]),
                "kept": int(self.kept[i]),
            }
            for i in sorted(picked, reverse=True)
        ]


def selective_curve(
    confidence: Sequence[float] | np.ndarray,
    correct: Sequence[bool] | np.ndarray,
    weights: Sequence[float] | np.ndarray | None = None,
) -> Curve:
    """The selective accuracy vs coverage curve of one labelled split."""
    conf = np.asarray(confidence, dtype=np.float64).ravel()
    right = np.asarray(correct, dtype=bool).ravel()
    w = np.ones(len(conf)) if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    if not (len(conf) == len(right) == len(w)):
        raise CalibrationError(
            f"{len(conf)} confidences, {len(right)} correctness flags and {len(w)} weights: "
            "give one of each per item"
        )
    if len(conf) == 0:
        raise CalibrationError("the calibration split is empty")
    if np.isnan(conf).any():
        raise CalibrationError("some confidences are NaN")
    if (w < 0).any() or w.sum() <= 0:
        raise CalibrationError("weights must be >= 0 with a positive sum")
    order = np.argsort(-conf, kind="stable")
    conf, right, w = conf[order], right[order], w[order]
    weight_kept = np.cumsum(w)
    right_kept = np.cumsum(w * right)
    square_kept = np.cumsum(w * w)
    square_right_kept = np.cumsum(w * w * right)
    # One point per distinct confidence: the last item of each run of equal confidences.
    last = np.flatnonzero(np.append(conf[1:] != conf[:-1], True))
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = right_kept[last] / weight_kept[last]
        effective = _effective_size(
            accuracy, weight_kept[last], square_kept[last], square_right_kept[last]
        )
    return Curve(
        thresholds=conf[last],
        kept=last + 1,
        coverage=weight_kept[last] / weight_kept[-1],
        selective_accuracy=np.nan_to_num(accuracy, nan=0.0),
        effective_kept=np.nan_to_num(effective, nan=0.0),
    )


def _effective_size(
    accuracy: np.ndarray, weight: np.ndarray, square: np.ndarray, square_right: np.ndarray
) -> np.ndarray:
    """The sample size a plain proportion would need to be as uncertain as each weighted one.

    Kish's ``(sum w)^2 / sum w^2`` assumes errors spread evenly over the weights. They do not
    when a rare label is reweighted: CLINC150 val's 100 out-of-scope turns weigh 18 % of the
    split, and most kept errors are among them, so a handful of items carries the error rate.
    The linearized variance of the weighted (ratio) estimate, ``sum w^2 (y - p)^2 / (sum w)^2``,
    sees that; the size is ``p (1 - p) / variance`` (exactly the count when unweighted), and never
    more than Kish's.
    """
    kish = weight**2 / square
    # sum w^2 (y - p)^2 with y in {0, 1}: sum w^2 y (1 - 2p) + p^2 sum w^2
    spread = square_right * (1 - 2 * accuracy) + accuracy**2 * square
    with np.errstate(invalid="ignore", divide="ignore"):
        design = np.where(
            spread > 1e-15 * square,
            accuracy * (1 - accuracy) * weight**2 / np.maximum(spread, 1e-300),
            kish,
        )
    return np.minimum(kish, design)


def default_min_kept(target_accuracy: float) -> int:
    """Fewest kept items for a point to count: ``ceil(1 / (1 - target))`` (one error allowed)."""
    if target_accuracy >= 1.0:
        return 1
    return math.ceil(1.0 / (1.0 - target_accuracy) - 1e-9)


def wilson_lower_bound(accuracy: np.ndarray, n: np.ndarray, confidence_level: float) -> np.ndarray:
    """One-sided Wilson score lower bound of a proportion (``n`` may be an effective size)."""
    from statistics import NormalDist

    z = NormalDist().inv_cdf(confidence_level)
    n = np.maximum(np.asarray(n, dtype=np.float64), 1e-12)
    p = np.asarray(accuracy, dtype=np.float64)
    centre = p + z * z / (2 * n)
    spread = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return np.asarray((centre - spread) / (1 + z * z / n))


@dataclass(frozen=True)
class Calibration:
    """A chosen threshold and what it does on the split it was chosen on."""

    threshold: float
    target_accuracy: float
    #: False when no threshold reached the target (threshold is then 1.0: escalate everything).
    reachable: bool
    #: Share of the split kept at the threshold (weighted, when weights were given).
    coverage: float
    #: Share of the kept items that are right.
    selective_accuracy: float
    #: Share of all items that are right (coverage 1).
    accuracy: float
    items: int
    kept: int
    min_kept: int
    confidence_level: float | None = None
    split: str = "val"
    #: Label -> share the split was reweighted to, if any.
    label_shares: dict[str, float] | None = None
    #: Where the split came from (a CSV path, "CLINC150 val + oos_val", ...).
    source: str | None = None
    curve: Curve | None = field(default=None, repr=False, compare=False)

    def record(self) -> dict[str, Any]:
        """The ``calibration`` block stored in the build record (JSON-safe)."""
        out: dict[str, Any] = {
            "threshold": float(self.threshold),
            "target_accuracy": float(self.target_accuracy),
            "reachable": bool(self.reachable),
            "split": self.split,
            "val_coverage": round(float(self.coverage), 4),
            "val_selective_accuracy": round(float(self.selective_accuracy), 4),
            "val_accuracy": round(float(self.accuracy), 4),
            "val_items": int(self.items),
            "val_kept": int(self.kept),
            "min_kept": int(self.min_kept),
        }
        return out | provenance(self.confidence_level, self.label_shares, self.source)

    def summary(self) -> dict[str, Any]:
        """One JSON-ready line: the record plus the curve at round coverage levels."""
        out = self.record()
        if self.curve is not None:
            out["curve"] = [
                {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}
                for row in self.curve.rows(self.threshold)
            ]
        return out


def provenance(
    confidence_level: float | None, label_shares: Mapping[str, float] | None, source: str | None
) -> dict[str, Any]:
    """How a stored calibration was measured: its margin, traffic mix and split (those given)."""
    out: dict[str, Any] = {}
    if confidence_level is not None:
        out["confidence_level"] = float(confidence_level)
    if label_shares:
        out["label_shares"] = {k: float(v) for k, v in label_shares.items()}
    if source:
        out["source"] = source
    return out


def choose_threshold(
    confidence: Sequence[float] | np.ndarray,
    correct: Sequence[bool] | np.ndarray,
    target_accuracy: float,
    *,
    weights: Sequence[float] | np.ndarray | None = None,
    min_kept: int | None = None,
    confidence_level: float | None = None,
    on_unreachable: Literal["raise", "escalate_all"] = "raise",
) -> Calibration:
    """The lowest threshold at which (and just above which) the kept answers reach the target.

    See the module docstring for the rule. Raises CalibrationError when no threshold reaches the
    target, unless ``on_unreachable="escalate_all"`` (threshold 1.0, ``reachable=False``).
    """
    if not 0.0 < target_accuracy <= 1.0:
        raise CalibrationError(f"target accuracy {target_accuracy} must be in (0, 1]")
    if confidence_level is not None and not 0.5 <= confidence_level < 1.0:
        raise CalibrationError(f"confidence level {confidence_level} must be in [0.5, 1)")
    curve = selective_curve(confidence, correct, weights)
    n = int(curve.kept[-1])
    need = min(n, max(1, min_kept if min_kept is not None else default_min_kept(target_accuracy)))
    valid, score = _valid_points(curve, target_accuracy, need, confidence_level)
    candidates = np.flatnonzero(valid)
    common: dict[str, Any] = {
        "target_accuracy": target_accuracy,
        "accuracy": float(curve.selective_accuracy[-1]),
        "items": n,
        "min_kept": need,
        "confidence_level": confidence_level,
        "curve": curve,
    }
    if candidates.size == 0:
        if on_unreachable == "raise":
            raise CalibrationError(
                _unreachable(curve, score, target_accuracy, need, min_kept, confidence_level)
            )
        coverage, selective, kept = curve.at(1.0)
        return Calibration(
            threshold=1.0,
            reachable=False,
            coverage=coverage,
            selective_accuracy=0.0 if math.isnan(selective) else selective,
            kept=kept,
            **common,
        )
    chosen = int(candidates[-1])
    return Calibration(
        threshold=0.0 if chosen == len(curve) - 1 else float(curve.thresholds[chosen]),
        reachable=True,
        coverage=float(curve.coverage[chosen]),
        selective_accuracy=float(curve.selective_accuracy[chosen]),
        kept=int(curve.kept[chosen]),
        **common,
    )


def _valid_points(
    curve: Curve, target_accuracy: float, need: int, confidence_level: float | None
) -> tuple[np.ndarray, np.ndarray]:
    """(which points may be the threshold, the score each is judged by: its selective accuracy,
    or with a margin its Wilson lower bound)."""
    accuracy = curve.selective_accuracy
    # Compare with a hair of slack so 0.97 is reached by 97/100 despite float rounding.
    goal = target_accuracy - 1e-12
    counts = curve.kept >= need
    fails = counts & (accuracy < goal)
    # Point i is valid if no counted point keeping between kept[i] / 2 and kept[i] items fails.
    window_start = np.searchsorted(curve.kept, curve.kept / 2.0, side="left")
    failed_before = np.concatenate([[0], np.cumsum(fails)])
    fails_in_window = failed_before[np.arange(len(curve)) + 1] - failed_before[window_start]
    valid = counts & (fails_in_window == 0)
    score = accuracy
    if confidence_level is not None:
        # ...and its lower bound reaches the target too (it cannot at the top, where few are kept).
        score = wilson_lower_bound(accuracy, curve.effective_kept, confidence_level)
        valid &= score >= goal
    return valid, score


def _unreachable(
    curve: Curve,
    score: np.ndarray,
    target_accuracy: float,
    need: int,
    min_kept: int | None,
    confidence_level: float | None,
) -> str:
    """Why no threshold reaches the target: how close the best counted point came, and what to do."""
    n = int(curve.kept[-1])
    best = int(np.argmax(np.where(curve.kept >= need, score, -1.0)))
    where = (
        "on the whole split"
        if best == len(curve) - 1
        else f"at coverage {curve.coverage[best]:.1%} (threshold {curve.thresholds[best]:.4f})"
    )
    small = (
        f"; checking {target_accuracy:.2%} takes at least {default_min_kept(target_accuracy)} "
        f"kept items (one error allowed), the split has {n}"
        if min_kept is None and n < default_min_kept(target_accuracy)
        else ""
    )
    return (
        f"no threshold reaches {target_accuracy:.2%} accuracy on this split of {n} items: "
        f"the best kept set of at least {need} items gets {score[best]:.2%}"
        f"{' (lower bound)' if confidence_level is not None else ''} {where}{small}; lower "
        "the target, give more validation data, or improve the model"
    )


def share_weights(labels: Sequence[Any], label_shares: Mapping[str, float]) -> np.ndarray:
    """Item weights that give each label in ``label_shares`` that share of the split's weight
    (the other labels keep their relative sizes and share the rest)."""
    names = np.array([str(label) for label in labels], dtype=object)
    total = sum(label_shares.values())
    if not 0.0 <= total < 1.0 or any(s <= 0 for s in label_shares.values()):
        raise CalibrationError(f"label shares {dict(label_shares)} must be > 0 and sum below 1")
    weights = np.ones(len(names))
    rest = np.ones(len(names), dtype=bool)
    for label, share in label_shares.items():
        mask = names == label
        if not mask.any():
            raise CalibrationError(f"label {label!r} has no item in the calibration split")
        weights[mask] = share / mask.sum()
        rest &= ~mask
    if rest.any():
        weights[rest] = (1.0 - total) / rest.sum()
    return weights * len(names)


# ---------------------------------------------------------------------------------------------
# Skills: predict a split, calibrate, store with the version


def label_field_of(skill_cls: type[Skill], output_field: str | None = None) -> str:
    """The Output field compared with labels: ``output_field``, the class's ``label_field``, or
    the only Output field."""
    fields = list(skill_cls.Output.model_fields)
    if output_field is not None:
        if output_field not in fields:
            raise SkillDefinitionError(
                f"skill {skill_cls.name!r} has no output {output_field!r}; outputs: {fields}"
            )
        return output_field
    declared = getattr(skill_cls, "label_field", None)
    if declared in fields:
        return str(declared)
    if len(fields) == 1:
        return fields[0]
    raise SkillDefinitionError(
        f"skill {skill_cls.name!r} has several outputs ({', '.join(fields)}); say which one the "
        "labels are for"
    )


def columns_for(
    skill_cls: type[Skill], data: Sequence[Any] | Mapping[str, Sequence[Any]]
) -> dict[str, list[Any]]:
    """A batch for ``skill_cls`` from texts (one-field skills), rows (dicts) or columns."""
    fields = list(skill_cls.Input.model_fields)
    if isinstance(data, Mapping):
        missing = [f for f in fields if f not in data]
        if missing:
            raise CalibrationError(f"skill {skill_cls.name!r} needs input columns {missing}")
        return {f: list(data[f]) for f in fields}
    items = list(data)
    if items and all(isinstance(item, Mapping) for item in items):
        missing = sorted({f for item in items for f in fields if f not in item})
        if missing:
            raise CalibrationError(f"rows lack the input fields {missing} of {skill_cls.name!r}")
        return {f: [item[f] for item in items] for f in fields}
    if len(fields) != 1:
        raise CalibrationError(
            f"skill {skill_cls.name!r} takes {len(fields)} input fields ({', '.join(fields)}): "
            "give rows (dicts) or columns, not bare values"
        )
    return {fields[0]: items}


def predict_labels(
    skill: Skill, batch: Mapping[str, Sequence[Any]], output_field: str | None = None
) -> tuple[list[Any], np.ndarray]:
    """Predicted labels and confidences for a whole batch, in chunks the skill accepts.

    Items the skill fails on get label None and confidence 0 (they always escalate).
    """
    skill.ensure_setup()
    field_ = label_field_of(type(skill), output_field)
    size = len(next(iter(batch.values()))) if batch else 0
    step = skill.max_batch or PREDICT_CHUNK
    labels: list[Any] = []
    confidences: list[np.ndarray] = []
    for start in range(0, size, step):
        chunk = {k: list(v[start : start + step]) for k, v in batch.items()}
        predictions = skill.predict(chunk)
        got = list(predictions.outputs[field_])
        conf = np.asarray(predictions.confidence, dtype=np.float64).copy()
        for i, error in enumerate(predictions.errors or []):
            if error:
                got[i], conf[i] = None, 0.0
        labels += got
        confidences.append(conf)
    return labels, (np.concatenate(confidences) if confidences else np.zeros(0))


def split_answers(
    version: SkillVersion,
    batch: Mapping[str, Sequence[Any]],
    labels: Sequence[Any],
    own_split: bool,
    output_field: str | None = None,
    skill: Skill | None = None,
) -> tuple[list[Any], np.ndarray]:
    """The answers to calibrate on: on the version's ``own_split`` (the validation split its
    manifest declares), its held-out answers when it keeps them (a cross-fitted skill, which was
    trained on those rows too: :mod:`orchestrator.learning.held_out`); otherwise the skill's."""
    if own_split:
        from orchestrator.learning.held_out import stored_answers

        stored = stored_answers(version, labels)
        if stored is not None:
            return stored
    return predict_labels(skill if skill is not None else version.create(), batch, output_field)


def same_label(predicted: Any, expected: Any) -> bool:
    """Whether a prediction matches a label given as text (``True`` matches ``"true"``)."""
    if predicted is None:
        return False
    if predicted == expected:
        return True
    return str(predicted).strip().lower() == str(expected).strip().lower()


def calibrate(
    version: SkillVersion,
    texts_or_rows: Sequence[Any] | Mapping[str, Sequence[Any]],
    labels: Sequence[Any],
    target_accuracy: float,
    *,
    label_shares: Mapping[str, float] | None = None,
    min_kept: int | None = None,
    confidence_level: float | None = DEFAULT_CONFIDENCE_LEVEL,
    output_field: str | None = None,
    split: str = "val",
    source: str | None = None,
    store: bool = True,
    by: str = "hand",
    on_unreachable: Literal["raise", "escalate_all"] = "raise",
    skill: Skill | None = None,
    own_split: bool = False,
) -> Calibration:
    """Run ``version`` on a labelled validation split, choose its threshold, store it.

    ``texts_or_rows``: texts for a one-field skill, or rows (dicts), or columns. ``label_shares``
    reweights the split to a traffic mix (e.g. ``{"oos": 0.18}``); ``confidence_level`` (default
    0.9, None for none) puts a margin under the target. With ``store`` the result goes into the
    version's build record as ``calibration`` (artifacts untouched). ``own_split``: the items are
    the version's declared validation split, so a cross-fitted skill's held-out answers are used.
    """
    batch = columns_for(version.skill_cls, texts_or_rows)
    expected = list(labels)
    size = len(next(iter(batch.values()))) if batch else 0
    if size != len(expected):
        raise CalibrationError(f"{size} items but {len(expected)} labels")
    version.verify()
    predicted, confidence = split_answers(version, batch, expected, own_split, output_field, skill)
    correct = np.array([same_label(p, e) for p, e in zip(predicted, expected, strict=True)])
    weights = share_weights(expected, label_shares) if label_shares else None
    result = choose_threshold(
        confidence,
        correct,
        target_accuracy,
        weights=weights,
        min_kept=min_kept,
        confidence_level=confidence_level,
        on_unreachable=on_unreachable,
    )
    from dataclasses import replace

    result = replace(
        result,
        split=split,
        source=source,
        label_shares=dict(label_shares) if label_shares else None,
    )
    if store and version.folder is not None:
        write_calibration(version.folder, result, by=by)
    return result


def write_calibration(folder: Any, calibration: Calibration, *, by: str = "hand") -> BuildRecord:
    """Store ``calibration`` in the folder's build record (``by``: "hand" or "build", so a build
    knows which ones it may recompute); the artifacts and everything else stay."""
    from pathlib import Path

    folder = Path(folder)
    record = calibration.record()
    record["artifacts_fingerprint"] = artifacts_fingerprint(load_build_record(folder))
    record["by"] = by
    return update_build_record(folder, calibration=record)
