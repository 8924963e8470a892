"""One training pipeline for the classifiers ``orchestrator skills train`` makes from a labelled CSV.

:func:`train_classifier` reads the CSV, checks the labels, plans the version, splits off a
stratified validation part (seed 0), fits, exports ONNX, checks ONNX Runtime against
scikit-learn on the validation rows, stages the skill folder, calibrates on the validation rows,
records the build and installs the folder (the folder is the registration). What differs between
kinds is the feature step, a :class:`FeatureStep` the kind prepares from the table: which columns
feed the model and how, the unfitted pipeline, its export and how close the export must agree
(:mod:`orchestrator.learning.train` has the text and the tabular one).

Example::

    run = TrainRun(Path("tickets.csv"), name="tickets", skills_dir=Path("skills"))
    # prepare: CsvTable -> FeatureStep (columns, unfitted pipeline, export, bounds)
    report = train_classifier(run, lambda table: my_feature_step(table))
"""

from __future__ import annotations

import shutil
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.errors import DatasetError, SetupError
from orchestrator.learning.calibrate import DEFAULT_CONFIDENCE_LEVEL
from orchestrator.learning.datasets import (
    ONNX_FILE,
    VAL_FILE,
    CsvTable,
    check_labels,
    read_csv,
    stratified_split,
)
from orchestrator.learning.held_out import (
    HELD_OUT_FILE,
    Folds,
    folds,
    out_of_fold,
    write_held_out,
)
from orchestrator.registry.build_record import record_build
from orchestrator.registry.folders import (
    FolderTarget,
    csv_inputs,
    file_digest,
    install_folder,
    output_field_name,
    plan_target,
    resolve_skills_dir,
    staging_folder,
    train_command_line,
    write_folder,
    write_val_csv,
)
from orchestrator.registry.kinds import build_skill_class, class_name, field_name
from orchestrator.registry.manifest import ARTIFACTS_DIRNAME, CalibrationSpec, ValidationSplit

if TYPE_CHECKING:
    import numpy as np

    from orchestrator.learning.calibrate import Calibration
    from orchestrator.registry.registry import SkillVersion

__all__ = ["FeatureStep", "TrainRun", "held_out_probabilities", "train_classifier"]


@dataclass(frozen=True)
class TrainRun:
    """What one ``skills train`` run was asked for, whatever the kind."""

    csv_path: Path
    name: str
    skills_dir: Path
    version: str | None = None
    val_fraction: float = 0.2
    target_accuracy: float = 0.97
    confidence_level: float | None = DEFAULT_CONFIDENCE_LEVEL
    description: str | None = None
    force: bool = False
    #: The traffic mix to calibrate for, when it differs from the CSV's (e.g. ``{"oos": 0.18}``):
    #: the validation rows are weighted so each label has its share.
    label_shares: Mapping[str, float] | None = None
    #: Calibrate on every row's held-out answer (K = 1 / val_fraction parts, at most 5) and fit the skill on
    #: every row (:mod:`orchestrator.learning.held_out`); False: one held-out part, as before.
    cross_fit: bool = True

    @classmethod
    def of(cls, arguments: Mapping[str, Any]) -> TrainRun:
        """The run a public train function was asked for, from its arguments (its ``locals()``
        on entry; those that are no field here, such as the columns, are the kind's): the CSV
        path as a Path, the skills folder resolved. One place, so that every kind's function
        keeps its explicit signature without repeating this list."""
        values = {f.name: arguments[f.name] for f in fields(cls) if f.name in arguments}
        values["csv_path"] = Path(values["csv_path"])
        values["skills_dir"] = resolve_skills_dir(values.get("skills_dir"))
        if values.get("label_shares"):
            values["label_shares"] = {str(k): float(v) for k, v in values["label_shares"].items()}
        return cls(**values)

    def weights(self, labels: Sequence[str]) -> Any:
        """Validation weights for the run's label shares (None: every row counts once)."""
        if not self.label_shares:
            return None
        from orchestrator.learning.calibrate import share_weights

        missing = sorted(set(self.label_shares) - set(labels))
        if missing:
            raise DatasetError(
                f"--label-share names {', '.join(missing)}, which the validation rows do not "
                "hold; name labels of the CSV's label column"
            )
        return share_weights(labels, self.label_shares)

    @property
    def source(self) -> str:
        """Where the validation rows come from, for the calibration record."""
        if self.cross_fit:
            from orchestrator.learning.held_out import fold_count

            return (
                f"{self.csv_path.name} (every row, answered by a model fitted without it: "
                f"{fold_count(self.val_fraction)} parts)"
            )
        return f"{self.csv_path.name} (validation part, {self.val_fraction:.0%})"


