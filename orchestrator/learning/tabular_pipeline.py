"""The tabular classifier: one-hot categoricals + median-imputed numbers, then gradient-boosted
trees or a logistic regression, and its ONNX export by skl2onnx (one [N, 1] input per field).

Used by ``orchestrator skills train tabular-classifier``
(:func:`orchestrator.learning.train.train_tabular_classifier`).

Example::

    kinds = detect_types(table, ["age", "job"])            # {"age": "number", "job": "category"}
    pipeline = build_pipeline(list(kinds.values()), "gbm").fit(matrix, labels)
    model = to_onnx(pipeline, ["age", "job"], list(kinds.values()), "leads")
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from orchestrator.learning.datasets import SEED, TARGET_OPSET, CsvTable

__all__ = ["MODELS", "build_pipeline", "detect_types", "to_onnx"]

#: The classifiers on offer: ``gbm`` (200 trees of depth 3, as lead_score) or ``logreg``
#: (standardized numbers; faster with many labels).
MODELS = ("gbm", "logreg")


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


def build_pipeline(kinds: Sequence[str], model: str) -> Any:
    """The unfitted scikit-learn pipeline for columns of these kinds ("number", "category")."""
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


def to_onnx(pipeline: Any, fields: Sequence[str], kinds: Sequence[str], name: str) -> Any:
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
