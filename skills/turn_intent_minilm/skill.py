"""The turn_intent_minilm skill: the second tier of the intent cascade.

turn_intent (TF-IDF + logistic regression, ~0.1 ms a turn) answers every turn; the turns it is
unsure of go to this skill before the big model. It embeds the turn with all-MiniLM-L6-v2 (mean
pooled, L2 normalized), scores the 151 classes with a logistic-regression head, and blends those
probabilities with the TF-IDF model's (``tfidf_weight``, chosen on CLINC150 val): the two models
err on different turns. ~4 ms a turn on one CPU core; a GPU runs the encoder when onnxruntime has
a CUDA provider.

Artifacts (built by ``python -m skills.turn_intent_minilm.train``): ``model.onnx`` (token ids ->
class probabilities: encoder, pooling and head in one graph), ``tokenizer.json`` (the model's
WordPiece tokenizer), ``tfidf.onnx`` (turn_intent's model it was trained with), ``blend.json``.

Example::

    tier2 = TurnIntentMiniLM(artifacts_dir="skills/turn_intent_minilm/artifacts")
    tier2.ensure_setup()
    tier2.predict({"text": ["what's my checking balance"]}).outputs["intent"]  # ['balance']
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel

from orchestrator.errors import SetupError
from orchestrator.skill import Batch, Predictions, Skill
from skills.turn_intent.skill import Intent, TurnIntent, Utterance, normalize_text

__all__ = ["MAX_TOKENS", "TurnIntentMiniLM", "encode", "run_sorted"]

#: all-MiniLM-L6-v2's max_seq_length: longer turns are truncated, as sentence-transformers does.
MAX_TOKENS = 256


class TurnIntentMiniLM(Skill):
    """CLINC150 intents from sentence embeddings + a linear head, blended with TF-IDF scores."""

    name: ClassVar[str] = "turn_intent_minilm"
    version: ClassVar[str] = "1.0.0"
    description: ClassVar[str] = (
        "Second opinion on a customer utterance's CLINC150 intent (150 intents, or 'oos' when it "
        "fits none), from all-MiniLM-L6-v2 sentence embeddings and a linear head blended with "
        "turn_intent's TF-IDF model. Dearer than turn_intent (~4 ms a turn on CPU) and more "
        "accurate: put it in turn_intent's escalation chain, before the big model."
    )
    Input: ClassVar[type[BaseModel]] = Utterance
    Output: ClassVar[type[BaseModel]] = Intent
    backend: ClassVar[str] = "onnx"
    label_field: ClassVar[str] = "intent"
    relative_cost: ClassVar[float] = 40.0
    #: Tokens are padded to the longest turn of a batch: sorting by length inside a call keeps
    #: padding low; 256 turns bound the activations (~256 x tokens x 1536 floats per layer).
    max_batch: ClassVar[int | None] = 256
    #: Inner batch of the encoder (turns of similar length run together).
    encoder_batch: ClassVar[int] = 32

    def setup(self) -> None:
        """Open the two ONNX Runtime sessions and the tokenizer (late, on the worker)."""
        import onnxruntime as ort

        try:
            from tokenizers import Tokenizer
        except ImportError:  # pragma: no cover - depends on the installed extras
            raise SetupError(
                "turn_intent_minilm needs the `tokenizers` package: pip install -e '.[minilm]'"
            ) from None
        blend = json.loads(self.artifact("blend.json").read_text(encoding="utf-8"))
        self.tfidf_weight = float(blend["tfidf_weight"])
        self.classes = np.asarray(blend["classes"], dtype=object)
        self.tokenizer = Tokenizer.from_file(str(self.artifact("tokenizer.json")))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        available = ort.get_available_providers()
        gpu = [p for p in ("CUDAExecutionProvider",) if p in available]
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.encoder = ort.InferenceSession(
            str(self.artifact("model.onnx")),
            sess_options=options,
            providers=[*gpu, "CPUExecutionProvider"],
        )
        self.tfidf = ort.InferenceSession(
            str(self.artifact("tfidf.onnx")),
            sess_options=options,
            providers=["CPUExecutionProvider"],
        )

    @classmethod
    def output_labels(cls) -> dict[str, list[str]]:
        """The same 150 intents and ``oos`` as turn_intent."""
        return TurnIntent.output_labels()

    def embedding_probabilities(self, texts: list[str]) -> np.ndarray:
        """The MiniLM head's class probabilities, [len(texts), classes]."""
        return run_sorted(
            self.encoder, self.tokenizer, texts, len(self.classes), self.encoder_batch
        )

    def probabilities(self, texts: list[str]) -> np.ndarray:
        """Blended class probabilities: ``w * tfidf + (1 - w) * minilm``."""
        feed = {"text": np.array([normalize_text(t) for t in texts], dtype=object)[:, None]}
        tfidf = self.tfidf.run(None, feed)[1]
        if self.tfidf_weight >= 1.0:
            return np.asarray(tfidf)
        blended = (1.0 - self.tfidf_weight) * self.embedding_probabilities(texts)
        return blended + self.tfidf_weight * tfidf

    def predict(self, batch: Batch) -> Predictions:
        texts = [str(t) for t in batch["text"]]
        if not texts:
            return Predictions({self.label_field: []}, np.zeros(0, dtype=np.float32))
        probs = self.probabilities(texts)
        best = probs.argmax(axis=1)
        return Predictions({self.label_field: self.classes[best].tolist()}, probs.max(axis=1))


def run_sorted(
    session: Any, tokenizer: Any, texts: list[str], width: int, batch: int
) -> np.ndarray:
    """The session's first output for every text, [len(texts), width], in input order.

    Texts of similar length share a batch, so little of each batch is padding."""
    out = np.zeros((len(texts), width), dtype=np.float32)
    order = np.argsort([len(t) for t in texts], kind="stable")
    for start in range(0, len(texts), batch):
        rows = order[start : start + batch]
        out[rows] = session.run(None, encode(tokenizer, [texts[i] for i in rows]))[0]
    return out


def encode(tokenizer: Any, texts: list[str]) -> dict[str, np.ndarray]:
    """ONNX inputs for a batch of texts: token ids, attention mask, token type ids (all int64)."""
    encodings = tokenizer.encode_batch(texts)
    ids = np.array([e.ids for e in encodings], dtype=np.int64)
    mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
