"""What a knowledge base is built from: entries (questions sharing an answer) or passages.

A source file is CSV or JSONL (``.jsonl``/``.ndjson``), one of two shapes:

- **entries**: ``id``, ``question``, ``answer``. Several rows may share an ``id`` (several ways to
  ask one thing); a repeated id may leave ``answer`` empty (it keeps the first one) but may not
  give another answer. In JSONL, ``questions`` may hold a list instead of one ``question``. A
  labelled question set without an ``answer`` column is a base whose answers are the ids.
- **passages**: ``id``, ``text``. One row per id; the text is both what is searched and what is
  answered.

Example::

    entries = read_entries(Path("examples/outbound_campaign/faq.csv"))
    entries.kind, len(entries.answers), len(entries.keys)   # ('entries', 44, 130)
"""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from orchestrator.errors import DatasetError

__all__ = ["Entries", "KeyText", "hold_out", "read_entries", "read_questions"]

EntriesKind = Literal["entries", "passages"]
_JSONL = (".jsonl", ".ndjson")
#: Longest id kept (ids go into prompts and answer schemas).
MAX_ID_CHARS = 120


@dataclass(frozen=True)
class KeyText:
    """One searchable text (a question, or a passage) and the answer id it leads to."""

    text: str
    answer_id: str


@dataclass(frozen=True)
class Entries:
    """A parsed source: answers by id, and the texts that are searched for them."""

    kind: EntriesKind
    #: id -> answer text (for passages: the passage), in first-seen order
    answers: dict[str, str]
    #: every searchable text with its id, duplicates of one (text, id) dropped
    keys: list[KeyText]


def read_entries(path: Path) -> Entries:
    """Parse ``path`` (CSV or JSONL of entries or passages); DatasetError on anything unusable:
    an unreadable or empty file, a missing column, an empty id or text, an id given two answers."""
    rows = list(_rows(path))
    if not rows:
        raise DatasetError(f"{path} holds no rows: a knowledge base needs at least one entry")
    columns = set().union(*(row.keys() for row in rows))
    if "text" in columns and "question" not in columns and "questions" not in columns:
        return _passages(path, rows)
    if "id" not in columns:
        raise DatasetError(
            f"{path} has no 'id' column (columns: {', '.join(sorted(columns))}); "
            "a knowledge base file has id, question, answer (entries) or id, text (passages)"
        )
    if "question" not in columns and "questions" not in columns:
        raise DatasetError(
            f"{path} has no 'question' column (columns: {', '.join(sorted(columns))}); "
            "entries need id, question, answer"
        )
    return _entries(path, rows, has_answers="answer" in columns)


def _entries(path: Path, rows: list[dict[str, Any]], *, has_answers: bool) -> Entries:
    answers: dict[str, str] = {}
    keys: dict[tuple[str, str], KeyText] = {}
    for number, row in enumerate(rows, start=1):
        answer_id = _id(path, number, row)
        answer = _text(row.get("answer")) if has_answers else answer_id
        if answer_id in answers:
            if answer and answer != answers[answer_id]:
                raise DatasetError(
                    f"{path} row {number}: id {answer_id!r} has two different answers "
                    f"({answers[answer_id][:60]!r} and {answer[:60]!r}); give each answer its "
                    "own id, or leave the answer empty on the id's later rows"
                )
        elif not answer:
            raise DatasetError(f"{path} row {number}: id {answer_id!r} has an empty answer")
        else:
            answers[answer_id] = answer
        questions = row.get("questions")
        listed = questions if isinstance(questions, list) else [row.get("question")]
        texts = [_text(q) for q in listed if _text(q)]
        if not texts:
            raise DatasetError(f"{path} row {number}: id {answer_id!r} has an empty question")
        for text in texts:
            keys.setdefault((text, answer_id), KeyText(text, answer_id))
    return Entries("entries", answers, list(keys.values()))


def _passages(path: Path, rows: list[dict[str, Any]]) -> Entries:
    answers: dict[str, str] = {}
    for number, row in enumerate(rows, start=1):
        passage_id = _id(path, number, row)
        text = _text(row.get("text"))
        if not text:
            raise DatasetError(f"{path} row {number}: passage {passage_id!r} has an empty text")
        if answers.get(passage_id, text) != text:
            raise DatasetError(
                f"{path} row {number}: id {passage_id!r} is given to two different passages; "
                "ids must be unique"
            )
        answers[passage_id] = text
    return Entries("passages", answers, [KeyText(t, i) for i, t in answers.items()])


def _id(path: Path, number: int, row: dict[str, Any]) -> str:
    answer_id = _text(row.get("id"))
    if not answer_id:
        raise DatasetError(f"{path} row {number}: empty 'id' (every row needs one)")
    if len(answer_id) > MAX_ID_CHARS:
        raise DatasetError(f"{path} row {number}: id longer than {MAX_ID_CHARS} characters")
    return answer_id


def _text(value: Any) -> str:
    return "" if value is None else " ".join(str(value).split())


def _rows(path: Path) -> Iterator[dict[str, Any]]:
    if not path.is_file():
        raise DatasetError(f"no file {path}: give a CSV or JSONL of entries or passages")
    try:
        if path.suffix.lower() in _JSONL:
            yield from _jsonl(path)
            return
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames is None:
                return
            for row in reader:
                yield {k.strip().lower(): v for k, v in row.items() if k is not None}
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"cannot read {path}: {exc}") from None


def _jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise DatasetError(f"{path} line {number} is not JSON: {exc}") from None
            if not isinstance(row, dict):
                raise DatasetError(f"{path} line {number} is not a JSON object")
            yield {str(k).strip().lower(): v for k, v in row.items()}


def hold_out(
    keys: Iterable[KeyText], fraction: float, seed: int = 0
) -> tuple[list[KeyText], list[KeyText]]:
    """(indexed, held out): per id with two questions or more, ``fraction`` of its questions
    (at least one, never all) are held out to calibrate on; an id with one question keeps it."""
    by_id: dict[str, list[KeyText]] = {}
    for key in keys:
        by_id.setdefault(key.answer_id, []).append(key)
    rng = random.Random(seed)
    indexed: list[KeyText] = []
    held: list[KeyText] = []
    for group in by_id.values():
        if len(group) < 2 or fraction <= 0:
            indexed += group
            continue
        shuffled = group[:]
        rng.shuffle(shuffled)
        count = min(len(group) - 1, max(1, round(fraction * len(group))))
        held += shuffled[:count]
        indexed += shuffled[count:]
    return indexed, held


def read_questions(path: Path, question_column: str, id_column: str) -> list[KeyText]:
    """Labelled questions (a CSV or JSONL with a question and an answer-id column) to calibrate or
    evaluate on; DatasetError names a missing column."""
    rows = list(_rows(path))
    if not rows:
        raise DatasetError(f"{path} holds no rows: give labelled questions")
    columns = set().union(*(row.keys() for row in rows))
    for column in (question_column, id_column):
        if column.lower() not in columns:
            raise DatasetError(
                f"{path} has no {column!r} column (columns: {', '.join(sorted(columns))}); "
                "name them with --question-column and --id-column"
            )
    found = [
        KeyText(_text(row.get(question_column.lower())), _text(row.get(id_column.lower())))
        for row in rows
    ]
    return [k for k in found if k.text and k.answer_id]
