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


def to_onnx(pipeline: Pipeline, graph_name: str = "text_classifier") -> Any:
    """Export the fitted pipeline: one string input ``text`` [N, 1]; outputs label, probabilities.
    ``graph_name`` names the ONNX graph (a skill passes its own name).

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

    features = pipeline.named_steps["features"]
    classifier = pipeline.named_steps["classifier"]
    converted = _convert_vectorizers(features, graph_name)
    count_nodes = [n for n in converted.graph.node if n.op_type == "TfIdfVectorizer"]
    if len(count_nodes) != len(features.transformer_list):
        raise RuntimeError(f"expected one TfIdfVectorizer per vectorizer, got {len(count_nodes)}")
    nodes, initializers = _tokenizer_part(converted.graph)
    coef = classifier.coef_.astype(np.float32)
    start, block_scores = 0, []
    for (name, vectorizer), count in zip(features.transformer_list, count_nodes, strict=True):
        width = len(vectorizer.vocabulary_)
        block = np.ascontiguousarray(coef[:, start : start + width].T)
        block_nodes, block_weights = _block(name, vectorizer, count, block)
        nodes += block_nodes
        initializers.append(block_weights)
        block_scores.append(f"{name}_scores")
        start += width
    if start != coef.shape[1]:
        raise RuntimeError(f"vectorizers give {start} features, the classifier has {coef.shape[1]}")
    head_nodes, head_initializers = _head(classifier, block_scores)
    return _model(
        [*nodes, *head_nodes],
        [*initializers, *head_initializers],
        converted,
        n_classes=len(classifier.classes_),
        graph_name=graph_name,
    )


def _tokenizer_part(source: Any) -> tuple[list[Any], list[Any]]:
    """skl2onnx's text -> tokens part (Reshape, StringNormalizer, Tokenizer, Flatten), kept as
    is: its nodes and the initializers they read."""
    nodes = [
        n
        for n in source.node
        if n.op_type in {"Reshape", "StringNormalizer", "Tokenizer", "Flatten"}
    ]
    initializers = [i for i in source.initializer if any(i.name in n.input for n in nodes)]
    return nodes, initializers


def _block(name: str, vectorizer: Any, count: Any, weights: Any) -> tuple[list[Any], Any]:
    """One vectorizer's scores, ``MatMul(tfidf, W) / max(||tfidf||, eps)``: the nodes, and the
    initializer holding ``W`` (``weights``, its columns of the classifier's coefficients)."""
    import numpy as np
    from onnx import helper, numpy_helper

    attrs = {a.name: helper.get_attribute_value(a) for a in count.attribute}
    if attrs["mode"] != b"TF" or max(attrs["ngram_indexes"]) != len(vectorizer.vocabulary_) - 1:
        raise RuntimeError(f"unexpected TfIdfVectorizer from skl2onnx for {name!r}")
    # weights[i] belongs to the i-th n-gram of the pool, whose output column is ngram_indexes[i].
    attrs["weights"] = vectorizer.idf_[attrs["ngram_indexes"]].astype(np.float32).tolist()
    attrs["mode"] = "TFIDF"

    def node(op: str, inputs: list[str], output: str, **kwargs: Any) -> Any:
        return helper.make_node(op, inputs, [f"{name}_{output}"], name=f"{name}_{output}", **kwargs)

    tfidf, square, sum_squares = f"{name}_tfidf", f"{name}_square", f"{name}_sum_squares"
    nodes = [
        node("TfIdfVectorizer", [count.input[0]], "tfidf", **attrs),
        # Sqrt(ReduceSum(x * x)), not ReduceL2: ONNX Runtime's ReduceL2 is twice as slow.
        node("Mul", [tfidf, tfidf], "square"),
        node("ReduceSum", [square, "feature_axis"], "sum_squares", keepdims=1),
        node("Sqrt", [sum_squares], "norm"),
        node("Max", [f"{name}_norm", "eps"], "divisor"),
        node("MatMul", [tfidf, f"{name}_coef"], "dot"),
        node("Div", [f"{name}_dot", f"{name}_divisor"], "scores"),
    ]
    return nodes, numpy_helper.from_array(weights, f"{name}_coef")


def _head(classifier: Any, block_scores: list[str]) -> tuple[list[Any], list[Any]]:
    """Sum of the blocks' scores and the intercept, Softmax, ArgMax + Gather over the class
    names: the nodes and their initializers."""
    import numpy as np
    from onnx import helper, numpy_helper

    nodes = [
        helper.make_node("Sum", [*block_scores, "intercept"], ["scores"], name="scores"),
        helper.make_node("Softmax", ["scores"], ["probabilities"], name="softmax", axis=1),
        helper.make_node("ArgMax", ["scores"], ["class_index"], name="argmax", axis=1, keepdims=0),
        helper.make_node(
            "Gather", ["class_labels", "class_index"], ["label"], name="label", axis=0
        ),
    ]
    initializers = [
        numpy_helper.from_array(classifier.intercept_.astype(np.float32), "intercept"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "feature_axis"),
        # Any positive divisor below the smallest non-zero norm (>= 1: counts and IDF are >= 1).
        numpy_helper.from_array(np.array(1e-12, dtype=np.float32), "eps"),
        numpy_helper.from_array(
            np.array([str(c) for c in classifier.classes_], dtype=object), "class_labels"
        ),
    ]
    return nodes, initializers


def _model(
    nodes: list[Any], initializers: list[Any], converted: Any, n_classes: int, graph_name: str
) -> Any:
    """The checked ONNX model of the graph: input ``text``, outputs label and probabilities."""
    from onnx import TensorProto, checker, helper

    graph = helper.make_graph(
        nodes,
        graph_name,
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
        producer_name="orchestrator.learning.tfidf_pipeline",
    )
    checker.check_model(model)
    return model


def _convert_vectorizers(features: FeatureUnion, graph_name: str) -> Any:
    """skl2onnx's graph of the FeatureUnion, tokenizers fixed; to_onnx keeps its front half."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import StringTensorType
    from sklearn.feature_extraction.text import TfidfVectorizer

    with warnings.catch_warnings():
        # skl2onnx warns that analyzer='char' "may not work"; tests check it does, item by item.
        warnings.filterwarnings("ignore", message="The conversion of CountVectorizer")
        model = convert_sklearn(
            features,
            name=graph_name,
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
