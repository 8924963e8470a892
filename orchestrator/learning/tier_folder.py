"""Writing, checking, calibrating and installing the embedding tier's skill folder.

The model side is :mod:`orchestrator.learning.embedding_tier`; this module does what every
trained folder needs (:mod:`orchestrator.learning.trainer` does the same for the first tier): a
staging folder, ONNX Runtime checked against the numbers the training computed, the build record,
the single and chain calibrations on the first tier's validation rows, then the atomic install.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from orchestrator.errors import SetupError
from orchestrator.learning.datasets import ONNX_FILE, VAL_FILE
from orchestrator.learning.held_out import HELD_OUT_FILE, write_held_out
from orchestrator.registry.manifest import ARTIFACTS_DIRNAME

if TYPE_CHECKING:
    from orchestrator.embedding.artifact import EncoderArtifact
    from orchestrator.learning.trainer import TrainRun
    from orchestrator.registry.registry import SkillVersion

__all__ = ["TIER_SUFFIX", "TierData", "stage_tier", "tier_name"]

TFIDF_FILE = "tfidf.onnx"
#: ``NAME`` -> ``NAME_minilm``.
TIER_SUFFIX = "_minilm"
#: ONNX Runtime vs numpy on the blended probabilities (float32 sums).
MAX_GAP = 1e-4


def tier_name(name: str) -> str:
    """The embedding tier's skill name for a first tier ``name``."""
    return f"{name}{TIER_SUFFIX}"


@dataclass(frozen=True)
class TierData:
    """The rows the first tier was trained and validated on, as the second tier needs them."""

    texts: list[str]
    labels: list[str]
    train_idx: list[int]
    val_idx: list[int]
    text_column: str
    label_column: str
    #: Cross-fitted (:mod:`orchestrator.learning.held_out`): the first tier's parts and every
    #: row's held-out probabilities from it; empty / None: one held-out part (``val_idx``).
    folds: list[tuple[list[int], list[int]]] = field(default_factory=list)
    first_held_out: Any = None


def stage_tier(
    run: TrainRun,
    first: SkillVersion,
    data: TierData,
    artifact: EncoderArtifact,
    model: Any,
    weight: float,
    expected: np.ndarray,
    held_out: np.ndarray | None = None,
    *,
    pooling: str,
) -> dict[str, Any]:
    """Install the tier; its report (single and chain calibration on the validation rows, or on
    their ``held_out`` blended probabilities when cross-fitted). ``weight`` and ``pooling`` say
    how ``model`` blends the two tiers (recorded in ``skill.json``)."""
    from orchestrator.registry.folders import install_folder, plan_target, staging_folder

    target = plan_target(run.skills_dir, tier_name(first.name), first.version, run.force)
    stage = staging_folder(run.skills_dir, target.folder.name)
    try:
        blend = {"tfidf_weight": weight, "pooling": pooling}
        skill = _write(stage, run, first, data, artifact, model, blend, target, held_out)
        val_texts = [data.texts[i] for i in data.val_idx]
        got = skill.session.run(None, skill.feed({skill.text_field: val_texts}))[0]
        gap = float(np.abs(np.asarray(got, dtype=np.float64) - expected).max())
        if gap > MAX_GAP:
            raise SetupError(f"the tier's ONNX head differs from numpy by {gap:.1e} on val")
        val_labels = [data.labels[i] for i in data.val_idx]
        answers = None if held_out is None else _answers(held_out, skill.labels)
        single, accuracy = _calibrate_alone(stage, skill, val_texts, val_labels, run, gap, answers)
        install_folder(stage, target)
    finally:
        if stage.exists():
            shutil.rmtree(stage)
    version = _load(target.folder)
    chain = _calibrate_chain(version, first, val_texts, val_labels, run)
    return {
        "skill": version.key,
        "folder": str(target.folder),
        "aliases": target.aliases,
        "after": first.key,
        "encoder": {"name": artifact.name, "sha256": artifact.sha256},
        "val_accuracy": accuracy,
        "threshold": single.threshold,
        "val_coverage": round(single.coverage, 4),
        "chain": chain.summary(),
        "onnx_max_probability_gap": float(f"{gap:.2e}"),
    }


