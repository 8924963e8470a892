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
import warnings
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, Pipeline

from orchestrator.build_record import build_seed, record_build
from orchestrator.manifest import ARTIFACTS_DIRNAME
from orchestrator.skill_folders import write_val_csv
from skills.data import OOS_INTENT, clinc150, clinc150_eval
from skills.turn_intent.skill import normalize_text

FOLDER = Path(__file__).parent
ONNX_FILE = "model.onnx"
#: The fitted scikit-learn pipeline, kept so tests can check the ONNX graph against it.
SKLEARN_FILE = "sklearn.joblib"
#: CLINC150 val + oos_val as ``text,label``: the split the build calibrates on (manifest).
VAL_FILE = "val.csv"
#: ONNX opset of the default domain and IR version; pinned so a newer onnx package does not change
#: the bytes.
TARGET_OPSET = 17
IR_VERSION = 8
#: Pad token of the char tokenizer; two characters, so it never equals a one-character token.
CHAR_PAD = "<>"


def build_pipeline(seed: int = 0) -> Pipeline:
    """The unfitted scikit-learn pipeline: text -> word + char TF-IDF -> logistic regression."""
    words = TfidfVectorizer(ngram_range=(1, 2), token_pattern=r"[a-z0-9_]+", min_df=2)
    chars = TfidfVectorizer(analyzer="char", ngram_range=(2, 5), max_features=20_000)
    return Pipeline(
        [
            ("features", FeatureUnion([("words", words), ("chars", chars)])),
            ("classifier", LogisticRegression(C=10.0, max_iter=1000, random_state=seed)),
        ]
    )


def training_data(seed: int = 0) -> tuple[list[str], list[str]]:
    """Normalized texts and intents of CLINC150 train + oos_train: in file order for seed 0,
    shuffled by any other seed (the same model up to rounding, other bytes: a perturbed build)."""
    pairs = clinc150("train") + clinc150("oos_train")
    if seed:
        order = np.random.default_rng(seed).permutation(len(pairs))
        pairs = [pairs[i] for i in order]
    return [normalize_text(text) for text, _ in pairs], [intent for _, intent in pairs]


