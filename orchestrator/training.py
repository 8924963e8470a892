"""Train a skill from a labelled CSV, evaluate it, calibrate it: ``orchestrator skills train|eval|
calibrate``.

``train_text_classifier`` fits word 1-2 + char 2-5 TF-IDF and logistic regression (the recipe
and its ONNX export are :mod:`orchestrator.tfidf_pipeline`, which turn_intent's build uses too);
``train_tabular_classifier`` fits one-hot categoricals + numbers (median-imputed) and
gradient-boosted trees or logistic regression, exported by skl2onnx. Both split off a stratified
validation part (seed 0), check ONNX Runtime against scikit-learn on it, choose the escalation
threshold on it (:mod:`orchestrator.calibration`) and write a new skill folder (see
:mod:`orchestrator.skill_kinds`): the folder is the registration, nothing else changes. The first
version of a name gets the ``prod`` alias, later ones ``canary``.

Example::

    report = train_text_classifier("tickets.csv", name="tickets", skills_dir="skills")
    report["threshold"], report["val_selective_accuracy"]
    evaluate("tickets", "tickets_test.csv", skills_dir="skills")["selective_accuracy"]

Data problems raise :class:`DatasetError` with what to fix: a missing file or column, fewer than
two labels, too few rows per label, empty texts or labels, ragged rows.
"""

from __future__ import annotations

import shutil
import time
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.build_record import record_build
from orchestrator.calibration import DEFAULT_CONFIDENCE_LEVEL
from orchestrator.csv_table import (
    ONNX_FILE,
    SEED,
    TABULAR_MAX_GAP,
    TABULAR_MIN_AGREEMENT,
    TARGET_OPSET,
    TEXT_MAX_GAP,
    VAL_FILE,
    CsvTable,
    DatasetError,
    check_labels,
    non_empty_column,
    read_csv,
    require_columns,
    stratified_split,
)
from orchestrator.errors import SetupError
from orchestrator.manifest import ARTIFACTS_DIRNAME
from orchestrator.skill_folders import (
    FolderTarget,
    csv_inputs,
    file_digest,
    install_folder,
    output_field_name,
    plan_target,
    resolve_skills_dir,
    shown_labels,
    staging_folder,
    train_command_line,
    write_folder,
    write_val_csv,
)
from orchestrator.skill_kinds import (
    build_skill_class,
    class_name,
    field_name,
    normalize_text,
    to_category,
    to_number,
)

if TYPE_CHECKING:
    import numpy as np

    from orchestrator.calibration import Calibration
    from orchestrator.registry import SkillVersion

__all__ = [
    "detect_types",
    "train_tabular_classifier",
    "train_text_classifier",
]


# ---------------------------------------------------------------------------------------------
# Text classifier


