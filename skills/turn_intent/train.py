"""Train turn_intent and export it to ONNX: ``python -m skills.turn_intent.train``.

Fits word 1-2 + char 2-5 TF-IDF features and a multinomial logistic regression on CLINC150 train +
oos_train, exports the pipeline with skl2onnx, checks that ONNX Runtime reproduces scikit-learn on
the evaluation sets, and records the artifacts' sha256 and the metrics in ``manifest.yaml``.
Deterministic: two runs on one machine write byte-identical artifacts.

Choices (measured on 2 cores, picked on val, never on test):

- char n-grams are capped at 20,000 features (word n-grams: min_df=2, ~12,200): the ONNX
  LinearClassifier stores its 151 x n_features weights as unpacked floats (5 bytes each), so the
  cap keeps the model near 25 MB; 15k/20k/25k char features score within 0.2 points of each other.
- ``sublinear_tf`` stays off (skl2onnx exports it as log(tf + 1), not 1 + log(tf)) and the word
  pattern is ``[a-z0-9_]+`` (ONNX Runtime's re2 tokenizer runs it exactly as Python's re does).
- C=10 (C=5 and C=20 were no better on val).
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, Pipeline

from orchestrator.manifest import ARTIFACTS_DIRNAME, record_build
from skills.data import OOS_INTENT, clinc150, clinc150_eval
from skills.turn_intent.skill import normalize_text

FOLDER = Path(__file__).parent
ONNX_FILE = "model.onnx"
#: The fitted scikit-learn pipeline, kept so tests can check the ONNX graph against it.
SKLEARN_FILE = "sklearn.joblib"
#: ONNX opset of the default domain; pinned so a newer onnx package does not change the bytes.
TARGET_OPSET = 17
#: Pad token of the char tokenizer; two characters, so it never equals a one-character token.
CHAR_PAD = "<>"
SEED = 0


def build_pipeline() -> Pipeline:
    """The unfitted scikit-learn pipeline: text -> word + char TF-IDF -> logistic regression."""
    words = TfidfVectorizer(ngram_range=(1, 2), token_pattern=r"[a-z0-9_]+", min_df=2)
    chars = TfidfVectorizer(analyzer="char", ngram_range=(2, 5), max_features=20_000)
    return Pipeline(
        [
            ("features", FeatureUnion([("words", words), ("chars", chars)])),
            ("classifier", LogisticRegression(C=10.0, max_iter=1000, random_state=SEED)),
        ]
    )


def training_data() -> tuple[list[str], list[str]]:
    """Normalized texts and intents of CLINC150 train + oos_train."""
    pairs = clinc150("train") + clinc150("oos_train")
    return [normalize_text(text) for text, _ in pairs], [intent for _, intent in pairs]


def to_onnx(pipeline: Pipeline) -> Any:
    """Convert the fitted pipeline: one string input ``text`` [N, 1]; outputs label, probabilities."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import StringTensorType

    with warnings.catch_warnings():
        # skl2onnx warns that analyzer='char' "may not work"; tests check it does, item by item.
        warnings.filterwarnings("ignore", message="The conversion of CountVectorizer")
        model = convert_sklearn(
            pipeline,
            name="turn_intent",
            initial_types=[("text", StringTensorType([None, 1]))],
            options={
                id(pipeline.named_steps["classifier"]): {"zipmap": False},
                # The default locale, en_US.UTF-8, is missing on many machines.
                TfidfVectorizer: {"locale": "C.UTF-8"},
            },
            target_opset=TARGET_OPSET,
        )
    for node in model.graph.node:
        # Rows are padded to the longest row with pad_value, and TfIdfVectorizer counts n-grams
        # across the padding: '#' (skl2onnx's default) would be a real char token.
        attrs = {a.name: a for a in node.attribute}
        if node.op_type == "Tokenizer" and attrs["tokenexp"].s == b".":
            attrs["pad_value"].s = CHAR_PAD.encode()
    # skl2onnx lists the opset imports in set order, which changes with PYTHONHASHSEED.
    imports = sorted((o.domain, o.version) for o in model.opset_import)
    del model.opset_import[:]
    for domain, version in imports:
        model.opset_import.add(domain=domain, version=version)
    return model


def save_pipeline(pipeline: Pipeline, path: Path) -> None:
    """joblib-dump the fitted pipeline, byte for byte the same on every run."""
    for _, vectorizer in pipeline.named_steps["features"].transformer_list:
        # A cache key scikit-learn sets in fit: id(stop_words), a memory address that differs per
        # process. Without it the vectorizer re-checks its (absent) stop words once; same output.
        vars(vectorizer).pop("_stop_words_id", None)
    joblib.dump(pipeline, path, compress=3)


def intent_metrics(predicted: list[str], expected: list[str]) -> dict[str, float]:
    """In-scope accuracy, out-of-scope recall and overall accuracy of predicted intents."""
    pred, true = np.asarray(predicted), np.asarray(expected)
    in_scope = true != OOS_INTENT
    return {
        "in_scope_accuracy": round(float(np.mean(pred[in_scope] == true[in_scope])), 4),
        "oos_recall": round(float(np.mean(pred[~in_scope] == OOS_INTENT)), 4),
        "accuracy": round(float(np.mean(pred == true)), 4),
    }


def _check_onnx(path: Path, pipeline: Pipeline, texts: list[str]) -> tuple[float, float]:
    """Label agreement and largest probability gap between ONNX Runtime and scikit-learn."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    labels, probabilities = session.run(None, {"text": np.array(texts, dtype=object)[:, None]})
    expected = pipeline.predict_proba(texts)
    agree = float(np.mean(labels == pipeline.classes_[expected.argmax(axis=1)]))
    return agree, float(np.abs(probabilities - expected).max())


def main() -> None:
    started = time.perf_counter()
    texts, intents = training_data()
    pipeline = build_pipeline().fit(texts, intents)
    fitted = time.perf_counter() - started

    artifacts = FOLDER / ARTIFACTS_DIRNAME
    artifacts.mkdir(exist_ok=True)
    (artifacts / ONNX_FILE).write_bytes(to_onnx(pipeline).SerializeToString())
    save_pipeline(pipeline, artifacts / SKLEARN_FILE)

    metrics: dict[str, Any] = {}
    for split in ("test", "val"):
        pairs = clinc150_eval(split)
        eval_texts = [normalize_text(text) for text, _ in pairs]
        scores = intent_metrics(pipeline.predict(eval_texts), [intent for _, intent in pairs])
        prefix = "" if split == "test" else "val_"
        metrics.update({prefix + key: value for key, value in scores.items()})
        agree, gap = _check_onnx(artifacts / ONNX_FILE, pipeline, eval_texts)
        if agree < 1.0:
            raise SystemExit(f"ONNX and scikit-learn disagree on {1 - agree:.2%} of {split}")
        print(f"{split}: {scores}, ONNX agreement {agree:.0%}, max probability gap {gap:.1e}")
    metrics["n_features"] = int(pipeline.named_steps["classifier"].coef_.shape[1])
    metrics["eval_set"] = "CLINC150 test + oos_test (val_*: val + oos_val)"

    manifest = record_build(FOLDER, [ONNX_FILE, SKLEARN_FILE], metrics)
    sizes = ", ".join(
        f"{name} {rec.bytes / 1e6:.1f} MB" for name, rec in manifest.artifacts.items()
    )
    print(f"fit {fitted:.1f}s, total {time.perf_counter() - started:.1f}s; {sizes}")


if __name__ == "__main__":
    main()
