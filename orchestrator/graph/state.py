"""The state a compiled graph carries through LangGraph: one chunk of items, as columns.

Steps never merge results by hand: each returns only the columns it adds, and the reducers declared
on :class:`ChunkState` combine the updates of steps that ran in parallel.

- ``columns``: ``"input.utterance"`` or ``"<step>.<field>"`` -> one value per item of the chunk;
- ``errors``: row index -> the first error that item hit (later steps skip that row);
- ``held``: row index -> the step that held the item for human review (the steps that read from
  that step skip the row; :mod:`orchestrator.review.desk` finishes it once a person answered);
- ``stats``: one :class:`StepStats` per step run, for the ledger.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, TypedDict

from orchestrator.accounting.ledger import StepStats

__all__ = ["ChunkState", "merge_columns", "merge_errors"]


def merge_columns(
    left: Mapping[str, Sequence[Any]] | None, right: Mapping[str, Sequence[Any]] | None
) -> dict[str, Sequence[Any]]:
    """Union of two column sets. Each step writes only its own columns, so a clash is a bug."""
    merged = dict(left or {})
    for key, column in (right or {}).items():
        if key in merged and merged[key] is not column:
            raise ValueError(f"column {key!r} written twice; step ids must be unique")
        merged[key] = column
    return merged


def merge_errors(left: Mapping[int, str] | None, right: Mapping[int, str] | None) -> dict[int, str]:
    """Row -> error; the first error an item hit wins (it explains why later steps skipped it)."""
    merged = dict(right or {})
    merged.update(left or {})
    return merged


class ChunkState(TypedDict):
    """LangGraph state of one chunk run."""

    size: int
    columns: Annotated[dict[str, Sequence[Any]], merge_columns]
    errors: Annotated[dict[int, str], merge_errors]
    held: Annotated[dict[int, str], merge_errors]
    stats: Annotated[list[StepStats], operator.add]
