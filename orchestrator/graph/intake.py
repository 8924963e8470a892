"""Intake: turn raw job items into one chunk's columns, with a clear error for each bad item.

An item is a JSON object with an ``id``, the graph's input fields, and optionally a gold ``label``.
A bad item (not an object, no id, a missing or mistyped field) gets its own error and never enters
the graph; the rest of the chunk goes on.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from orchestrator.accounting.result import ItemError
from orchestrator.graph.spec import INPUT_SOURCE
from orchestrator.store.item import Item

__all__ = ["Chunk", "prepare_chunk", "read_jsonl"]


@dataclass
class Chunk:
    """One chunk ready for the graph: columns for the valid items, errors for the rest."""

    ids: list[Any]
    labels: list[Any]
    #: positions (within the chunk) of the items that enter the graph, in order
    rows: list[int]
    columns: dict[str, list[Any]]
    rejected: dict[int, ItemError] = field(default_factory=dict)


def prepare_chunk(items: Sequence[Item], item_model: type[BaseModel]) -> Chunk:
    """Validate each item against the graph's input model and lay the valid ones out as columns."""
    fields = list(item_model.model_fields)
    chunk = Chunk(ids=[], labels=[], rows=[], columns={f"{INPUT_SOURCE}.{f}": [] for f in fields})
    for position, raw in enumerate(items):
        item_id, label, error, values = _check_item(raw, item_model)
        chunk.ids.append(item_id)
        chunk.labels.append(label)
        if error is not None:
            chunk.rejected[position] = error
            continue
        chunk.rows.append(position)
        for f in fields:
            chunk.columns[f"{INPUT_SOURCE}.{f}"].append(values[f])
    return chunk


def _check_item(
    raw: Item, item_model: type[BaseModel]
) -> tuple[Any, Any, ItemError | None, dict[str, Any]]:
    where = raw.where
    if raw.parse_error is not None:
        return None, None, ItemError("invalid_item", f"{where}: {raw.parse_error}"), {}
    value = raw.value
    if not isinstance(value, dict):
        return None, None, ItemError("invalid_item", f"{where}: must be a JSON object"), {}
    item_id, label = value.get("id"), value.get("label")
    if item_id is None:
        return None, label, ItemError("invalid_item", f"{where}: missing 'id'"), {}
    try:
        model = item_model.model_validate(value)
    except ValidationError as exc:
        problems = "; ".join(
            f"field {'.'.join(str(p) for p in e['loc']) or '<item>'!r}: {e['msg']}"
            for e in exc.errors()
        )
        return (
            item_id,
            label,
            ItemError("invalid_item", f"{where} (id {item_id!r}): {problems}"),
            {},
        )
    return item_id, label, None, model.__dict__


def read_jsonl(path: Path) -> Iterator[Item]:
    """Items from a JSONL file, one per non-blank line; a line that is not JSON becomes a per-item
    error (located by line number) instead of stopping the job."""
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if line.strip():
                yield Item.from_line(number - 1, line, line=number)