def _write(
    stage: Any,
    run: TrainRun,
    first: SkillVersion,
    data: TierData,
    artifact: EncoderArtifact,
    model: Any,
    blend: dict[str, Any],
    target: Any,
    held_out: np.ndarray | None,
) -> Any:
    """The staged folder (head, the first tier's model, its val rows, manifest), loaded."""
    from orchestrator.learning.chain_calibrate import DEFAULT_CHAIN_CONFIDENCE_LEVEL
    from orchestrator.learning.evaluate import skill_config
    from orchestrator.registry.folders import csv_inputs, train_command_line, write_folder
    from orchestrator.registry.kinds import build_skill_class, class_name
    from orchestrator.registry.manifest import ARTIFACTS_DIRNAME, CalibrationSpec, ValidationSplit

    assert first.artifacts_dir is not None
    base: dict[str, Any] = skill_config(first) or {}
    artifacts = stage / ARTIFACTS_DIRNAME
    (artifacts / ONNX_FILE).write_bytes(model.SerializeToString())
    shutil.copyfile(first.artifacts_dir / ONNX_FILE, artifacts / TFIDF_FILE)
    shutil.copyfile(first.artifacts_dir / VAL_FILE, artifacts / VAL_FILE)
    name = tier_name(first.name)
    config: dict[str, Any] = {
        **{k: base[k] for k in ("inputs", "label_field", "label_column", "labels") if k in base},
        "kind": "embedding-classifier",
        "name": name,
        "version": target.version,
        "description": (
            f"Second opinion for {first.name}, dearer and more accurate: the text's sentence "
            f"embedding ({artifact.name}) through a linear head, blended with {first.name}'s "
            "TF-IDF scores. Put it in the escalation chain of a step on "
            f"{first.name}, before the big model."
        ),
        "label_set": first.name,
        "model": "minilm-logreg-tfidf-blend",
        **blend,
        "after": first.name,
        "encoder": {"name": artifact.name, "sha256": artifact.sha256},
        "validation_file": VAL_FILE,
    }
    options = {
        "name": first.name,
        "text_column": data.text_column,
        "label_column": data.label_column,
        "version": target.version,
        "val_fraction": run.val_fraction,
        "target_accuracy": run.target_accuracy,
        "confidence_level": run.confidence_level,
        "tiers": "minilm",
        "label_share": [f"{k}={v}" for k, v in (run.label_shares or {}).items()],
        "cross_fit": held_out is not None,
    }
    inputs = csv_inputs(run.csv_path, run.skills_dir).model_copy(update={"skills": [first.name]})
    entrypoint = write_folder(
        stage,
        skills_dir=run.skills_dir,
        target=target,
        config=config,
        train_command=train_command_line("text-classifier", options, run.csv_path, run.skills_dir),
        inputs=inputs,
        calibration=CalibrationSpec(
            validation=ValidationSplit(
                file=VAL_FILE,
                label_column=data.label_column,
                source=run.source,
                predictions=HELD_OUT_FILE if held_out is not None else None,
            ),
            target_accuracy=run.target_accuracy,
            confidence_level=0.5 if run.confidence_level is None else run.confidence_level,
            chain_confidence_level=DEFAULT_CHAIN_CONFIDENCE_LEVEL,
            label_shares=dict(run.label_shares) if run.label_shares else None,
        ),
    )
    cls = build_skill_class(config, entrypoint.partition(":")[0], class_name(name))
    skill = cls(artifacts_dir=artifacts)
    skill.ensure_setup()
    return skill


def _answers(probabilities: np.ndarray, classes: Any) -> tuple[list[Any], np.ndarray]:
    names = np.asarray(list(classes), dtype=object)
    return list(names[probabilities.argmax(1)]), probabilities.max(1)


def _calibrate_alone(
    stage: Any,
    skill: Any,
    texts: list[str],
    labels: list[str],
    run: TrainRun,
    gap: float,
    answers: tuple[list[Any], np.ndarray] | None,
) -> tuple[Any, float]:
    from dataclasses import replace

    from orchestrator.learning.calibrate import (
        choose_threshold,
        predict_labels,
        same_label,
        write_calibration,
    )
    from orchestrator.registry.build_record import record_build

    if answers is None:
        predicted, confidence = predict_labels(skill, {skill.text_field: texts})
    else:  # cross-fitted: the rows trained the head too
        predicted, confidence = answers
        write_held_out(stage / ARTIFACTS_DIRNAME / HELD_OUT_FILE, labels, predicted, confidence)
    correct = np.array([same_label(p, e) for p, e in zip(predicted, labels, strict=True)])
    accuracy = round(float(correct.mean()), 4)
    metrics = {
        "kind": "embedding-classifier",
        "val_accuracy": accuracy,
        "val_rows": len(labels),
        "onnx_max_probability_gap": float(f"{gap:.2e}"),
        "encoder_sha256": skill.encoder_sha256,
    }
    files = [ONNX_FILE, TFIDF_FILE, VAL_FILE] + ([HELD_OUT_FILE] if answers is not None else [])
    record_build(stage, files, metrics)
    calibration = choose_threshold(
        confidence,
        correct,
        run.target_accuracy,
        weights=run.weights(labels),
        confidence_level=0.5 if run.confidence_level is None else run.confidence_level,
        on_unreachable="escalate_all",
    )
    shares = dict(run.label_shares) if run.label_shares else None
    calibration = replace(calibration, source=run.source, label_shares=shares)
    write_calibration(stage, calibration, by="build")
    return calibration, accuracy


def _calibrate_chain(
    version: SkillVersion, first: SkillVersion, texts: list[str], labels: list[str], run: TrainRun
) -> Any:
    from orchestrator.learning.chain_calibrate import (
        DEFAULT_CHAIN_CONFIDENCE_LEVEL,
        calibrate_after,
    )

    return calibrate_after(
        version,
        first,
        texts,
        labels,
        run.target_accuracy,
        label_shares=run.label_shares,
        confidence_level=DEFAULT_CHAIN_CONFIDENCE_LEVEL,
        source=run.source,
        by="build",
        own_split=True,  # the validation rows: a cross-fitted tier's held-out answers
    )


def _load(folder: Any) -> SkillVersion:
    from orchestrator.registry.registry import Registry

    return Registry().load_folder(folder)
