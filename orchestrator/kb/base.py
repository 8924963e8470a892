"""A built knowledge base, as its artifacts hold it: answers, searchable texts, their index.

::

    skills/<name>/artifacts/
      answers.jsonl    {"id", "answer"} per answer id (for passages: the passage)
      keys.jsonl       {"text", "id"} per searchable text, in embedding row order
      embeddings.npy   the texts' unit-length embeddings (the shared encoder's), float32
      index.faiss      the HNSW graph, for bases past ANN_MIN_ROWS texts
      val.csv          the held-out questions the threshold was calibrated on
      kb.json          what this build used on this machine: the encoder's sha256

A question's answer is the id of its nearest texts: each id scores the best similarity among its
texts (several questions may share an id), and the confidence is :func:`confidence_of` the best
and second-best ids' scores.

Example::

    base = KnowledgeBase.load(Path("skills/outbound_faq/artifacts"), "exact")
    hits = base.retrieve(encoder.embed(["what's the rate?"]), top_k=5)
    hits[0].ids[0], hits[0].confidence
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from orchestrator.errors import ArtifactError
from orchestrator.kb.entries import KeyText
from orchestrator.kb.index import VectorIndex

__all__ = [
    "ANSWERS_FILE",
    "FACTS_FILE",
    "KEYS_FILE",
    "Hit",
    "KnowledgeBase",
    "confidence_of",
    "read_build_facts",
    "write_build_facts",
    "write_texts",
]

ANSWERS_FILE = "answers.jsonl"
KEYS_FILE = "keys.jsonl"
FACTS_FILE = "kb.json"
#: Texts searched per question before they are grouped by id (an id may hold many texts).
SEARCH_WIDTH = 32
#: The confidence's weight on the margin between the best and the second-best id (see
#: :func:`confidence_of`). Chosen on CLINC150 val (KB from train): coverage at 0.95 selective
#: accuracy was 0.76 / 0.81 / 0.84 / 0.85 for weights 0 / 1 / 2 / 4 on in-scope questions and
#: 0.73 / 0.78 / 0.80 / 0.80 with out-of-scope questions mixed in (they must not be kept); 2 is
#: the best of both.
MARGIN_WEIGHT = 2.0


def confidence_of(best: np.ndarray, second: np.ndarray) -> np.ndarray:
    """How sure a retrieval is, in [0, 1]: the best id's cosine similarity plus
    ``MARGIN_WEIGHT`` times its lead over the second-best id, rescaled and clipped.

    The similarity alone is fooled by a question close to two answers (both score high); the
    margin alone by a question far from every answer (both score low): the sum needs both."""
    score = (best + MARGIN_WEIGHT * (best - second)) / (1.0 + MARGIN_WEIGHT)
    return np.clip(score, 0.0, 1.0)


@dataclass(frozen=True)
class Hit:
    """One question's retrieval: answer ids best first, their scores, and the confidence."""

    ids: list[str]
    scores: list[float]
    confidence: float


@dataclass
class KnowledgeBase:
    """Answers by id, the searchable texts (row -> answer id) and their index."""

    answers: dict[str, str]
    keys: list[KeyText]
    index: VectorIndex

    @classmethod
    def load(cls, folder: Path, method: str) -> KnowledgeBase:
        """Read a built base from its artifacts ``folder``."""
        try:
            answers = {row["id"]: row["answer"] for row in _read_jsonl(folder / ANSWERS_FILE)}
            keys = [KeyText(row["text"], row["id"]) for row in _read_jsonl(folder / KEYS_FILE)]
        except (OSError, ValueError, KeyError) as exc:
            raise ArtifactError(
                f"knowledge base at {folder} is unreadable ({exc}): rebuild it"
            ) from None
        index = VectorIndex.load(folder, method)
        if len(index) != len(keys):
            raise ArtifactError(f"knowledge base at {folder}: index and texts differ; rebuild it")
        return cls(answers, keys, index)

    def __post_init__(self) -> None:
        ids = list(self.answers)
        position = {answer_id: i for i, answer_id in enumerate(ids)}
        self._ids = ids
        self._row_answer = np.array([position[k.answer_id] for k in self.keys], dtype=np.int64)

    def retrieve(self, queries: np.ndarray, top_k: int) -> list[Hit]:
        """The ``top_k`` answer ids of each query embedding, and a confidence for the first."""
        scores, rows = self.index.search(queries, SEARCH_WIDTH)
        hits: list[Hit] = []
        for row_scores, row_rows in zip(scores, rows, strict=True):
            ids: list[str] = []
            best: list[float] = []
            for score, row in zip(row_scores, row_rows, strict=True):
                if row < 0:  # faiss pads with -1 when it finds fewer
                    continue
                answer_id = self._ids[self._row_answer[row]]
                if answer_id not in ids:
                    ids.append(answer_id)
                    best.append(float(score))
                    if len(ids) == top_k:
                        break
            first = best[0] if best else 0.0
            second = best[1] if len(best) > 1 else 0.0
            confidence = float(confidence_of(np.array(first), np.array(second)))
            hits.append(Hit(ids, best, confidence))
        return hits


def write_texts(folder: Path, answers: dict[str, str], keys: Sequence[KeyText]) -> list[str]:
    """Write answers.jsonl and keys.jsonl; the files written."""
    with (folder / ANSWERS_FILE).open("w", encoding="utf-8") as handle:
        for answer_id, answer in answers.items():
            handle.write(json.dumps({"id": answer_id, "answer": answer}, ensure_ascii=False) + "\n")
    with (folder / KEYS_FILE).open("w", encoding="utf-8") as handle:
        for key in keys:
            handle.write(json.dumps({"text": key.text, "id": key.answer_id}, ensure_ascii=False))
            handle.write("\n")
    return [ANSWERS_FILE, KEYS_FILE]


def write_build_facts(folder: Path, *, encoder_sha256: str) -> str:
    """Write kb.json (machine-dependent facts stay out of the tracked skill.json); its name."""
    facts = {"encoder_sha256": encoder_sha256}
    (folder / FACTS_FILE).write_text(json.dumps(facts, indent=2) + "\n", encoding="utf-8")
    return FACTS_FILE


def read_build_facts(folder: Path) -> dict[str, str]:
    """kb.json of a built base (ArtifactError when missing or unreadable)."""
    try:
        facts: dict[str, str] = json.loads((folder / FACTS_FILE).read_text(encoding="utf-8"))
        facts["encoder_sha256"] = str(facts["encoder_sha256"])
    except (OSError, ValueError, KeyError) as exc:
        raise ArtifactError(
            f"knowledge base at {folder}: {FACTS_FILE} unreadable ({exc}); rebuild it"
        ) from None
    return facts


def _read_jsonl(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]