@dataclass
class FeatureStep:
    """One kind of classifier, prepared for one CSV: what it plugs into :func:`train_classifier`."""

    kind: str
    label_column: str
    #: One label per row (stripped).
    labels: list[str]
    #: The feature columns, their types ("text", "number", "category") and their cells as the
    #: skill reads them (written to val.csv and fed to the ONNX check), one list per column.
    columns: list[str]
    types: list[str]
    values: list[list[str]]
    #: The unfitted scikit-learn pipeline, and its input for some row indexes.
    pipeline: Any
    rows: Callable[[list[int]], Any]
    #: (fitted pipeline, skill name) -> the ONNX model.
    export: Callable[[Any, str], Any]
    #: classes -> the skill's description when the run gives none.
    describe: Callable[[list[str]], str]
    #: ``model`` in skill.json, and the options after ``--name`` in the manifest's train command.
    model: str
    args: dict[str, Any]
    #: ONNX vs scikit-learn on the validation rows: least label agreement, largest probability
    #: gap, and what to tell the user when the export falls short.
    min_agreement: float
    max_gap: float
    advice: str
    #: A ValueError from fitting -> the DatasetError message (None: let it through).
    fit_error: Callable[[ValueError], str] | None = None
    #: Extra build metrics and extra report keys of this kind.
    metrics: dict[str, Any] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)
    #: Cross-fitted runs (set by :func:`train_classifier`): the parts, and every row's held-out
    #: class probabilities (columns in sorted label order), which a second tier blends with.
    folds: list[tuple[list[int], list[int]]] = field(default_factory=list)
    held_out: Any = None

    @property
    def field_names(self) -> list[str]:
        """The skill's input fields, one per column."""
        return [field_name(c) for c in self.columns]

    def batch(self, indexes: Sequence[int]) -> dict[str, list[str]]:
        """The skill's input for some rows: field -> cells."""
        return {
            f: [v[i] for i in indexes] for f, v in zip(self.field_names, self.values, strict=True)
        }


def train_classifier(run: TrainRun, prepare: Callable[[CsvTable], FeatureStep]) -> dict[str, Any]:
    """Train the classifier ``prepare`` sets up from the run's CSV into a new skill folder.

    Returns the JSON report (also what ``skills train`` prints).
    """
    started = time.perf_counter()
    step = prepare(read_csv(run.csv_path))
    counts = check_labels(step.labels, run.val_fraction, str(run.csv_path), cross_fit=run.cross_fit)
    run.weights(step.labels)  # a share naming a label the CSV lacks fails before any fitting
    target = plan_target(run.skills_dir, run.name, run.version, run.force)
    if run.cross_fit:  # every row is a validation row (held out once) and a training row
        held_out_probabilities(step, folds(step.labels, run.val_fraction))
        train_idx = val_idx = list(range(len(step.labels)))
    else:
        train_idx, val_idx = stratified_split(len(step.labels), step.labels, run.val_fraction)
    converged = _fit(step, train_idx)
    classes = [str(c) for c in step.pipeline.classes_]
    config = _config(step, run, target, classes)
    stage = staging_folder(run.skills_dir, target.folder.name)
    try:
        skill = _stage_skill(stage, step, run, target, config, val_idx)
        agreement, gap = _check_export(step, skill, val_idx, classes)
        metrics = {
            "kind": step.kind,
            "rows": len(step.labels),
            "train_rows": len(train_idx),
            "val_rows": len(val_idx),
            "cross_fit_parts": len(step.folds),
            "labels": len(classes),
            **step.metrics,
            "onnx_agreement": round(agreement, 4),
            "onnx_max_probability_gap": float(f"{gap:.2e}"),
            "converged": converged,
            "source_csv": run.csv_path.name,
            "source_sha256": file_digest(run.csv_path),
        }
        val_labels = [step.labels[i] for i in val_idx]
        answers = _held_out_answers(step, classes)
        result = _finish(
            stage, target, skill, step.batch(val_idx), val_labels, run, metrics, answers
        )
    finally:
        if stage.exists():
            shutil.rmtree(stage)
    result.update(step.report)
    result["label_counts"] = counts
    result["seconds"] = round(time.perf_counter() - started, 2)
    return result


# ---------------------------------------------------------------------------------------------
# Steps


def held_out_probabilities(step: FeatureStep, parts: Folds) -> Any:
    """Every row's class probabilities from a copy of the pipeline fitted without its part;
    kept on ``step`` (with the parts) for a second tier."""
    from sklearn.base import clone

    def fit_predict(fit_rows: list[int], held_rows: list[int]) -> tuple[Any, Any]:
        copy = clone(step.pipeline)
        _fit(step, fit_rows, copy)
        return copy.classes_, copy.predict_proba(step.rows(held_rows))

    step.folds = parts
    step.held_out = out_of_fold(parts, sorted(set(step.labels)), fit_predict)
    return step.held_out


