"""``orchestrator kb eval``: how a KB version answers labelled questions it has never seen.

For each question the base retrieves its top answer ids; the report gives

- ``top1_accuracy`` and ``top5_accuracy``: the right id first, or among the first five (what a
  grounded escalation shows the big model);
- ``coverage`` and ``selective_accuracy`` at the calibrated threshold: the share of questions the
  base answers alone, and the share of those it gets right (the rest go to the big model);
- ``seconds_per_1000``: wall time per 1,000 questions, embedding included, in batches.

Example::

    report = evaluate_kb(registry.resolve("outbound_faq@prod"), questions)
    report["coverage"], report["selective_accuracy"]
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from orchestrator.errors import DatasetError, SetupError
from orchestrator.kb.entries import KeyText
from orchestrator.kb.skill import RetrievalSkill

if TYPE_CHECKING:
    from orchestrator.registry.registry import SkillVersion

__all__ = ["evaluate_kb"]


def evaluate_kb(
    version: SkillVersion, questions: Sequence[KeyText], threshold: float | None = None
) -> dict[str, Any]:
    """The report above for ``questions`` (text and right answer id); ``threshold`` overrides the
    calibrated one."""
    from orchestrator.registry.calibrations import stored_threshold

    if not questions:
        raise DatasetError("no labelled questions to evaluate on")
    version.verify()
    skill = version.create()
    if not isinstance(skill, RetrievalSkill):
        raise SetupError(f"{version.key} is not a knowledge base (its kind is not 'retrieval')")
    skill.ensure_setup()
    if threshold is None:
        threshold = stored_threshold(version)
    texts = [q.text for q in questions]
    batch: dict[str, list[Any]] = {"text": texts}
    if skill.answer_on:
        batch["when"] = [skill.answer_on[0]] * len(texts)
    started = time.perf_counter()
    candidates: list[list[str]] = []
    confidence: list[float] = []
    step = skill.max_batch or len(texts)
    for start in range(0, len(texts), step):
        chunk = {k: v[start : start + step] for k, v in batch.items()}
        predictions = skill.predict(chunk)
        candidates += list(predictions.outputs["candidates"])
        confidence += [float(c) for c in predictions.confidence]
    seconds = time.perf_counter() - started
    truth = [q.answer_id for q in questions]
    top1 = np.array([bool(c) and c[0] == t for c, t in zip(candidates, truth, strict=True)])
    top5 = np.array([t in c[:5] for c, t in zip(candidates, truth, strict=True)])
    report: dict[str, Any] = {
        "kb": version.key,
        "questions": len(questions),
        "unknown_ids": len({t for t in truth} - set(skill.base.answers)),
        "top1_accuracy": round(float(top1.mean()), 4),
        "top5_accuracy": round(float(top5.mean()), 4),
        "threshold": threshold,
        "coverage": None,
        "selective_accuracy": None,
        "seconds_per_1000": round(1000 * seconds / len(questions), 3),
        "index": skill.index_method,
    }
    if threshold is not None:
        kept = np.asarray(confidence) >= threshold
        report["coverage"] = round(float(kept.mean()), 4)
        report["selective_accuracy"] = round(float(top1[kept].mean()), 4) if kept.any() else None
    return report
