"""Nearest texts of a knowledge base: exact numpy search, or an HNSW graph (faiss) for big ones.

Rows are unit-length embeddings, so cosine similarity is a dot product. A base of up to
:data:`ANN_MIN_ROWS` rows is searched exactly (one matrix product per batch: at that size it takes
less than embedding the question, and it is never wrong); past it, faiss's HNSW graph
(``faiss-cpu``, the ``kb`` extra) answers in a millisecond or two and keeps the top results
the exact search would give on nearly every question (``bench/kb.py`` measures both).

Example::

    index = VectorIndex.build(embeddings)           # exact below ANN_MIN_ROWS rows
    scores, rows = index.search(query_embeddings, 20)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from orchestrator.errors import SetupError

__all__ = ["ANN_MIN_ROWS", "EMBEDDINGS_FILE", "INDEX_FILE", "VectorIndex"]

#: Rows from which a base gets an HNSW index. Measured (bench/kb.py, 2 cores under a load of ~5,
#: one BLAS thread, the fastest of 3 runs): exact search of one question took ~0.5 ms at 5k rows,
#: ~4 ms at 20k and ~26 ms at 100k, HNSW 0.5-2 ms; embedding the question takes 5-10 ms. From
#: 20k rows exact search costs about as much as the encoder, and HNSW's first hit was the exact
#: one for 98.5 % of questions at 20k (97.5 % at 100k).
ANN_MIN_ROWS = 20_000
EMBEDDINGS_FILE = "embeddings.npy"
INDEX_FILE = "index.faiss"
#: HNSW parameters: links per node, and the search breadth (recall vs time, see bench/kb.py).
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 128
#: Rows per matrix product in an exact search (bounds the score matrix's memory).
EXACT_BLOCK = 256


@dataclass
class VectorIndex:
    """Unit-length rows and, past :data:`ANN_MIN_ROWS`, their HNSW graph."""

    embeddings: np.ndarray
    method: Literal["exact", "hnsw"]
    ann: Any = None

    @classmethod
    def build(cls, embeddings: np.ndarray, method: str = "auto") -> VectorIndex:
        """An index over ``embeddings`` ([rows, dim] float32); ``method``: auto, exact or hnsw."""
        rows = np.ascontiguousarray(embeddings, dtype=np.float32)
        if method == "auto":
            method = "hnsw" if len(rows) >= ANN_MIN_ROWS else "exact"
        if method == "exact":
            return cls(rows, "exact")
        if method != "hnsw":
            raise SetupError(f"unknown index method {method!r}: use auto, exact or hnsw")
        faiss = _faiss()
        ann = faiss.IndexHNSWFlat(rows.shape[1], HNSW_M, faiss.METRIC_INNER_PRODUCT)
        ann.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        ann.add(rows)
        ann.hnsw.efSearch = HNSW_EF_SEARCH
        return cls(rows, "hnsw", ann)

    def save(self, folder: Path) -> list[str]:
        """Write the embeddings (and the HNSW graph); the files written, relative to ``folder``."""
        np.save(folder / EMBEDDINGS_FILE, self.embeddings)
        if self.ann is None:
            return [EMBEDDINGS_FILE]
        _faiss().write_index(self.ann, str(folder / INDEX_FILE))
        return [EMBEDDINGS_FILE, INDEX_FILE]

    @classmethod
    def load(cls, folder: Path, method: str) -> VectorIndex:
        """The index :meth:`save` wrote in ``folder``."""
        # the HNSW graph holds its own copy of the rows: the file is only mapped, not read
        embeddings = np.load(folder / EMBEDDINGS_FILE, mmap_mode="r" if method == "hnsw" else None)
        if method == "exact":
            return cls(embeddings, "exact")
        faiss = _faiss()
        ann = faiss.read_index(str(folder / INDEX_FILE))
        ann.hnsw.efSearch = HNSW_EF_SEARCH
        return cls(embeddings, "hnsw", ann)

    def __len__(self) -> int:
        return len(self.embeddings)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, rows), each [queries, k'] with k' = min(k, rows), best first."""
        k = min(k, len(self.embeddings))
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if len(queries) == 0 or k == 0:
            return np.zeros((len(queries), k), np.float32), np.zeros((len(queries), k), np.int64)
        if self.ann is not None:
            scores, rows = self.ann.search(queries, k)
            return scores, rows.astype(np.int64)
        out_scores = np.empty((len(queries), k), np.float32)
        out_rows = np.empty((len(queries), k), np.int64)
        for start in range(0, len(queries), EXACT_BLOCK):
            block = queries[start : start + EXACT_BLOCK] @ self.embeddings.T
            top = np.argpartition(-block, k - 1, axis=1)[:, :k]
            top_scores = np.take_along_axis(block, top, axis=1)
            order = np.argsort(-top_scores, axis=1, kind="stable")
            out_rows[start : start + len(block)] = np.take_along_axis(top, order, axis=1)
            out_scores[start : start + len(block)] = np.take_along_axis(top_scores, order, axis=1)
        return out_scores, out_rows


def _faiss() -> Any:
    try:
        import faiss  # heavy and optional: only bases past ANN_MIN_ROWS need it
    except ImportError:
        raise SetupError(
            "a knowledge base this big uses an HNSW index from faiss-cpu: "
            "pip install -e '.[kb]' (or build it with --index exact)"
        ) from None
    return faiss
