"""One input item of a job: its position, and its parsed value or why it could not be parsed.

The same type goes everywhere an item goes: read from a JSONL file or a request body, stored in the
job store, sampled for a cost report, and turned into a chunk's columns by
:mod:`orchestrator.graph.intake`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

__all__ = ["Item"]


@dataclass(frozen=True, slots=True)
class Item:
    """One item of a job. ``value`` is the parsed JSON (None when ``parse_error`` says why not)."""

    index: int
    value: Any = None
    parse_error: str | None = None
    #: the JSONL line it came from (messages say ``line N``); None for items given as values
    line: int | None = None
    #: the JSON text as received, stored as it is (no second serialization on the upload path)
    text: str | None = None

    @property
    def where(self) -> str:
        """How messages locate the item: ``line 7`` for a file, else ``item 3`` (1-based)."""
        return f"line {self.line}" if self.line is not None else f"item {self.index + 1}"

    def body(self) -> str | None:
        """The value as compact JSON text, as the store keeps it (None for an unparsed item)."""
        if self.parse_error is not None:
            return None
        if self.text is not None:
            return self.text
        return json.dumps(self.value, separators=(",", ":"), default=str)

    @classmethod
    def from_line(cls, index: int, text: str, line: int | None = None) -> Item:
        """An item parsed from one line of JSON; a line that is not JSON becomes a per-item error
        instead of stopping the job."""
        try:
            return cls(index, json.loads(text), line=line, text=text.strip())
        except json.JSONDecodeError as exc:
            return cls(index, None, parse_error=f"not valid JSON ({exc.msg})", line=line)