def _held_out_answers(step: FeatureStep, classes: list[str]) -> tuple[list[str], Any] | None:
    """(label, confidence) per row from the held-out probabilities; None when not cross-fitted."""
    if step.held_out is None:
        return None
    if sorted(set(step.labels)) != classes:
        raise SetupError("the pipeline's classes are not the CSV's labels in order; retrain")
    return [classes[i] for i in step.held_out.argmax(1)], step.held_out.max(1)


def _fit(step: FeatureStep, train_idx: list[int], pipeline: Any = None) -> bool:
    """Fit the pipeline (or a copy of it) on some rows; whether the solver converged."""
    pipeline = step.pipeline if pipeline is None else pipeline
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            pipeline.fit(step.rows(train_idx), [step.labels[i] for i in train_idx])
        except ValueError as exc:
            if step.fit_error is None:
                raise
            raise DatasetError(step.fit_error(exc)) from None
    return not any("converge" in str(w.message).lower() for w in caught)


def _config(
    step: FeatureStep, run: TrainRun, target: FolderTarget, classes: list[str]
) -> dict[str, Any]:
    """The skill's ``skill.json``: what the generic skill kind builds the class from."""
    names = step.field_names
    return {
        "kind": step.kind,
        "name": run.name,
        "version": target.version,
        "description": run.description or step.describe(classes),
        "inputs": [
            {"field": f, "column": c, "type": t}
            for f, c, t in zip(names, step.columns, step.types, strict=True)
        ],
        "label_field": output_field_name(step.label_column, names),
        "label_column": step.label_column,
        "labels": classes,
        "model": step.model,
        "validation_file": VAL_FILE,
    }


def _stage_skill(
    stage: Path,
    step: FeatureStep,
    run: TrainRun,
    target: FolderTarget,
    config: dict[str, Any],
    val_idx: list[int],
) -> Any:
    """Write a trained skill's staging folder (ONNX, validation rows, manifest, module) and return
    the skill loaded from it, set up: what the agreement check and calibration run on. The
    manifest's ``train`` command repeats the run, so ``skills build`` can rebuild it."""
    artifacts = stage / ARTIFACTS_DIRNAME
    (artifacts / ONNX_FILE).write_bytes(step.export(step.pipeline, run.name).SerializeToString())
    val_rows = [[v[i] for v in step.values] + [step.labels[i]] for i in val_idx]
    write_val_csv(artifacts / VAL_FILE, [*step.columns, step.label_column], val_rows)
    options = {
        "name": run.name,
        **step.args,
        "version": target.version,
        "val_fraction": run.val_fraction,
        "target_accuracy": run.target_accuracy,
        "confidence_level": run.confidence_level,
        "label_share": [f"{k}={v}" for k, v in (run.label_shares or {}).items()],
        "cross_fit": run.cross_fit,
    }
    calibration = CalibrationSpec(
        validation=ValidationSplit(
            file=VAL_FILE,
            label_column=step.label_column,
            source=run.source,
            predictions=HELD_OUT_FILE if run.cross_fit else None,
        ),
        target_accuracy=run.target_accuracy,
        # None (no margin) is level 0.5: the Wilson bound is then the point estimate
        confidence_level=_level(run.confidence_level),
        label_shares=dict(run.label_shares) if run.label_shares else None,
    )
    entrypoint = write_folder(
        stage,
        skills_dir=run.skills_dir,
        target=target,
        config=config,
        train_command=train_command_line(step.kind, options, run.csv_path, run.skills_dir),
        inputs=csv_inputs(run.csv_path, run.skills_dir),
        calibration=calibration,
    )
    skill_cls = build_skill_class(config, entrypoint.partition(":")[0], class_name(run.name))
    skill = skill_cls(artifacts_dir=artifacts)
    skill.ensure_setup()
    return skill


def _level(confidence_level: float | None) -> float:
    """The Wilson level to calibrate at: None (no margin) is 0.5, the point estimate."""
    return 0.5 if confidence_level is None else confidence_level


def _check_export(
    step: FeatureStep, skill: Any, val_idx: list[int], classes: list[str]
) -> tuple[float, float]:
    """(label agreement, largest probability gap) of ONNX Runtime vs scikit-learn on the
    validation rows; SetupError when the export falls short of the kind's bounds."""
    onnx_labels, onnx_probs = skill.session.run(None, skill.feed(step.batch(val_idx)))[:2]
    expected = step.pipeline.predict_proba(step.rows(val_idx))
    agreement, gap = _compare(onnx_labels, onnx_probs, expected, classes)
    if agreement < step.min_agreement or gap > step.max_gap:
        raise SetupError(
            f"the ONNX export disagrees with scikit-learn on the validation rows (label "
            f"agreement {agreement:.2%}, probability gap {gap:.1e}); {step.advice}"
        )
    return agreement, gap


