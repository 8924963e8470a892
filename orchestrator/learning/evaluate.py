"""Evaluate a trained skill version on a labelled CSV: accuracy, coverage at the stored threshold,
selective accuracy; and the validation data a version was calibrated on."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.learning.datasets import (
    VAL_FILE,
    CsvTable,
    DatasetError,
    non_empty_column,
    read_csv,
    require_columns,
)
from orchestrator.registry.folders import require_versions, resolve_skills_dir
from orchestrator.registry.kinds import (
    CONFIG_FILE,
    to_number,
)
from orchestrator.registry.manifest import ARTIFACTS_DIRNAME

if TYPE_CHECKING:
    from orchestrator.registry.registry import SkillVersion

__all__ = [
    "batch_from_table",
    "evaluate",
    "load_version",
    "skill_config",
    "validation_data",
]


# ---------------------------------------------------------------------------------------------
# Evaluation


def load_version(ref: str, skills_dir: Path | str | None = None) -> SkillVersion:
    """Resolve ``name``, ``name@alias`` or ``name@version`` among the folders of that name only
    (a broken unrelated skill folder does not get in the way)."""
    from orchestrator.registry.registry import Registry, parse_ref

    name, _ = parse_ref(ref)
    registry = Registry()
    for folder, _ in require_versions(resolve_skills_dir(skills_dir), name).values():
        registry.load_folder(folder)
    return registry.resolve(ref)


def skill_config(version: SkillVersion) -> dict[str, Any] | None:
    if version.folder is None or not (version.folder / CONFIG_FILE).is_file():
        return None
    data: dict[str, Any] = json.loads((version.folder / CONFIG_FILE).read_text(encoding="utf-8"))
    return data


def _coerce(value: str, annotation: Any) -> Any:
    if annotation is bool:
        return value.strip().lower() in {"1", "true", "yes", "y"}
    if annotation is int:
        return int(float(value))
    if annotation is float:
        return to_number(value)
    return value


def batch_from_table(
    version: SkillVersion, table: CsvTable, text_column: str | None = None
) -> dict[str, list[Any]]:
    """The skill's input columns from a CSV: a trained skill's own column names (``text_column``
    overrides a one-field skill's), else columns named like the Input fields."""
    model_fields = version.skill_cls.Input.model_fields
    config = skill_config(version)
    sources = {f: f for f in model_fields}
    if config is not None:
        sources.update({i["field"]: i.get("column", i["field"]) for i in config["inputs"]})
    if text_column is not None:
        if len(model_fields) != 1:
            raise DatasetError(
                f"--text-column: skill {version.name!r} takes {len(model_fields)} input fields "
                f"({', '.join(model_fields)}); name the CSV columns after them instead"
            )
        sources = {next(iter(model_fields)): text_column}
    elif len(model_fields) == 1:
        only = next(iter(model_fields))
        if sources[only] not in table.columns and "text" in table.columns:
            sources[only] = "text"
    require_columns(table, list(sources.values()))
    return {
        f: [_coerce(row[c], model_fields[f].annotation) for row in table.rows]
        for f, c in sources.items()
    }


def evaluate(
    ref: str,
    csv_path: Path | str,
    *,
    skills_dir: Path | str | None = None,
    text_column: str | None = None,
    label_column: str = "label",
    threshold: float | None = None,
    output_field: str | None = None,
    chain: bool = True,
) -> dict[str, Any]:
    """Accuracy, coverage at the stored (or given) threshold, selective accuracy, per-label counts.

    The threshold is the version's calibration (the build record's ``calibration.threshold``) unless given;
    with neither, every item is kept (threshold 0). When the skill has a calibrated chain (a tier
    trained after it, :mod:`orchestrator.learning.chain_eval`) and no threshold is given, the
    top-level ``accuracy``, ``coverage``, ``kept``, ``escalated``, ``selective_accuracy`` and
    ``per_label`` are the chain's, the skill's own figures move under ``single``, and ``tiers``
    has each tier's; ``chain=False`` evaluates the skill alone. ``unseen_labels`` counts the rows
    whose label the skill does not know (they count as wrong).
    """
    import numpy as np

    from orchestrator.learning.calibrate import predict_labels, same_label
    from orchestrator.learning.label_counts import per_label_counts
    from orchestrator.registry.calibrations import stored_threshold

    started = time.perf_counter()
    version = load_version(ref, skills_dir)
    version.verify()
    table = read_csv(csv_path)
    expected = non_empty_column(table, label_column, "label")
    batch = batch_from_table(version, table, text_column)
    predicted, confidence = predict_labels(version.create(), batch, output_field)
    correct = np.array([same_label(p, e) for p, e in zip(predicted, expected, strict=True)])
    source = "given"
    if threshold is None:
        threshold = stored_threshold(version)
        source = "calibration" if threshold is not None else "none (keep all)"
    cut = 0.0 if threshold is None else float(threshold)
    kept = confidence >= cut
    known = getattr(version.skill_cls, "labels", None)
    names = {str(k) for k in known} if known else None
    unseen = Counter(e for e in expected if names is not None and e not in names)
    n, k = len(expected), int(kept.sum())
    report: dict[str, Any] = {
        "skill": version.key,
        "csv": str(csv_path),
        "rows": n,
        "accuracy": round(float(correct.mean()), 4),
        "threshold": cut,
        "threshold_source": source,
        "coverage": round(k / n, 4),
        "kept": k,
        "escalated": n - k,
        "selective_accuracy": round(float(correct[kept].mean()), 4) if k else None,
        "per_label": per_label_counts(expected, predicted, correct, kept),
        "seconds": round(time.perf_counter() - started, 2),
    }
    if unseen:  # rows the skill cannot answer right: they count as wrong (the CLI warns)
        report["unseen_labels"] = dict(sorted(unseen.items()))
    pair = None
    if chain and source == "calibration" and version.folder is not None:
        from orchestrator.learning.chain_eval import chain_report, find_chain

        pair = find_chain(version, version.folder.parent)
    if pair is not None:
        whole = chain_report(version, pair, batch, expected, output_field, per_label=True)
        keys = ("accuracy", "threshold", "coverage", "kept", "escalated", "selective_accuracy")
        report["single"] = {k: report[k] for k in keys}
        report.update(whole)
        report["threshold_source"] = "chain calibration"
        report.pop("threshold")
    report["seconds"] = round(time.perf_counter() - started, 2)
    return report


# ---------------------------------------------------------------------------------------------
# Calibration data


def validation_data(version: SkillVersion) -> tuple[Any, list[str], str, dict[str, float] | None]:
    """The calibration split a skill declares: (inputs, labels, source, label_shares).

    The manifest's ``calibration.validation`` names a CSV among the skill's artifacts (its
    training script writes it) or a path from the project root; a skill trained from a CSV before
    manifests held that block keeps its rows in ``skill.json``'s ``validation_file``. Without
    either, ``--csv`` is needed.
    """
    spec = version.manifest.calibration if version.manifest is not None else None
    if spec is not None and version.folder is not None:
        path = _validation_path(version.folder, spec.validation.file)
        table = read_csv(path)
        labels = non_empty_column(table, spec.validation.label_column, "label")
        source = spec.validation.source or f"{path.name} (stored)"
        shares = dict(spec.label_shares) if spec.label_shares else None
        return batch_from_table(version, table), labels, source, shares
    config = skill_config(version)
    if config is not None and version.artifacts_dir is not None:
        path = version.artifacts_dir / config.get("validation_file", VAL_FILE)
        if path.is_file():
            table = read_csv(path)
            labels = non_empty_column(table, config["label_column"], "label")
            return batch_from_table(version, table), labels, f"{path.name} (stored)", None
    raise DatasetError(
        f"skill {version.name!r} declares no validation split (a `calibration:` block in its "
        "manifest); give --csv with labelled rows"
    )


def _validation_path(folder: Path, file: str) -> Path:
    """A validation file: in the artifacts folder, else from the project root."""
    for path in (folder / ARTIFACTS_DIRNAME / file, folder.parent.parent / file):
        if path.is_file():
            return path
    raise DatasetError(
        f"validation split {file!r} of skill folder {folder.name} is missing (looked in "
        f"{folder / ARTIFACTS_DIRNAME} and {folder.parent.parent}); build the skill with "
        f"`orchestrator skills build {folder.name}`"
    )
