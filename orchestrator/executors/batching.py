"""Split a step's batch into slices a skill accepts (``Skill.max_batch``) and join the answers.

Slices go to the executor concurrently; a worker takes them one after another, so the model never
sees more than ``max_batch`` items at once while the runtime keeps its large chunks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from orchestrator.executors.base import Executor, check_predictions
from orchestrator.registry.registry import SkillVersion
from orchestrator.skill import Batch, Predictions

__all__ = ["predict_sliced"]


async def predict_sliced(
    executor: Executor, skill: SkillVersion, batch: Batch, size: int, where: str
) -> tuple[Predictions, int]:
    """Predictions for the whole batch (checked against the contract), and the calls it took."""
    cap = skill.skill_cls.max_batch
    if cap is None or size <= cap:
        preds = await executor.predict(skill.key, batch)
        return check_predictions(preds, skill, size, where), 1
    bounds = [(start, min(start + cap, size)) for start in range(0, size, cap)]
    slices = [{name: col[a:b] for name, col in batch.items()} for a, b in bounds]
    answers = await asyncio.gather(*(executor.predict(skill.key, s) for s in slices))
    for (a, b), preds in zip(bounds, answers, strict=True):
        check_predictions(preds, skill, b - a, where)
    return _concat(answers), len(slices)


def _concat(parts: Sequence[Predictions]) -> Predictions:
    import numpy as np

    outputs = {name: _join([p.outputs[name] for p in parts]) for name in parts[0].outputs}
    confidence = np.concatenate([np.asarray(p.confidence, dtype=np.float64) for p in parts])
    errors = None
    if any(p.errors is not None for p in parts):
        errors = [e for p in parts for e in (p.errors if p.errors is not None else [None] * len(p))]
    return Predictions(outputs, confidence, errors)


def _join(columns: list[Any]) -> list[Any]:
    joined: list[Any] = []
    for column in columns:
        joined.extend(column.tolist() if hasattr(column, "tolist") else column)
    return joined