def _compare(
    onnx_labels: Any, onnx_probs: Any, expected: np.ndarray, classes: list[str]
) -> tuple[float, float]:
    """Label agreement (near-ties excluded) and largest probability gap, ONNX vs scikit-learn."""
    import numpy as np

    predicted = np.asarray(classes, dtype=object)[expected.argmax(axis=1)]
    top2 = np.sort(expected, axis=1)[:, -2:]
    tie = (top2[:, 1] - top2[:, 0]) < 1e-5
    same = (np.asarray(onnx_labels).astype(str) == predicted.astype(str)) | tie
    gap = float(np.abs(np.asarray(onnx_probs, dtype=np.float64) - expected).max())
    return float(same.mean()), gap


def _finish(
    stage: Path,
    target: FolderTarget,
    skill: Any,
    batch: Mapping[str, Sequence[Any]],
    val_labels: list[str],
    run: TrainRun,
    metrics: dict[str, Any],
    answers: tuple[list[str], Any] | None,
) -> dict[str, Any]:
    """Calibrate on the validation rows (their held-out ``answers`` when cross-fitted), record
    the build, install the folder, load it back; the report."""
    from orchestrator.learning.calibrate import predict_labels, write_calibration

    predicted, confidence = answers if answers is not None else predict_labels(skill, batch)
    calibration, accuracy = _calibrate(predicted, confidence, val_labels, run)
    metrics = {"val_accuracy": accuracy, **metrics}
    files = [ONNX_FILE, VAL_FILE]
    if answers is not None:
        write_held_out(stage / ARTIFACTS_DIRNAME / HELD_OUT_FILE, val_labels, predicted, confidence)
        files.append(HELD_OUT_FILE)
    record_build(stage, files, metrics)
    write_calibration(stage, calibration, by="build")
    install_folder(stage, target)
    version = _load(target.folder)  # the folder must load the way the registry will load it
    return _report(version, target, run, metrics, calibration)


def _calibrate(
    predicted: Sequence[Any], confidence: Any, val_labels: list[str], run: TrainRun
) -> tuple[Calibration, float]:
    """The threshold chosen on the validation rows' answers, and their accuracy."""
    import numpy as np

    from orchestrator.learning.calibrate import choose_threshold, same_label

    correct = np.array([same_label(p, e) for p, e in zip(predicted, val_labels, strict=True)])
    calibration = choose_threshold(
        confidence,
        correct,
        run.target_accuracy,
        weights=run.weights(val_labels),
        confidence_level=_level(run.confidence_level),
        on_unreachable="escalate_all",
    )
    shares = dict(run.label_shares) if run.label_shares else None
    calibration = replace(calibration, source=run.source, label_shares=shares)
    return calibration, round(float(correct.mean()), 4)


def _report(
    version: SkillVersion,
    target: FolderTarget,
    run: TrainRun,
    metrics: dict[str, Any],
    calibration: Calibration,
) -> dict[str, Any]:
    """The JSON report of a trained skill (a warning when no threshold reaches the target)."""
    report: dict[str, Any] = {
        "skill": version.key,
        "kind": metrics["kind"],
        "folder": str(target.folder),
        "entrypoint": version.manifest.entrypoint if version.manifest else None,
        "aliases": target.aliases,
        **{
            key: metrics[key]
            for key in ("rows", "train_rows", "val_rows", "cross_fit_parts", "labels")
        },
        "val_accuracy": metrics["val_accuracy"],
        "target_accuracy": run.target_accuracy,
        "confidence_level": run.confidence_level,
        "threshold": calibration.threshold,
        "reachable": calibration.reachable,
        "val_coverage": round(calibration.coverage, 4),
        "val_selective_accuracy": round(calibration.selective_accuracy, 4),
        "onnx_agreement": metrics["onnx_agreement"],
        "onnx_max_probability_gap": metrics["onnx_max_probability_gap"],
    }
    if not calibration.reachable:
        report["warning"] = (
            f"no threshold reaches {run.target_accuracy:.0%} on the validation rows (overall "
            f"accuracy {calibration.accuracy:.1%}); threshold 1.0: every item escalates until "
            "the skill is retrained on more data or calibrated to a lower --target-accuracy"
        )
    return report


def _load(folder: Path) -> SkillVersion:
    from orchestrator.registry.registry import Registry

    return Registry().load_folder(folder)
