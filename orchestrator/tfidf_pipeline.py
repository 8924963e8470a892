"""The TF-IDF text classifier: word 1-2 + char 2-5 TF-IDF features and a logistic regression, and
its ONNX export (a graph that runs ~250k items/s in batches, agreeing with scikit-learn item by item).

Used by ``skills/turn_intent`` and by ``orchestrator skills train text-classifier``; the choices
(measured on CLINC150 val, never on test) are in ``skills/turn_intent/train.py``.

Example::

    pipeline = build_pipeline(seed=0).fit(texts, labels)
    model = to_onnx(pipeline)          # onnx.ModelProto: input ``text`` [N, 1]; label, probabilities
    save_pipeline(pipeline, path)      # the scikit-learn twin, byte for byte the same on every run
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sklearn.pipeline import FeatureUnion, Pipeline

__all__ = ["CHAR_PAD", "IR_VERSION", "TARGET_OPSET", "build_pipeline", "save_pipeline", "to_onnx"]

#: ONNX opset of the default domain and IR version; pinned so a newer onnx package does not change
#: the bytes.
TARGET_OPSET = 17
IR_VERSION = 8
#: Pad token of the char tokenizer; two characters, so it never equals a one-character token.
CHAR_PAD = "<>"


def build_pipeline(seed: int = 0) -> Pipeline:
    """The unfitted scikit-learn pipeline: text -> word + char TF-IDF -> logistic regression."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import FeatureUnion, Pipeline

    words = TfidfVectorizer(ngram_range=(1, 2), token_pattern=r"[a-z0-9_]+", min_df=2)
    chars = TfidfVectorizer(analyzer="char", ngram_range=(2, 5), max_features=20_000)
    return Pipeline(
        [
            ("features", FeatureUnion([("words", words), ("chars", chars)])),
            ("classifier", LogisticRegression(C=10.0, max_iter=1000, random_state=seed)),
        ]
    )


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
    import numpy as np
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
        producer_name="orchestrator.tfidf_pipeline",
    )
    checker.check_model(model)
    return model


def _convert_vectorizers(features: FeatureUnion) -> Any:
    """skl2onnx's graph of the FeatureUnion, tokenizers fixed; to_onnx keeps its front half."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import StringTensorType
    from sklearn.feature_extraction.text import TfidfVectorizer

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
    import joblib

    for _, vectorizer in pipeline.named_steps["features"].transformer_list:
        # A cache key scikit-learn sets in fit: id(stop_words), a memory address that differs per
        # process. Without it the vectorizer re-checks its (absent) stop words once; same output.
        vars(vectorizer).pop("_stop_words_id", None)
    joblib.dump(pipeline, path, compress=3)
