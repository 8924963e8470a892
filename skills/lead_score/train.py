"""Train lead_score and export it to ONNX: ``python -m skills.lead_score.train``.

Splits UCI Bank Marketing 80/20 (stratified, fixed seed), fits one-hot encoding + a
GradientBoostingClassifier on the 80 %, exports it with skl2onnx (one ONNX input per feature),
checks that ONNX Runtime reproduces scikit-learn's probabilities on the held-out 20 %, and records
the artifacts' sha256 and the held-out metrics in the build record (``artifacts/build.json``).
Deterministic on one machine: two runs write byte-identical artifacts.

GradientBoostingClassifier, not HistGradientBoosting: the latter's ONNX conversion breaks with
protobuf 7. 200 trees of depth 3 score ROC AUC ~0.80 on the held-out rows (LogisticRegression on
the same features: ~0.79).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.metrics import average_precision_score, precision_score, recall_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from orchestrator.registry.build_record import build_seed, record_build
from orchestrator.registry.manifest import ARTIFACTS_DIRNAME
from skills.data import bank_marketing
from skills.lead_score.skill import CATEGORICAL, FEATURES, LeadScore

FOLDER = Path(__file__).parent
ONNX_FILE = "model.onnx"
#: The fitted scikit-learn pipeline, kept so tests can check the ONNX graph against it.
SKLEARN_FILE = "sklearn.joblib"
#: ONNX opset of the default domain; pinned so a newer onnx package does not change the bytes.
TARGET_OPSET = 17
#: The held-out split is fixed (tests and metrics read the same rows); the build seed moves the
#: trees.
SPLIT_SEED = 0
HELDOUT_FRACTION = 0.2


def split_data() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(training rows, held-out rows) of Bank Marketing: stratified on ``subscribed``, seed 0."""
    rows = bank_marketing()
    labels = [row["subscribed"] for row in rows]
    train, heldout = train_test_split(
        rows, test_size=HELDOUT_FRACTION, stratify=labels, random_state=SPLIT_SEED
    )
    return train, heldout


def features(rows: list[dict[str, Any]]) -> np.ndarray:
    """The model's input matrix: one object column per feature, in :data:`FEATURES` order."""
    return np.array([[row[f] for f in FEATURES] for row in rows], dtype=object)


def labels(rows: list[dict[str, Any]]) -> np.ndarray:
    return np.array([row["subscribed"] for row in rows], dtype=bool)


def build_pipeline(seed: int = 0) -> Pipeline:
    """The unfitted pipeline: one-hot categoricals, numbers as they are, boosted trees."""
    categorical = [i for i, f in enumerate(FEATURES) if f in CATEGORICAL]
    numeric = [i for i, f in enumerate(FEATURES) if f not in CATEGORICAL]
    encode = ColumnTransformer(
        [
            (
                "categorical",
                OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                categorical,
            ),
            ("numeric", "passthrough", numeric),
        ],
        sparse_threshold=0.0,
    )
    trees = GradientBoostingClassifier(
        n_estimators=200, max_depth=3, learning_rate=0.1, random_state=seed
    )
    return Pipeline([("encode", encode), ("classifier", trees)])


def to_onnx(pipeline: Pipeline) -> Any:
    """Convert the fitted pipeline: inputs named after the features, [N, 1] each (float32 for
    numbers, string for categoricals); outputs label and probabilities [N, 2]."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    initial_types = [
        (f, StringTensorType([None, 1]) if f in CATEGORICAL else FloatTensorType([None, 1]))
        for f in FEATURES
    ]
    model = convert_sklearn(
        pipeline,
        name="lead_score",
        initial_types=initial_types,
        options={id(pipeline.named_steps["classifier"]): {"zipmap": False}},
        target_opset=TARGET_OPSET,
    )
    # skl2onnx lists the opset imports in set order, which changes with PYTHONHASHSEED.
    imports = sorted((o.domain, o.version) for o in model.opset_import)
    del model.opset_import[:]
    for domain, version in imports:
        model.opset_import.add(domain=domain, version=version)
    return model


def score_metrics(probability: np.ndarray, subscribed: np.ndarray) -> dict[str, float]:
    """Ranking and threshold metrics of predicted probabilities against outcomes."""
    decided = probability >= LeadScore.threshold
    top_decile = probability >= np.quantile(probability, 0.9)
    base_rate = float(subscribed.mean())
    return {
        "roc_auc": round(float(roc_auc_score(subscribed, probability)), 4),
        "pr_auc": round(float(average_precision_score(subscribed, probability)), 4),
        "base_rate": round(base_rate, 4),
        "precision_at_threshold": round(float(precision_score(subscribed, decided)), 4),
        "recall_at_threshold": round(float(recall_score(subscribed, decided)), 4),
        "top_decile_lift": round(float(subscribed[top_decile].mean()) / base_rate, 2),
    }


def _onnx_gap(path: Path, pipeline: Pipeline, rows: list[dict[str, Any]]) -> float:
    """Largest gap between ONNX Runtime's and scikit-learn's probabilities on ``rows``."""
    skill = LeadScore(artifacts_dir=path.parent)
    skill.ensure_setup()
    columns = {f: [row[f] for row in rows] for f in FEATURES}
    onnx = np.asarray(skill.predict(columns).outputs["subscribe_probability"])
    return float(np.abs(onnx - pipeline.predict_proba(features(rows))[:, 1]).max())


def main() -> None:
    started = time.perf_counter()
    train, heldout = split_data()
    pipeline = build_pipeline(build_seed(FOLDER)).fit(features(train), labels(train))
    fitted = time.perf_counter() - started

    artifacts = FOLDER / ARTIFACTS_DIRNAME
    artifacts.mkdir(exist_ok=True)
    (artifacts / ONNX_FILE).write_bytes(to_onnx(pipeline).SerializeToString())
    joblib.dump(pipeline, artifacts / SKLEARN_FILE, compress=3)

    metrics: dict[str, Any] = score_metrics(
        pipeline.predict_proba(features(heldout))[:, 1], labels(heldout)
    )
    metrics["threshold"] = LeadScore.threshold
    metrics["eval_set"] = f"held-out {HELDOUT_FRACTION:.0%} of {len(train) + len(heldout)} rows"
    gap = _onnx_gap(artifacts / ONNX_FILE, pipeline, heldout)
    if gap > 1e-5:
        raise SystemExit(f"ONNX and scikit-learn probabilities differ by up to {gap:.1e}")
    print(f"held-out: {metrics}, ONNX max probability gap {gap:.1e}")

    record = record_build(FOLDER, [ONNX_FILE, SKLEARN_FILE], metrics)
    sizes = ", ".join(f"{name} {rec.bytes / 1e6:.2f} MB" for name, rec in record.artifacts.items())
    print(f"fit {fitted:.1f}s, total {time.perf_counter() - started:.1f}s; {sizes}")


if __name__ == "__main__":
    main()
