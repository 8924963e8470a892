"""The second tier of a CSV-trained text classifier: the shared encoder + a linear head, blended
with the first tier's TF-IDF probabilities, calibrated together with the first tier.

``skills train text-classifier`` calls :func:`train_embedding_tier` after the TF-IDF tier
(``NAME``) is installed, on the same CSV and the same stratified split (seed 0), and writes
``NAME_minilm`` of the same version (:class:`~orchestrator.registry.kinds.EmbeddingClassifier`):

1. the shared encoder is built once (:func:`~orchestrator.learning.encoder_export.ensure_encoder`)
   and embeds every row (one pass; the skill later runs the same graph);
2. a logistic-regression head (C=16) is fitted on the training rows' embeddings (every row when
   cross-fitted, the default: then one copy per part of the first tier's answers its part, and
   the weight and thresholds below are chosen on those held-out answers);
3. the two are pooled geometrically, ``softmax(w * log(tfidf) + (1 - w) * log(head))`` (a
   product of experts: a class both tiers find likely wins over one only a single tier is sure
   of), and the weight ``w`` is the one whose chain ``NAME -> NAME_minilm`` keeps most of the
   validation rows at the target accuracy (both thresholds chosen together,
   :mod:`orchestrator.learning.chain_calibrate`);
4. the head and the blend go into ``model.onnx``; ONNX Runtime is checked against numpy on val;
5. the tier is calibrated alone and as the chain's second tier (stored in its build record), so a
   graph step on ``NAME`` with ``chain: [NAME_minilm]`` and ``threshold: calibrated`` (or a plan)
   uses the pair.

Choices (made on CLINC150 and banking77 training splits; the test splits only measured them, see
bench/README.md): C=16 (16 vs 64: within 0.5 point), weights 0.0-0.6, geometric pooling (against
the linear ``w * tfidf + (1 - w) * head``: at equal kept accuracy it kept more in 5 of 6 train
splits and targets; turn_intent_minilm, built before, keeps the linear blend).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from orchestrator.errors import SetupError
from orchestrator.learning.tier_folder import TierData, stage_tier, tier_name

if TYPE_CHECKING:
    from orchestrator.embedding.artifact import EncoderArtifact
    from orchestrator.learning.trainer import TrainRun
    from orchestrator.registry.registry import SkillVersion

__all__ = [
    "TierData",
    "blend",
    "head_model",
    "pick_blend_weight",
    "tier_name",
    "train_embedding_tier",
]

HEAD_C = 16.0
BLEND_WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6)
Pooling = Literal["linear", "geometric"]
#: How a CSV-trained tier pools the two tiers' probabilities (see the module docstring).
POOLING: Pooling = "geometric"
#: Added to a probability before its log: a class a tier gives (float32) zero stays finite.
LOG_EPS = 1e-12


def train_embedding_tier(run: TrainRun, first: SkillVersion, data: TierData) -> dict[str, Any]:
    """Train, calibrate and install ``NAME_minilm`` after the installed first tier; its report."""
    from orchestrator.learning.encoder_export import ensure_encoder

    started = time.perf_counter()
    artifact = ensure_encoder(run.skills_dir)
    encoded = time.perf_counter()
    vectors = _embed(artifact, data.texts)
    encoded = time.perf_counter() - encoded
    classes = list(first.skill_cls.labels)  # type: ignore[attr-defined]
    head = _fit_head(vectors, data, classes)
    val_labels = np.array([data.labels[i] for i in data.val_idx], dtype=object)
    # the two tiers as they will run: what the ONNX head is checked against
    tfidf = _first_probabilities(first, [data.texts[i] for i in data.val_idx])
    embedded = _softmax(vectors[data.val_idx] @ head.coef_.T + head.intercept_)
    # what the weight and the thresholds are chosen on: held-out answers when cross-fitted
    held_tfidf, held_embedded = (
        (data.first_held_out, _held_out_head(vectors, data, classes))
        if data.first_held_out is not None
        else (tfidf, embedded)
    )
    weight, coverage = pick_blend_weight(
        held_tfidf,
        held_embedded,
        classes,
        val_labels,
        target=run.target_accuracy,
        after=first.key,
        weights=run.weights(list(val_labels)),
        pooling=POOLING,
    )
    held_out = (
        blend(held_tfidf, held_embedded, weight, POOLING)
        if data.first_held_out is not None
        else None
    )
    report = _install(run, first, data, artifact, head, weight, tfidf, embedded, held_out)
    report.update(
        {
            "tfidf_weight": weight,
            "val_chain_coverage_by_weight": {str(w): round(c, 4) for w, c in coverage.items()},
            "encode_seconds": round(encoded, 2),
            "seconds": round(time.perf_counter() - started, 2),
        }
    )
    return report


def _embed(artifact: EncoderArtifact, texts: list[str]) -> np.ndarray:
    from orchestrator.embedding.shared import shared_encoder

    return shared_encoder(artifact.folder).embed(texts)


def _fit_head(vectors: np.ndarray, data: TierData, classes: list[str]) -> Any:
    """The head on the training rows, its classes checked against the first tier's."""
    head = _head(vectors, data.train_idx, data.labels)
    if [str(c) for c in head.classes_] != classes:
        raise SetupError(
            "the embedding head's labels differ from the first tier's; retrain both tiers"
        )
    if len(classes) == 2:  # scikit-learn keeps one row for two classes: softmax needs two
        head.coef_ = np.vstack([-head.coef_ / 2, head.coef_ / 2])
        head.intercept_ = np.concatenate([-head.intercept_ / 2, head.intercept_ / 2])
    return head