def train_text_classifier(
    csv_path: Path | str,
    *,
    name: str,
    text_column: str = "text",
    label_column: str = "label",
    version: str | None = None,
    skills_dir: Path | str | None = None,
    val_fraction: float = 0.2,
    target_accuracy: float = 0.97,
    confidence_level: float | None = DEFAULT_CONFIDENCE_LEVEL,
    description: str | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Train a TF-IDF + logistic regression text classifier from a CSV into a new skill folder.

    Returns the JSON report (also what ``skills train text-classifier`` prints).
    """

    started = time.perf_counter()
    csv_path = Path(csv_path)
    skills_dir = resolve_skills_dir(skills_dir)
    table = read_csv(csv_path)
    require_columns(table, [text_column, label_column])
    texts = non_empty_column(table, text_column, "text")
    labels = non_empty_column(table, label_column, "label")
    counts = check_labels(labels, val_fraction, str(csv_path))
    target = plan_target(skills_dir, name, version, force)
    train_idx, val_idx = stratified_split(len(texts), labels, val_fraction)

    from orchestrator.tfidf_pipeline import build_pipeline

    pipeline = build_pipeline()
    normalized = [normalize_text(t) for t in texts]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            pipeline.fit([normalized[i] for i in train_idx], [labels[i] for i in train_idx])
        except ValueError as exc:
            raise DatasetError(
                f"{csv_path}: cannot build features from column {text_column!r} ({exc}); the "
                "texts need words that occur in at least two training rows"
            ) from None
    converged = not any("converge" in str(w.message).lower() for w in caught)
    classes = [str(c) for c in pipeline.classes_]
    field = field_name(text_column)
    output = output_field_name(label_column, [field])
    config = {
        "kind": "text-classifier",
        "name": name,
        "version": target.version,
        "description": description
        or (
            f"Classifies a text ({text_column!r} in {csv_path.name}) into one of {len(classes)} "
            f"labels: {shown_labels(classes)}. TF-IDF + logistic regression trained from a CSV; the "
            "confidence is the probability of the chosen label, so escalate items under the "
            "calibrated threshold."
        ),
        "inputs": [{"field": field, "column": text_column, "type": "text"}],
        "label_field": output,
        "label_column": label_column,
        "labels": classes,
        "model": "tfidf-word1-2-char2-5-logreg",
        "validation_file": VAL_FILE,
    }
    stage = staging_folder(skills_dir, target.folder.name)
    try:
        skill = _stage_skill(
            stage,
            _text_onnx(pipeline, name),
            val=([text_column, label_column], [[texts[i], labels[i]] for i in val_idx]),
            kind="text-classifier",
            args={"text_column": text_column, "label_column": label_column},
            options=(val_fraction, target_accuracy, confidence_level),
            csv_path=csv_path,
            skills_dir=skills_dir,
            target=target,
            config=config,
        )
        val_texts = [texts[i] for i in val_idx]
        val_labels = [labels[i] for i in val_idx]
        onnx_labels, onnx_probs = _session_outputs(skill, {field: val_texts})
        expected = pipeline.predict_proba([normalized[i] for i in val_idx])
        agreement, gap = _compare(onnx_labels, onnx_probs, expected, classes)
        if agreement < 1.0 or gap > TEXT_MAX_GAP:
            raise SetupError(
                f"the ONNX export disagrees with scikit-learn on the validation rows (label "
                f"agreement {agreement:.2%}, probability gap {gap:.1e}); please report this"
            )
        result = _finish(
            stage,
            target,
            skill,
            {field: val_texts},
            val_labels,
            target_accuracy,
            confidence_level,
            source=f"{csv_path.name} (validation part, {val_fraction:.0%})",
            metrics={
                "kind": "text-classifier",
                "rows": len(texts),
                "train_rows": len(train_idx),
                "val_rows": len(val_idx),
                "labels": len(classes),
                "onnx_agreement": round(agreement, 4),
                "onnx_max_probability_gap": float(f"{gap:.2e}"),
                "converged": converged,
                "source_csv": csv_path.name,
                "source_sha256": file_digest(csv_path),
            },
        )
    finally:
        if stage.exists():
            shutil.rmtree(stage)
    result["label_counts"] = counts
    result["seconds"] = round(time.perf_counter() - started, 2)
    return result


def _stage_skill(
    stage: Path,
    onnx_model: Any,
    *,
    val: tuple[list[str], list[list[str]]],
    kind: str,
    args: dict[str, Any],
    options: tuple[float, float, float | None],
    csv_path: Path,
    skills_dir: Path,
    target: FolderTarget,
    config: dict[str, Any],
) -> Any:
    """Write a trained skill's staging folder (ONNX, validation rows, manifest, module) and return
    the skill loaded from it, set up: what the agreement check and calibration run on.

    ``options`` are the run's (val_fraction, target_accuracy, confidence_level), recorded in the
    manifest's ``train`` command so ``skills build`` can repeat it."""
    (stage / ARTIFACTS_DIRNAME / ONNX_FILE).write_bytes(onnx_model.SerializeToString())
    write_val_csv(stage / ARTIFACTS_DIRNAME / VAL_FILE, *val)
    val_fraction, target_accuracy, confidence_level = options
    name = config["name"]
    command = train_command_line(
        kind,
        {
            "name": name,
            **args,
            "version": target.version,
            "val_fraction": val_fraction,
            "target_accuracy": target_accuracy,
            "confidence_level": confidence_level,
        },
        csv_path,
        skills_dir,
    )
    from orchestrator.manifest import CalibrationSpec, ValidationSplit

    calibration = CalibrationSpec(
        validation=ValidationSplit(
            file=VAL_FILE,
            label_column=config["label_column"],
            source=f"{csv_path.name} (validation part, {val_fraction:.0%})",
        ),
        target_accuracy=target_accuracy,
        # None (no margin) is level 0.5: the Wilson bound is then the point estimate
        confidence_level=0.5 if confidence_level is None else confidence_level,
    )
    entrypoint = write_folder(
        stage,
        skills_dir=skills_dir,
        target=target,
        config=config,
        train_command=command,
        inputs=csv_inputs(csv_path, skills_dir),
        calibration=calibration,
    )
    skill = build_skill_class(config, entrypoint.partition(":")[0], class_name(name))(
        artifacts_dir=stage / ARTIFACTS_DIRNAME
    )
    skill.ensure_setup()
    return skill


def _text_onnx(pipeline: Any, name: str) -> Any:
    """turn_intent's export of the pipeline; a binary problem is first rewritten as two classes.

    scikit-learn keeps one weight row for two classes (p1 = sigmoid(z)); turn_intent's graph takes
    a softmax over one row per class, and softmax([-z/2, z/2]) = [1 - sigmoid(z), sigmoid(z)].
    """
    import copy

    import numpy as np
    from sklearn.pipeline import Pipeline

    from orchestrator.tfidf_pipeline import to_onnx

    classifier = pipeline.named_steps["classifier"]
    if len(classifier.classes_) == 2:
        twin = copy.copy(classifier)
        twin.coef_ = np.vstack([-classifier.coef_ / 2, classifier.coef_ / 2])
        twin.intercept_ = np.concatenate([-classifier.intercept_ / 2, classifier.intercept_ / 2])
        pipeline = Pipeline([("features", pipeline.named_steps["features"]), ("classifier", twin)])
    model = to_onnx(pipeline)
    model.graph.name = name
    model.producer_name = "orchestrator.training"
    return model


def _session_outputs(skill: Any, batch: Mapping[str, Sequence[Any]]) -> tuple[Any, Any]:
    """The ONNX session's (labels, probabilities) for a batch, through the skill's own feed."""
    labels, probabilities = skill.session.run(None, skill.feed(batch))[:2]
    return labels, probabilities


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
    target_accuracy: float,
    confidence_level: float | None,
    *,
    source: str,
    metrics: dict[str, Any],
) -> dict[str, Any]:
    """Calibrate on the validation rows, record the build, install the folder, load it back."""
    import numpy as np

    from orchestrator.calibration import choose_threshold, predict_labels, same_label
    from orchestrator.calibration import write_calibration as store

    predicted, confidence = predict_labels(skill, batch)
    correct = np.array([same_label(p, e) for p, e in zip(predicted, val_labels, strict=True)])
    calibration: Calibration = choose_threshold(
        confidence,
        correct,
        target_accuracy,
        confidence_level=0.5 if confidence_level is None else confidence_level,
        on_unreachable="escalate_all",
    )
    from dataclasses import replace

    calibration = replace(calibration, source=source)
    metrics = {"val_accuracy": round(float(correct.mean()), 4), **metrics}
    record_build(stage, [ONNX_FILE, VAL_FILE], metrics)
    store(stage, calibration, by="build")
    install_folder(stage, target)
    version = _load(target.folder)  # the folder must load the way the registry will load it
    if calibration.reachable:
        note = None
    else:
        note = (
            f"no threshold reaches {target_accuracy:.0%} on the validation rows (overall "
            f"accuracy {calibration.accuracy:.1%}); threshold 1.0: every item escalates until "
            "the skill is retrained on more data or calibrated to a lower --target-accuracy"
        )
    report: dict[str, Any] = {
        "skill": version.key,
        "kind": metrics["kind"],
        "folder": str(target.folder),
        "entrypoint": version.manifest.entrypoint if version.manifest else None,
        "aliases": target.aliases,
        "rows": metrics["rows"],
        "train_rows": metrics["train_rows"],
        "val_rows": metrics["val_rows"],
        "labels": metrics["labels"],
        "val_accuracy": metrics["val_accuracy"],
        "target_accuracy": target_accuracy,
        "confidence_level": confidence_level,
        "threshold": calibration.threshold,
        "reachable": calibration.reachable,
        "val_coverage": round(calibration.coverage, 4),
        "val_selective_accuracy": round(calibration.selective_accuracy, 4),
        "onnx_agreement": metrics["onnx_agreement"],
        "onnx_max_probability_gap": metrics["onnx_max_probability_gap"],
    }
    if note:
        report["warning"] = note
    return report


