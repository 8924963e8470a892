"""Train turn_intent and export it to ONNX: ``python -m skills.turn_intent.train``.

Fits word 1-2 + char 2-5 TF-IDF features and a multinomial logistic regression on CLINC150 train +
oos_train, exports it to ONNX (skl2onnx's tokenizers, the rest of the graph written by ``to_onnx``),
checks that ONNX Runtime reproduces scikit-learn on the evaluation sets, item by item, writes the
validation split (``val.csv``) the build calibrates on, and records the artifacts' sha256 and the
metrics in the build record (``artifacts/build.json``, not tracked).
Deterministic on one machine: two runs write byte-identical artifacts. Another CPU may round
differently (other bytes, the same model up to rounding); the seed (manifest, or ``skills build
--seed``) shuffles the training rows, which does the same on purpose.

Choices (measured on 2 cores, picked on val, never on test):

- char n-grams are capped at 20,000 features (word n-grams: min_df=2, ~12,200): the graph holds
  151 x n_features float32 weights and runs a dense MatMul over all features for every item, so
  the cap keeps the model near 20 MB; 15k/20k/25k char features score within 0.2 points of each
  other.
- ``sublinear_tf`` stays off (skl2onnx exports it as log(tf + 1), not 1 + log(tf)) and the word
  pattern is ``[a-z0-9_]+`` (ONNX Runtime's re2 tokenizer runs it exactly as Python's re does).
- C=10 (C=5 and C=20 were no better on val).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.pipeline import Pipeline

from orchestrator.learning.tfidf_pipeline import build_pipeline, save_pipeline, to_onnx
from orchestrator.registry.build_record import build_seed, record_build
from orchestrator.registry.folders import write_val_csv
from orchestrator.registry.manifest import ARTIFACTS_DIRNAME
from skills.data import OOS_INTENT, clinc150, clinc150_eval
from skills.turn_intent.skill import normalize_text

FOLDER = Path(__file__).parent
ONNX_FILE = "model.onnx"
#: The fitted scikit-learn pipeline, kept so tests can check the ONNX graph against it.
SKLEARN_FILE = "sklearn.joblib"
#: CLINC150 val + oos_val as ``text,label``: the split the build calibrates on (manifest).
VAL_FILE = "val.csv"


def training_data(seed: int = 0) -> tuple[list[str], list[str]]:
    """Normalized texts and intents of CLINC150 train + oos_train: in file order for seed 0,
    shuffled by any other seed (the same model up to rounding, other bytes: a perturbed build)."""
    pairs = clinc150("train") + clinc150("oos_train")
    if seed:
        order = np.random.default_rng(seed).permutation(len(pairs))
        pairs = [pairs[i] for i in order]
    return [normalize_text(text) for text, _ in pairs], [intent for _, intent in pairs]


def intent_metrics(predicted: list[str], expected: list[str]) -> dict[str, float]:
    """In-scope accuracy, out-of-scope recall and overall accuracy of predicted intents."""
    pred, true = np.asarray(predicted), np.asarray(expected)
    in_scope = true != OOS_INTENT
    return {
        "in_scope_accuracy": round(float(np.mean(pred[in_scope] == true[in_scope])), 4),
        "oos_recall": round(float(np.mean(pred[~in_scope] == OOS_INTENT)), 4),
        "accuracy": round(float(np.mean(pred == true)), 4),
    }


#: Largest difference allowed between an ONNX and a scikit-learn class probability.
MAX_PROBABILITY_GAP = 1e-5


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
    seed = build_seed(FOLDER)
    texts, intents = training_data(seed)
    pipeline = build_pipeline(seed).fit(texts, intents)
    fitted = time.perf_counter() - started

    artifacts = FOLDER / ARTIFACTS_DIRNAME
    artifacts.mkdir(exist_ok=True)
    (artifacts / ONNX_FILE).write_bytes(
        to_onnx(pipeline, graph_name="turn_intent").SerializeToString()
    )
    save_pipeline(pipeline, artifacts / SKLEARN_FILE)
    write_val_csv(artifacts / VAL_FILE, ["text", "label"], [list(p) for p in clinc150_eval("val")])

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
        if gap > MAX_PROBABILITY_GAP:
            raise SystemExit(f"ONNX and scikit-learn probabilities differ by {gap:.1e} on {split}")
        print(f"{split}: {scores}, ONNX agreement {agree:.0%}, max probability gap {gap:.1e}")
    metrics["n_features"] = int(pipeline.named_steps["classifier"].coef_.shape[1])
    metrics["eval_set"] = "CLINC150 test + oos_test (val_*: val + oos_val)"

    record = record_build(FOLDER, [ONNX_FILE, SKLEARN_FILE, VAL_FILE], metrics)
    sizes = ", ".join(f"{name} {rec.bytes / 1e6:.1f} MB" for name, rec in record.artifacts.items())
    print(f"fit {fitted:.1f}s, total {time.perf_counter() - started:.1f}s; {sizes}")


if __name__ == "__main__":
    main()
