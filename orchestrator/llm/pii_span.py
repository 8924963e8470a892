"""What every PII detector returns: typed character spans, and how overlapping ones merge.

The detectors (:mod:`~orchestrator.llm.pii_patterns`, :mod:`~orchestrator.llm.ner`,
:mod:`~orchestrator.llm.pii_known`) each return :class:`Span` lists; :func:`choose` merges them so
nothing is half-redacted, and :class:`~orchestrator.llm.pii.PIIGuard` turns each merged span into a
placeholder ``<TYPE_N>``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

__all__ = ["ENTITY_TYPES", "PRIORITY", "EntityType", "Span", "choose"]

EntityType = Literal[
    "PERSON", "PHONE", "EMAIL", "CARD", "ADDRESS", "IBAN", "IP", "SSN", "LICENSE", "ZIP", "ORG",
    "OTHER",
]  # fmt: skip
ENTITY_TYPES: tuple[EntityType, ...] = (
    "PERSON", "PHONE", "EMAIL", "CARD", "ADDRESS", "IBAN", "IP", "SSN", "LICENSE", "ZIP", "ORG",
    "OTHER",
)  # fmt: skip

#: Overlapping spans merge; the type is the longest's, then the higher priority's. Checksummed and
#: context-bound patterns outrank guesses (a phone-like run inside a Luhn-valid card is a card).
PRIORITY: dict[str, int] = {
    "known": 10, "CARD": 6, "IBAN": 6, "SSN": 6, "EMAIL": 5, "IP": 5, "LICENSE": 4, "ADDRESS": 3,
    "PHONE": 3, "ZIP": 2, "ORG": 1, "PERSON": 1, "OTHER": 1,
}  # fmt: skip


@dataclass(frozen=True)
class Span:
    """``text[start:end]`` is PII of type ``kind``; ``priority`` breaks ties when spans overlap."""

    start: int
    end: int
    kind: EntityType
    priority: int


def choose(spans: Iterable[Span]) -> list[Span]:
    """Overlapping spans merged into one (nothing half-redacted: a known name inside an e-mail
    takes the whole e-mail), typed after the longest member, then the higher priority."""
    merged: list[list[Span]] = []
    end = -1
    for span in sorted(spans, key=lambda s: (s.start, -s.end)):
        if merged and span.start < end:
            merged[-1].append(span)
            end = max(end, span.end)
        else:
            merged.append([span])
            end = span.end
    out = []
    for group in merged:
        best = max(group, key=lambda s: (s.end - s.start, s.priority))
        out.append(Span(group[0].start, max(s.end for s in group), best.kind, best.priority))
    return out