def _load(folder: Path) -> SkillVersion:
    from orchestrator.registry import Registry

    return Registry().load_folder(folder)


# ---------------------------------------------------------------------------------------------
# Tabular classifier

#: A categorical column with more distinct values than this share of rows (and over 50) looks
#: like an identifier or free text: skipped unless named in --feature-columns.
_ID_LIKE_SHARE = 0.5


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def detect_types(table: CsvTable, columns: Sequence[str]) -> dict[str, str]:
    """Column -> "number" (every non-empty cell parses as a number) or "category"."""
    types: dict[str, str] = {}
    for column in columns:
        cells = [v.strip() for v in table.column(column) if v.strip()]
        types[column] = "number" if cells and all(_is_number(v) for v in cells) else "category"
    return types


def train_tabular_classifier(
    csv_path: Path | str,
    *,
    name: str,
    label_column: str = "label",
    feature_columns: Sequence[str] | None = None,
    model: str = "gbm",
    version: str | None = None,
    skills_dir: Path | str | None = None,
    val_fraction: float = 0.2,
    target_accuracy: float = 0.97,
    confidence_level: float | None = DEFAULT_CONFIDENCE_LEVEL,
    description: str | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Train a classifier of rows (numeric + categorical columns) from a CSV into a skill folder.

    ``model``: ``gbm`` (GradientBoostingClassifier, 200 trees of depth 3, as lead_score) or
    ``logreg`` (standardized numbers, LogisticRegression: faster with many labels).
    """
    import numpy as np

    started = time.perf_counter()
    if model not in ("gbm", "logreg"):
        raise DatasetError(f"--model {model!r}: choose 'gbm' or 'logreg'")
    csv_path = Path(csv_path)
    skills_dir = resolve_skills_dir(skills_dir)
    table = read_csv(csv_path)
    require_columns(table, [label_column])
    labels = non_empty_column(table, label_column, "label")
    skipped: list[str] = []
    if feature_columns:
        columns = [c.strip() for c in feature_columns if c.strip()]
        require_columns(table, columns)
        if label_column in columns:
            raise DatasetError(f"the label column {label_column!r} cannot also be a feature")
        types = detect_types(table, columns)
    else:
        columns = [c for c in table.columns if c != label_column]
        types = detect_types(table, columns)
        for column in list(columns):
            distinct = len({v.strip() for v in table.column(column)})
            if types[column] == "category" and distinct > max(50, _ID_LIKE_SHARE * len(labels)):
                skipped.append(column)
                columns.remove(column)
    if not columns:
        raise DatasetError(f"{csv_path} has no feature columns besides {label_column!r}")
    fields = [field_name(c) for c in columns]
    clash = sorted(f for f, n in Counter(fields).items() if n > 1)
    if clash:
        raise DatasetError(f"columns {columns} give clashing field names {clash}; rename them")
    counts = check_labels(labels, val_fraction, str(csv_path))
    target = plan_target(skills_dir, name, version, force)
    train_idx, val_idx = stratified_split(len(labels), labels, val_fraction)

    kinds = [types[c] for c in columns]
    matrix = np.array(
        [
            [
                to_number(row[c]) if k == "number" else to_category(row[c])
                for c, k in zip(columns, kinds, strict=True)
            ]
            for row in table.rows
        ],
        dtype=object,
    )
    pipeline = _tabular_pipeline(kinds, model)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pipeline.fit(matrix[train_idx], [labels[i] for i in train_idx])
    converged = not any("converge" in str(w.message).lower() for w in caught)
    classes = [str(c) for c in pipeline.classes_]
    output = output_field_name(label_column, fields)
    config = {
        "kind": "tabular-classifier",
        "name": name,
        "version": target.version,
        "description": description
        or (
            f"Classifies a row of {len(columns)} fields ({shown_labels(fields)}) from {csv_path.name} "
            f"into one of {len(classes)} labels: {shown_labels(classes)}. "
            f"{'Gradient-boosted trees' if model == 'gbm' else 'Logistic regression'} trained "
            "from a CSV; the confidence is the probability of the chosen label."
        ),
        "inputs": [
            {"field": f, "column": c, "type": k}
            for f, c, k in zip(fields, columns, kinds, strict=True)
        ],
        "label_field": output,
        "label_column": label_column,
        "labels": classes,
        "model": model,
        "validation_file": VAL_FILE,
    }
    stage = staging_folder(skills_dir, target.folder.name)
    try:
        skill = _stage_skill(
            stage,
            _tabular_onnx(pipeline, fields, kinds, name),
            val=(
                [*columns, label_column],
                [[table.rows[i][c] for c in columns] + [labels[i]] for i in val_idx],
            ),
            kind="tabular-classifier",
            args={
                "label_column": label_column,
                "feature_columns": ",".join(columns),
                "model": model,
            },
            options=(val_fraction, target_accuracy, confidence_level),
            csv_path=csv_path,
            skills_dir=skills_dir,
            target=target,
            config=config,
        )
        batch = {
            f: [table.rows[i][c] for i in val_idx] for f, c in zip(fields, columns, strict=True)
        }
        onnx_labels, onnx_probs = _session_outputs(skill, batch)
        expected = pipeline.predict_proba(matrix[val_idx])
        agreement, gap = _compare(onnx_labels, onnx_probs, expected, classes)
        if agreement < TABULAR_MIN_AGREEMENT or gap > TABULAR_MAX_GAP:
            raise SetupError(
                f"the ONNX export disagrees with scikit-learn on the validation rows (label "
                f"agreement {agreement:.2%}, probability gap {gap:.1e}); try --model logreg"
            )
        result = _finish(
            stage,
            target,
            skill,
            batch,
            [labels[i] for i in val_idx],
            target_accuracy,
            confidence_level,
            source=f"{csv_path.name} (validation part, {val_fraction:.0%})",
            metrics={
                "kind": "tabular-classifier",
                "model": model,
                "rows": len(labels),
                "train_rows": len(train_idx),
                "val_rows": len(val_idx),
                "labels": len(classes),
                "features": len(columns),
                "onnx_agreement": round(agreement, 4),
                "onnx_max_probability_gap": float(f"{gap:.2e}"),
                "converged": converged,
                "source_csv": csv_path.name,
                "source_sha256": file_digest(csv_path),
            },
        )
    finally:
        if stage.exists():
            shutil.rmtree(stage)
    result["features"] = dict(zip(fields, kinds, strict=True))
    if skipped:
        result["skipped_columns"] = skipped
    result["label_counts"] = counts
    result["seconds"] = round(time.perf_counter() - started, 2)
    return result


def _tabular_pipeline(kinds: Sequence[str], model: str) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    categorical = [i for i, k in enumerate(kinds) if k == "category"]
    numeric = [i for i, k in enumerate(kinds) if k == "number"]
    parts: list[tuple[str, Any, list[int]]] = []
    if categorical:
        parts.append(
            (
                "categorical",
                OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                categorical,
            )
        )
    if numeric:
        steps: list[tuple[str, Any]] = [
            ("impute", SimpleImputer(strategy="median", keep_empty_features=True))
        ]
        if model == "logreg":
            steps.append(("scale", StandardScaler()))
        parts.append(("numeric", Pipeline(steps), numeric))
    encode = ColumnTransformer(parts, sparse_threshold=0.0)
    classifier: Any
    if model == "gbm":
        classifier = GradientBoostingClassifier(
            n_estimators=200, max_depth=3, learning_rate=0.1, random_state=SEED
        )
    else:
        classifier = LogisticRegression(C=1.0, max_iter=2000, random_state=SEED)
    return Pipeline([("encode", encode), ("classifier", classifier)])


def _tabular_onnx(pipeline: Any, fields: Sequence[str], kinds: Sequence[str], name: str) -> Any:
    """skl2onnx conversion: one [N, 1] input per field (float32 numbers, string categories);
    outputs label and probabilities (zipmap off), opset imports sorted for stable bytes."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    initial_types = [
        (f, FloatTensorType([None, 1]) if k == "number" else StringTensorType([None, 1]))
        for f, k in zip(fields, kinds, strict=True)
    ]
    model = convert_sklearn(
        pipeline,
        name=name,
        initial_types=initial_types,
        options={id(pipeline.named_steps["classifier"]): {"zipmap": False}},
        target_opset=TARGET_OPSET,
    )
    imports = sorted((o.domain, o.version) for o in model.opset_import)
    del model.opset_import[:]
    for domain, opset in imports:
        model.opset_import.add(domain=domain, version=opset)
    return model
