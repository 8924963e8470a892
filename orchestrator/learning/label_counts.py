"""Per-label counts of an evaluation: how many rows of each label there were, how many were
answered right, kept (not escalated), kept and right, and how often the label was predicted.

``skills eval`` reports them for what answered each row: the skill alone, or its chain (the tier
that kept the row, else the second tier's answer).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["per_label_counts"]


def per_label_counts(
    expected: Sequence[str], predicted: Sequence[Any], correct: Any, kept: Any
) -> dict[str, dict[str, int]]:
    """Per label (true or predicted): rows, correct, kept, kept and correct, predicted."""
    right, held = np.asarray(correct, dtype=bool), np.asarray(kept, dtype=bool)
    counts: dict[str, dict[str, int]] = {}
    for label in sorted(set(expected) | {str(p) for p in predicted if p is not None}):
        truth = np.array([e == label for e in expected], dtype=bool)
        guess = np.array([p is not None and str(p) == label for p in predicted], dtype=bool)
        counts[label] = {
            "rows": int(truth.sum()),
            "correct": int((truth & right).sum()),
            "kept": int((truth & held).sum()),
            "kept_correct": int((truth & held & right).sum()),
            "predicted": int(guess.sum()),
        }
    return counts
