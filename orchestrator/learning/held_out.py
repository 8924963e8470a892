"""Held-out answers: every training row answered by a copy of the model that did not see it.

A classifier ``skills train`` makes from a CSV is calibrated on rows it was not trained on. With
one held-out part (``--val-fraction`` 0.2) the threshold is chosen on a fifth of the rows, so its
margin is wide, and the model is trained on four fifths. Cross-fitting (the default) uses them
all:

1. the rows are cut in ``K = round(1 / val_fraction)`` stratified parts, at most 5
   (:func:`folds`, seed 0);
2. for each part, a copy of the model is fitted on the other parts and answers it
   (:func:`out_of_fold`): every row gets an answer from a model that never saw it;
3. the thresholds (and a second tier's blend weight) are chosen on those answers, K times the rows
   of one part, so the margin under the target is narrower;
4. the skill itself is fitted on every row. Each copy saw (K-1)/K of them: the skill is at least
   as good, so a threshold that holds for the copies is, if anything, cautious for it.

The answers are kept beside the split (``held_out.csv``: ``label``, ``predicted``,
``confidence``, one row per row of ``val.csv``, which then holds every training row), named by the
manifest's ``calibration.validation.predictions``. A later calibration on the skill's own split
(``skills build`` after the manifest's settings change, ``skills calibrate`` without ``--csv``)
reads them (:func:`stored_answers`): the skill's answers on rows it was trained on would be too
optimistic.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from orchestrator.errors import DatasetError
from orchestrator.registry.manifest import ARTIFACTS_DIRNAME

if TYPE_CHECKING:
    from orchestrator.registry.registry import SkillVersion

__all__ = [
    "HELD_OUT_FILE",
    "Folds",
    "fold_count",
    "folds",
    "out_of_fold",
    "read_held_out",
    "stored_answers",
    "write_held_out",
]

HELD_OUT_FILE = "held_out.csv"
SEED = 0
#: Below this many rows the copies are fitted one after the other: starting worker processes
#: costs more than the fits.
PARALLEL_MIN_ROWS = 2000

Folds = list[tuple[list[int], list[int]]]


#: The most parts: past 5, each copy is only a little closer to the skill (it sees 80 % of the
#: rows at 5 parts, 90 % at 10) while the cost grows with every part.
MAX_PARTS = 5


def fold_count(val_fraction: float) -> int:
    """Parts to cut the rows in: each held-out part is ``val_fraction`` of them (2 to
    :data:`MAX_PARTS`; a smaller fraction, e.g. 0.05, still makes 5 parts)."""
    return min(MAX_PARTS, max(2, round(1.0 / val_fraction)))


def folds(labels: Sequence[str], val_fraction: float) -> Folds:
    """(fit rows, held-out rows) per part: stratified by label, shuffled with seed 0."""
    from sklearn.model_selection import StratifiedKFold

    splitter = StratifiedKFold(n_splits=fold_count(val_fraction), shuffle=True, random_state=SEED)
    index = np.arange(len(labels))
    return [
        (sorted(fit.tolist()), sorted(held.tolist()))
        for fit, held in splitter.split(index, list(labels))
    ]


def out_of_fold(
    parts: Folds,
    classes: Sequence[str],
    fit_predict: Callable[[list[int], list[int]], tuple[Sequence[Any], np.ndarray]],
    jobs: int | None = None,
) -> np.ndarray:
    """Class probabilities (columns in ``classes`` order) of every row, each from the copy that
    did not see it. ``fit_predict(fit_rows, held_rows)`` fits a fresh copy and returns its class
    order and its probabilities for the held rows.

    ``jobs``: copies fitted at once, in worker processes (default: one per CPU up to the number
    of parts, from :data:`PARALLEL_MIN_ROWS` rows; ``ORCHESTRATOR_TRAIN_JOBS`` caps it). Each fit
    is seeded, so the answers do not depend on it.
    """
    column = {str(c): i for i, c in enumerate(classes)}
    size = sum(len(held) for _, held in parts)
    jobs = _jobs(len(parts), size) if jobs is None else max(1, jobs)
    if jobs > 1:
        from joblib import Parallel, delayed

        # loky pickles fit_predict with cloudpickle: closures over the training data are fine
        results = Parallel(n_jobs=jobs, backend="loky")(
            delayed(fit_predict)(fit, held) for fit, held in parts
        )
    else:
        results = [fit_predict(fit, held) for fit, held in parts]
    probabilities = np.zeros((size, len(classes)), dtype=np.float64)
    for (_, held), (order, got) in zip(parts, results, strict=True):
        # a copy may lack a class no fit row had (a tiny label): its column stays 0
        cols = [column[str(c)] for c in order]
        probabilities[np.ix_(held, cols)] = np.asarray(got, dtype=np.float64)
    return probabilities


def _jobs(parts: int, rows: int) -> int:
    import os

    if rows < PARALLEL_MIN_ROWS:
        return 1
    cap = os.environ.get("ORCHESTRATOR_TRAIN_JOBS", "").strip()
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    limit = int(cap) if cap.isdigit() and int(cap) > 0 else (cpus or 1)
    return max(1, min(parts, limit))


def write_held_out(
    path: Path, labels: Sequence[str], predicted: Sequence[Any], confidence: np.ndarray
) -> None:
    """``held_out.csv``: one row per validation row, in its order."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["label", "predicted", "confidence"])
        for label, answer, conf in zip(labels, predicted, confidence, strict=True):
            writer.writerow([label, answer, f"{float(conf):.9g}"])


def read_held_out(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    """(labels, predicted, confidence) from a ``held_out.csv``."""
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    try:
        return (
            [r["label"] for r in rows],
            [r["predicted"] for r in rows],
            np.array([float(r["confidence"]) for r in rows], dtype=np.float64),
        )
    except (KeyError, ValueError) as exc:
        raise DatasetError(
            f"{path} is not a held-out answers file (label, predicted, confidence): {exc}; "
            "rebuild the skill (`orchestrator skills build`)"
        ) from None


def stored_answers(
    version: SkillVersion, labels: Sequence[Any]
) -> tuple[list[Any], np.ndarray] | None:
    """The version's held-out answers on its own validation split, when its manifest declares
    them (a cross-fitted skill), else None (run the skill).

    ``labels`` are the split's labels as the caller read them: the file must hold the same rows
    in the same order, or the split and the answers went apart (DatasetError).
    """
    spec = version.manifest.calibration if version.manifest is not None else None
    name = spec.validation.predictions if spec is not None else None
    if name is None or version.folder is None:
        return None
    path = version.folder / ARTIFACTS_DIRNAME / name
    if not path.is_file():
        raise DatasetError(
            f"skill {version.key} declares held-out answers {name} but {path} is missing; "
            f"rebuild it (`orchestrator skills build {version.name}`)"
        )
    stored, predicted, confidence = read_held_out(path)
    if [str(x) for x in stored] != [str(x) for x in labels]:
        raise DatasetError(
            f"{path} does not answer the rows of {version.key}'s validation split "
            f"({len(stored)} vs {len(labels)} rows, or another order); rebuild the skill "
            f"(`orchestrator skills build {version.name}`)"
        )
    return list(predicted), confidence