def _head(vectors: np.ndarray, rows: list[int], labels: list[str]) -> Any:
    from sklearn.linear_model import LogisticRegression

    head = LogisticRegression(C=HEAD_C, max_iter=3000, random_state=0)
    return head.fit(vectors[rows], [labels[i] for i in rows])


def _held_out_head(vectors: np.ndarray, data: TierData, classes: list[str]) -> np.ndarray:
    """Every row's head probabilities from a copy fitted without its part (the first tier's
    parts: :mod:`orchestrator.learning.held_out`)."""
    from orchestrator.learning.held_out import out_of_fold

    def fit_predict(fit_rows: list[int], held_rows: list[int]) -> tuple[Any, np.ndarray]:
        copy = _head(vectors, fit_rows, data.labels)
        return copy.classes_, copy.predict_proba(vectors[held_rows])

    return out_of_fold(data.folds, classes, fit_predict)


def _softmax(scores: np.ndarray) -> np.ndarray:
    shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
    out: np.ndarray = shifted / shifted.sum(axis=1, keepdims=True)
    return out


def _first_probabilities(first: SkillVersion, texts: list[str]) -> np.ndarray:
    skill = first.create()
    skill.ensure_setup()
    feed = skill.feed({skill.text_field: texts})  # type: ignore[attr-defined]
    return np.asarray(skill.session.run(None, feed)[1], dtype=np.float64)  # type: ignore[attr-defined]


def pick_blend_weight(
    tfidf: np.ndarray,
    embedded: np.ndarray,
    classes: list[str] | np.ndarray,
    labels: np.ndarray,
    *,
    target: float,
    after: str,
    weights: np.ndarray | None = None,
    grid: tuple[float, ...] = BLEND_WEIGHTS,
    pooling: Pooling = "linear",
) -> tuple[float, dict[float, float]]:
    """The TF-IDF weight ``w`` (from ``grid``) whose chain first tier -> :func:`blend` of the two
    keeps most of ``labels`` at ``target``, and the coverage each weight reached.

    Ties go to the smaller weight (the embedding head carries more of the answer). ``weights``
    are per-row calibration weights (a declared label share).
    """
    from orchestrator.learning.chain_calibrate import choose_chain_thresholds

    names = np.asarray(classes, dtype=object)
    first_conf, first_right = tfidf.max(1), names[tfidf.argmax(1)] == labels
    coverage: dict[float, float] = {}
    for w in grid:
        blended = blend(tfidf, embedded, w, pooling)
        result = choose_chain_thresholds(
            first_conf,
            first_right,
            blended.max(1),
            names[blended.argmax(1)] == labels,
            target,
            after=after,
            weights=weights,
        )
        coverage[w] = result.coverage if result.reachable else 0.0
    return max(coverage, key=lambda w: (coverage[w], -w)), coverage


