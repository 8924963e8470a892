"""The executor interface: where skill predictions actually run.

An executor hosts one worker per skill version and answers batched predict calls. ``local`` runs
them in this process (unit tests, notebooks); ``ray`` runs them as Ray actors on a local or remote
cluster. Both pass one conformance suite (``tests/test_executor_conformance.py``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from orchestrator.errors import SkillRunError
from orchestrator.registry.registry import SkillVersion
from orchestrator.skill import Batch, Predictions

__all__ = ["Executor", "check_predictions"]


class Executor(ABC):
    """Hosts skill workers and runs batched predictions on them."""

    #: Short name used in config and on the CLI (``local``, ``ray``).
    name: str

    @abstractmethod
    async def start(self, skills: Sequence[SkillVersion]) -> None:
        """Start (or reuse) a worker for each skill version and load its model.

        Raises SetupError/ExecutorError when a worker cannot load its skill, so a broken model
        fails the job before any item is processed. Calling it again with more skills adds them.
        """

    @abstractmethod
    async def predict(self, skill_key: str, batch: Batch) -> Predictions:
        """Run one batch on the worker for ``skill_key`` (``name@version``)."""

    @abstractmethod
    async def close(self) -> None:
        """Stop the workers this executor started."""


def check_predictions(preds: Any, skill: SkillVersion, size: int, where: str) -> Predictions:
    """Raise SkillRunError unless ``preds`` holds one output per item and confidences in [0, 1]."""
    import numpy as np

    if not isinstance(preds, Predictions):
        raise SkillRunError(
            f"{where}: {skill.key} returned {type(preds).__name__}, not Predictions"
        )
    expected = set(skill.skill_cls.Output.model_fields)
    if set(preds.outputs) != expected:
        raise SkillRunError(
            f"{where}: {skill.key} returned columns {sorted(preds.outputs)}, "
            f"its Output declares {sorted(expected)}"
        )
    lengths = {name: len(col) for name, col in preds.outputs.items()}
    lengths["confidence"] = len(preds.confidence)
    if preds.errors is not None:
        lengths["errors"] = len(preds.errors)
    bad = {k: n for k, n in lengths.items() if n != size}
    if bad:
        raise SkillRunError(f"{where}: {skill.key} got {size} items but returned lengths {bad}")
    confidence = np.asarray(preds.confidence, dtype=np.float64)
    if size and (np.isnan(confidence).any() or confidence.min() < 0 or confidence.max() > 1):
        raise SkillRunError(f"{where}: {skill.key} returned a confidence outside [0, 1]")
    return preds
