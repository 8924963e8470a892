"""The shared encoder on ONNX Runtime: texts in, unit-length embeddings out, recent texts cached.

Texts of similar length share an inner batch (little padding); a GPU runs the graph when
onnxruntime has a CUDA provider. The cache (``cache_size`` texts, least recently used out) is what
makes an item's embedding computed once per job even when two skills need it: both ask the same
encoder instance (:mod:`orchestrator.embedding.shared`), the second gets the cached row.

Example::

    encoder = OnnxEncoder(EncoderArtifact.load("skills/_encoders/all-minilm-l6-v2"))
    encoder.embed(["what's my balance"]).shape   # (1, 384)
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

from orchestrator.embedding.artifact import EncoderArtifact
from orchestrator.errors import SetupError

__all__ = ["DEFAULT_CACHE_SIZE", "OnnxEncoder", "run_sorted", "tokenize"]

#: Texts kept (~1.5 KiB each at 384 floats): ~48 MiB, a few jobs' chunks of turns.
DEFAULT_CACHE_SIZE = 32_768
#: Inner batch of the graph: texts of similar length run together.
INNER_BATCH = 32


class OnnxEncoder:
    """One encoder session, its tokenizer and a cache of recent embeddings (thread-safe)."""

    def __init__(self, artifact: EncoderArtifact, *, cache_size: int = DEFAULT_CACHE_SIZE) -> None:
        import onnxruntime as ort

        try:
            from tokenizers import Tokenizer
        except ImportError:  # pragma: no cover - depends on the installed extras
            raise SetupError(
                "the shared encoder needs `tokenizers`: pip install -e '.[minilm]'"
            ) from None
        self.artifact = artifact
        self.tokenizer = Tokenizer.from_file(str(artifact.tokenizer_path))
        self.tokenizer.enable_truncation(artifact.max_tokens)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        gpu = [p for p in ("CUDAExecutionProvider",) if p in ort.get_available_providers()]
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            str(artifact.onnx_path), sess_options=options, providers=[*gpu, "CPUExecutionProvider"]
        )
        self.cache_size = cache_size
        self._cache: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        #: texts embedded and texts answered from the cache, since start
        self.computed = 0
        self.reused = 0

    @property
    def dim(self) -> int:
        return self.artifact.dim

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length embeddings, one float32 row per text, in input order."""
        keys = [hashlib.blake2b(str(t).encode("utf-8"), digest_size=16).digest() for t in texts]
        out = np.zeros((len(keys), self.dim), dtype=np.float32)
        missing: dict[bytes, list[int]] = {}
        with self._lock:
            for i, key in enumerate(keys):
                row = self._cache.get(key)
                if row is None:
                    missing.setdefault(key, []).append(i)
                else:
                    self._cache.move_to_end(key)
                    out[i] = row
            self.reused += len(keys) - len(missing)
        if missing:
            firsts = [rows[0] for rows in missing.values()]
            vectors = run_sorted(
                self.session, self.tokenizer, [str(texts[i]) for i in firsts], self.dim
            )
            with self._lock:
                for (key, rows), vector in zip(missing.items(), vectors, strict=True):
                    out[rows] = vector
                    self._cache[key] = vector
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
                self.computed += len(firsts)
        return out

    def stats(self) -> dict[str, int]:
        """Texts embedded, texts served from the cache, texts cached now."""
        with self._lock:
            return {"computed": self.computed, "reused": self.reused, "cached": len(self._cache)}


def run_sorted(
    session: Any, tokenizer: Any, texts: Sequence[str], width: int, batch: int = INNER_BATCH
) -> np.ndarray:
    """The session's first output for every text, [len(texts), width], in input order.

    Texts of similar length share a batch, so little of each batch is padding."""
    out = np.zeros((len(texts), width), dtype=np.float32)
    order = np.argsort([len(t) for t in texts], kind="stable")
    for start in range(0, len(texts), batch):
        rows = order[start : start + batch]
        out[rows] = session.run(None, tokenize(tokenizer, [texts[i] for i in rows]))[0]
    return out


def tokenize(tokenizer: Any, texts: Sequence[str]) -> dict[str, np.ndarray]:
    """ONNX inputs for a batch of texts: token ids, attention mask, token type ids (all int64)."""
    encodings = tokenizer.encode_batch(list(texts))
    ids = np.array([e.ids for e in encodings], dtype=np.int64)
    mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