def blend(tfidf: np.ndarray, head: np.ndarray, weight: float, pooling: Pooling) -> np.ndarray:
    """The second tier's probabilities from the two tiers': ``w * tfidf + (1 - w) * head``
    (linear) or ``softmax(w * log(tfidf) + (1 - w) * log(head))`` (geometric), as
    :func:`head_model` computes them."""
    if pooling == "linear":
        out: np.ndarray = weight * tfidf + (1 - weight) * head
        return out
    return _softmax(weight * np.log(tfidf + LOG_EPS) + (1 - weight) * np.log(head + LOG_EPS))


def head_model(
    coef: np.ndarray, intercept: np.ndarray, weight: float, name: str, pooling: Pooling = "linear"
) -> Any:
    """:func:`blend` of ``tfidf`` and ``softmax(embedding @ coef.T + intercept)`` as an ONNX
    graph."""
    from onnx import TensorProto, checker, helper, numpy_helper

    classes, dim = coef.shape
    init = [
        numpy_helper.from_array(np.ascontiguousarray(coef.T, dtype=np.float32), "coef"),
        numpy_helper.from_array(intercept.astype(np.float32), "intercept"),
        numpy_helper.from_array(np.array(weight, dtype=np.float32), "w"),
        numpy_helper.from_array(np.array(1.0 - weight, dtype=np.float32), "one_minus_w"),
    ]
    nodes = [
        helper.make_node("MatMul", ["embedding", "coef"], ["dot"]),
        helper.make_node("Add", ["dot", "intercept"], ["scores"]),
        helper.make_node("Softmax", ["scores"], ["head"], axis=1),
    ]
    if pooling == "linear":
        parts = ("head", "tfidf")
    else:  # the logs of both, as blend() takes them
        init.append(numpy_helper.from_array(np.array(LOG_EPS, dtype=np.float32), "eps"))
        for source in ("head", "tfidf"):
            nodes.append(helper.make_node("Add", [source, "eps"], [f"{source}_eps"]))
            nodes.append(helper.make_node("Log", [f"{source}_eps"], [f"{source}_log"]))
        parts = ("head_log", "tfidf_log")
    nodes += [
        helper.make_node("Mul", [parts[0], "one_minus_w"], ["head_part"]),
        helper.make_node("Mul", [parts[1], "w"], ["tfidf_part"]),
        helper.make_node(
            "Add", ["head_part", "tfidf_part"], ["probabilities" if pooling == "linear" else "z"]
        ),
    ]
    if pooling != "linear":
        nodes.append(helper.make_node("Softmax", ["z"], ["probabilities"], axis=1))
    graph = helper.make_graph(
        nodes,
        name,
        [
            helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [None, dim]),
            helper.make_tensor_value_info("tfidf", TensorProto.FLOAT, [None, classes]),
        ],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, classes])],
        init,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.producer_name = "orchestrator.learning.embedding_tier"
    checker.check_model(model)
    return model


def _install(
    run: TrainRun,
    first: SkillVersion,
    data: TierData,
    artifact: EncoderArtifact,
    head: Any,
    weight: float,
    tfidf: np.ndarray,
    embedded: np.ndarray,
    held_out: np.ndarray | None,
) -> dict[str, Any]:
    """Write, check, calibrate (alone and after the first tier) and install the tier's folder."""
    expected = blend(tfidf, embedded, weight, POOLING)
    model = head_model(head.coef_, head.intercept_, weight, tier_name(first.name), POOLING)
    return stage_tier(
        run, first, data, artifact, model, weight, expected, held_out, pooling=POOLING
    )