def to_onnx(pipeline: Pipeline) -> Any:
    """Export the fitted pipeline: one string input ``text`` [N, 1]; outputs label, probabilities.

    skl2onnx converts the two vectorizers (normalize, tokenize, count n-grams); the rest of the
    graph is written here, because skl2onnx's version spends most of its time on dense copies
    (Mul by the IDF, two L2 Normalizers, a Concat of all 32k features, then a LinearClassifier).
    Per block (words, chars): TfIdfVectorizer in TFIDF mode with the IDF as its weights, then
    ``MatMul(x, W_block) / max(||x||, eps)``: L2 normalization is linear, so it can be
    applied to the 151 scores instead of the 32k features, and a zero row (no known n-gram) stays
    zero as in scikit-learn. Then Sum with the intercept, Softmax for the probabilities, ArgMax +
    Gather over the class names for the label, the two outputs in skl2onnx's order.
    """
    from onnx import TensorProto, checker, helper, numpy_helper

    features = pipeline.named_steps["features"]
    classifier = pipeline.named_steps["classifier"]
    converted = _convert_vectorizers(features)
    source = converted.graph
    count_nodes = [n for n in source.node if n.op_type == "TfIdfVectorizer"]
    if len(count_nodes) != len(features.transformer_list):
        raise RuntimeError(f"expected one TfIdfVectorizer per vectorizer, got {len(count_nodes)}")
    # Reshape, StringNormalizer, Tokenizer, Flatten: skl2onnx's text -> tokens part, kept as is.
    nodes = [
        n
        for n in source.node
        if n.op_type in {"Reshape", "StringNormalizer", "Tokenizer", "Flatten"}
    ]
    initializers = [i for i in source.initializer if any(i.name in n.input for n in nodes)]

    coef = classifier.coef_.astype(np.float32)
    start, block_scores = 0, []
    for (name, vectorizer), count in zip(features.transformer_list, count_nodes, strict=True):
        attrs = {a.name: helper.get_attribute_value(a) for a in count.attribute}
        width = len(vectorizer.vocabulary_)
        if attrs["mode"] != b"TF" or max(attrs["ngram_indexes"]) != width - 1:
            raise RuntimeError(f"unexpected TfIdfVectorizer from skl2onnx for {name!r}")
        # weights[i] belongs to the i-th n-gram of the pool, whose output column is ngram_indexes[i].
        attrs["weights"] = vectorizer.idf_[attrs["ngram_indexes"]].astype(np.float32).tolist()
        attrs["mode"] = "TFIDF"
        nodes += [
            helper.make_node(
                "TfIdfVectorizer",
                [count.input[0]],
                [f"{name}_tfidf"],
                name=f"{name}_tfidf",
                **attrs,
            ),
            # Sqrt(ReduceSum(x * x)), not ReduceL2: ONNX Runtime's ReduceL2 is twice as slow.
            helper.make_node(
                "Mul", [f"{name}_tfidf", f"{name}_tfidf"], [f"{name}_square"], name=f"{name}_square"
            ),
            helper.make_node(
                "ReduceSum",
                [f"{name}_square", "feature_axis"],
                [f"{name}_sum_squares"],
                name=f"{name}_sum_squares",
                keepdims=1,
            ),
            helper.make_node(
                "Sqrt", [f"{name}_sum_squares"], [f"{name}_norm"], name=f"{name}_norm"
            ),
            helper.make_node(
                "Max", [f"{name}_norm", "eps"], [f"{name}_divisor"], name=f"{name}_divisor"
            ),
            helper.make_node(
                "MatMul", [f"{name}_tfidf", f"{name}_coef"], [f"{name}_dot"], name=f"{name}_dot"
            ),
            helper.make_node(
                "Div", [f"{name}_dot", f"{name}_divisor"], [f"{name}_scores"], name=f"{name}_scores"
            ),
        ]
        block = np.ascontiguousarray(coef[:, start : start + width].T)
        initializers.append(numpy_helper.from_array(block, f"{name}_coef"))
        block_scores.append(f"{name}_scores")
        start += width
    if start != coef.shape[1]:
        raise RuntimeError(f"vectorizers give {start} features, the classifier has {coef.shape[1]}")
    n_classes = len(classifier.classes_)
    nodes += [
        helper.make_node("Sum", [*block_scores, "intercept"], ["scores"], name="scores"),
        helper.make_node("Softmax", ["scores"], ["probabilities"], name="softmax", axis=1),
        helper.make_node("ArgMax", ["scores"], ["class_index"], name="argmax", axis=1, keepdims=0),
        helper.make_node(
            "Gather", ["class_labels", "class_index"], ["label"], name="label", axis=0
        ),
    ]
    initializers += [
        numpy_helper.from_array(classifier.intercept_.astype(np.float32), "intercept"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "feature_axis"),
        # Any positive divisor below the smallest non-zero norm (>= 1: counts and IDF are >= 1).
        numpy_helper.from_array(np.array(1e-12, dtype=np.float32), "eps"),
        numpy_helper.from_array(
            np.array([str(c) for c in classifier.classes_], dtype=object), "class_labels"
        ),
    ]
    graph = helper.make_graph(
        nodes,
        "turn_intent",
        [helper.make_tensor_value_info("text", TensorProto.STRING, [None, 1])],
        [
            helper.make_tensor_value_info("label", TensorProto.STRING, [None]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, n_classes]),
        ],
        initializers,
    )
    # Opset imports sorted (skl2onnx lists them in set order, which changes with PYTHONHASHSEED)
    # and IR version pinned, so a newer onnx package does not change the bytes.
    versions = {o.domain: o.version for o in converted.opset_import}
    versions[""] = TARGET_OPSET
    domains = sorted({n.domain for n in nodes})
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid(d, versions[d]) for d in domains],
        ir_version=IR_VERSION,
        producer_name="skills.turn_intent.train",
    )
    checker.check_model(model)
    return model


def _convert_vectorizers(features: FeatureUnion) -> Any:
    """skl2onnx's graph of the FeatureUnion, tokenizers fixed; to_onnx keeps its front half."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import StringTensorType

    with warnings.catch_warnings():
        # skl2onnx warns that analyzer='char' "may not work"; tests check it does, item by item.
        warnings.filterwarnings("ignore", message="The conversion of CountVectorizer")
        model = convert_sklearn(
            features,
            name="turn_intent",
            initial_types=[("text", StringTensorType([None, 1]))],
            # The default locale, en_US.UTF-8, is missing on many machines.
            options={TfidfVectorizer: {"locale": "C.UTF-8"}},
            target_opset=TARGET_OPSET,
        )
    for node in model.graph.node:
        # Rows are padded to the longest row with pad_value, and TfIdfVectorizer counts n-grams
        # across the padding: '#' (skl2onnx's default) would be a real char token.
        attrs = {a.name: a for a in node.attribute}
        if node.op_type == "Tokenizer" and attrs["tokenexp"].s == b".":
            attrs["pad_value"].s = CHAR_PAD.encode()
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
    (artifacts / ONNX_FILE).write_bytes(to_onnx(pipeline).SerializeToString())
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
