"""Cross-fitting's parts and held-out answers (orchestrator.learning.held_out)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from orchestrator.learning.held_out import fold_count, folds, out_of_fold

LABELS = ["a"] * 12 + ["b"] * 8 + ["c"] * 5


def _fit_predict(fit: list[int], held: list[int]) -> tuple[list[str], np.ndarray]:
    """A 'model' that answers every row with the label shares of the rows it was fitted on."""
    assert not set(fit) & set(held)  # a copy never sees the rows it answers
    counts = Counter(LABELS[i] for i in fit)
    classes = sorted(counts)
    return classes, np.tile([counts[c] / len(fit) for c in classes], (len(held), 1))


def test_every_row_is_held_out_once_in_stratified_parts() -> None:
    parts = folds(LABELS, 0.2)
    assert len(parts) == fold_count(0.2) == 5
    held = [i for _, h in parts for i in h]
    assert sorted(held) == list(range(len(LABELS)))  # each row once
    for fit, h in parts:
        assert sorted(fit + h) == list(range(len(LABELS)))
        assert Counter(LABELS[i] for i in h)["c"] == 1  # 5 rows of 'c' in 5 parts: one each
    assert folds(LABELS, 0.2) == parts  # seeded


def test_out_of_fold_answers_come_from_copies_that_did_not_see_the_row() -> None:
    parts = folds(LABELS, 0.2)
    got = out_of_fold(parts, ["a", "b", "c"], _fit_predict, jobs=1)
    assert got.shape == (len(LABELS), 3)
    for fit, held in parts:
        counts = Counter(LABELS[i] for i in fit)
        expected = [counts[c] / len(fit) for c in "abc"]
        assert np.allclose(got[held], expected)
    # worker processes give the same answers as one process
    assert np.array_equal(out_of_fold(parts, ["a", "b", "c"], _fit_predict, jobs=2), got)


def test_a_class_a_copy_never_saw_gets_probability_zero() -> None:
    def partial(fit: list[int], held: list[int]) -> tuple[list[str], np.ndarray]:
        return ["b", "a"], np.tile([0.25, 0.75], (len(held), 1))

    got = out_of_fold(folds(LABELS, 0.5), ["a", "b", "c"], partial, jobs=1)
    assert np.allclose(got, [0.75, 0.25, 0.0])


@pytest.mark.parametrize("fraction, parts", [(0.2, 5), (0.1, 5), (0.05, 5), (0.5, 2), (0.3, 3)])
def test_parts_follow_the_val_fraction(fraction: float, parts: int) -> None:
    assert fold_count(fraction) == parts
