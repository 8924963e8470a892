"""PII detection and reversible redaction, fully offline.

:class:`PIIGuard` replaces each piece of personal data in a text with a placeholder
(``<PERSON_1>``, ``<PHONE_1>``, ``<EMAIL_1>``, ``<CARD_1>``, ``<ADDRESS_1>``, ``<IBAN_1>``,
``<IP_1>``, ``<SSN_1>``, ``<LICENSE_1>``, ``<ZIP_1>``, ``<ORG_1>``, ``<OTHER_1>``) and keeps the
mapping so :meth:`PIIGuard.restore` can put the values back into an answer::

    >>> guard = PIIGuard()
    >>> red = guard.redact("Ana Sousa asked us to call 912-345-678 or mail ana@example.pt")
    >>> red.text
    '<PERSON_1> asked us to call <PHONE_1> or mail <EMAIL_1>'
    >>> guard.restore("Calling <PHONE_1> now", red.mapping)
    'Calling 912-345-678 now'

Three detectors run on every text, and overlapping finds merge into one placeholder:

1. **patterns** (:mod:`~orchestrator.llm.pii_patterns`, :mod:`~orchestrator.llm.pii_grammar`):
   e-mails, IBANs, IPs (Presidio's recognizers), phones, cards (Luhn), SSNs, driver licences and
   ZIP codes (with context words), street addresses (number + name + suffix, unit, city/state/ZIP),
   company names by suffix, names after cue words ("my wife ...", "Mr ...");
2. **NER** (:mod:`~orchestrator.llm.ner`, spaCy ``en_core_web_sm`` from PyPI, loaded late, once per
   process): people and organisations, only on texts with capitalised words (``ner=False`` skips it);
3. **known values** (:class:`KnownValues`, :mod:`~orchestrator.llm.pii_known`): what the job
   already knows about the customer, as exact-match deny lists, in any casing or formatting.

**Not detected**: spelled-out numbers ("nine one two..."), e-mails said aloud ("ana at example dot
pt"), dates of birth, names in lower-case text without a cue word, national ids other than US SSNs.

The same value gets the same placeholder within one mapping: pass the mapping of earlier texts
(``redact(..., mapping=m)``) to keep a conversation consistent. :meth:`PIIGuard.redact_many` runs
the model over a batch at once (~3x faster per text). Nothing here logs a value; the reprs of
:class:`KnownValues` and :class:`Redacted` hide them.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from orchestrator.errors import ConfigError
from orchestrator.llm.ner import MODEL, load_model, ner_spans
from orchestrator.llm.pii_grammar import conjoined_names
from orchestrator.llm.pii_known import Known, KnownValues, known_spans, value_key
from orchestrator.llm.pii_patterns import PATTERN_FAMILIES, load_recognizers, pattern_spans
from orchestrator.llm.pii_span import ENTITY_TYPES, EntityType, Span, choose

__all__ = [
    "ENTITY_TYPES",
    "EntityType",
    "Known",
    "KnownValues",
    "PIIGuard",
    "Redacted",
    "default_guard",
]

_PLACEHOLDER = re.compile(
    r"<\s*(?P<a>[A-Za-z]+_\d+)\s*>|\[\s*(?P<b>[A-Za-z]+_\d+)\s*\]|\{\s*(?P<c>[A-Za-z]+_\d+)\s*\}"
    rf"|\b(?P<d>(?:{'|'.join(ENTITY_TYPES)})_\d+)\b"
)


@dataclass(frozen=True)
class Redacted:
    """A redacted text; ``mapping`` (placeholder → original) restores it and is hidden in repr."""

    text: str
    mapping: dict[str, str] = field(repr=False)
    #: spans replaced in this text, by placeholder type
    counts: dict[str, int] = field(default_factory=dict)
    #: ``(start, end, type)`` of each replaced span, offsets into the original text
    spans: tuple[tuple[int, int, str], ...] = ()


@dataclass(frozen=True)
class PIIGuard:
    """Offline PII redaction (see the module docstring for what it finds). Frozen, thread-safe.

    ``phone_regions``: regions whose national phone formats ``phonenumbers`` also recognises
    (international ``+CC ...`` and US-style numbers are found whatever the region);
    ``phone_leniency``: 0 takes any number ``phonenumbers`` deems possible there, 1 or more only
    valid ones; ``detect``:
    which pattern families run (:data:`~orchestrator.llm.pii_patterns.PATTERN_FAMILIES`); ``ner``:
    run the NER model (``ner_model``, a spaCy package name) for names and organisations;
    ``name_parts``: also match each part of a known name on its own (``Ana``, ``Sousa``), parts
    shorter than ``min_name_part`` excepted. Matching a part is case-insensitive, so a customer
    named Will also hides the word "will": safer than leaking the name.
    """

    phone_regions: tuple[str, ...] = ("US", "GB", "PT", "DE", "FR", "ES", "BR")
    phone_leniency: int = 1
    detect: frozenset[str] = PATTERN_FAMILIES
    ner: bool = True
    ner_model: str = MODEL
    name_parts: bool = True
    min_name_part: int = 2

    def __post_init__(self) -> None:
        unknown = set(self.detect) - PATTERN_FAMILIES
        if unknown:
            raise ConfigError(
                f"unknown PII detectors {sorted(unknown)}; choose from {sorted(PATTERN_FAMILIES)}"
            )

    def warm(self) -> None:
        """Load the recognizers and the NER model now (a few seconds) instead of on first use."""
        load_recognizers(self.phone_regions, self.phone_leniency, self.detect)
        if self.ner:
            load_model(self.ner_model)

    def redact(
        self,
        text: str,
        known: Known | None = None,
        *,
        mapping: Mapping[str, str] | None = None,
    ) -> Redacted:
        """``text`` with each PII span replaced by a placeholder; ``mapping`` continues an earlier
        one (same value → same placeholder), the returned mapping includes it."""
        return self._apply(text, self._spans([text], [known])[0], mapping)

    def redact_many(
        self, texts: Sequence[str], known: Known | Sequence[Known | None] | None = None
    ) -> list[Redacted]:
        """:meth:`redact` on each text, each with a mapping of its own, the NER model run once
        over the batch. ``known``: for all texts, or one entry per text."""
        per_text: Sequence[Known | None]
        if known is None or isinstance(known, KnownValues):
            per_text = [known] * len(texts)
        else:
            per_text = list(known)
            if len(per_text) != len(texts):
                raise ConfigError(
                    f"redact_many got {len(texts)} texts but {len(per_text)} known entries: "
                    "pass one KnownValues for all texts or one entry (or None) per text"
                )
        spans = self._spans(texts, per_text)
        return [self._apply(t, s, None) for t, s in zip(texts, spans, strict=True)]

    def restore(self, text: str, mapping: Mapping[str, str], *, json_escape: bool = False) -> str:
        """Put the original values back for each known placeholder (also ``[X_1]``, bare ``X_1``).

        ``json_escape``: ``text`` is JSON and placeholders sit inside string literals.
        """
        if not mapping or not text:
            return text

        def put(match: re.Match[str]) -> str:
            name = next(g for g in match.groups() if g is not None)
            value = mapping.get(f"<{name.upper()}>")
            if value is None:
                return match.group(0)
            return _json_inner(value) if json_escape else value

        return _PLACEHOLDER.sub(put, text)

    def restore_value(self, value: Any, mapping: Mapping[str, str]) -> Any:
        """``restore`` on every string inside dicts, lists and tuples (keys too); the rest as is."""
        if not mapping:
            return value
        if isinstance(value, str):
            return self.restore(value, mapping)
        if isinstance(value, Mapping):
            return {
                self.restore_value(k, mapping): self.restore_value(v, mapping)
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return type(value)(self.restore_value(v, mapping) for v in value)
        return value

    # --- detection --------------------------------------------------------------------------------

    def _spans(self, texts: Sequence[str], known: Sequence[Known | None]) -> list[list[Span]]:
        """Merged spans of each text: patterns and known values, then the model on the texts
        where capitalised words are left outside what those found."""
        found = [
            pattern_spans(text, self.detect, self.phone_regions, self.phone_leniency)
            + known_spans(
                text,
                known[i],
                self.phone_regions,
                name_parts=self.name_parts,
                min_part=self.min_name_part,
            )
            for i, text in enumerate(texts)
        ]
        if self.ner:
            model = ner_spans(texts, self.ner_model, found=found)
            for spans, more in zip(found, model, strict=True):
                spans += more
        if "PERSON" in self.detect:  # "Sean and <PERSON>": a name joined to a name
            for text, spans in zip(texts, found, strict=True):
                spans += conjoined_names(text, spans)
        return [choose(spans) for spans in found]

    def _apply(self, text: str, spans: list[Span], mapping: Mapping[str, str] | None) -> Redacted:
        table = dict(mapping or {})
        index = {self._key(_kind(ph), value): ph for ph, value in table.items()}
        counts: Counter[str] = Counter()
        out: list[str] = []
        last = 0
        for span in spans:
            value = text[span.start : span.end]
            key = self._key(span.kind, value)
            placeholder = index.get(key)
            if placeholder is None:
                n = 1 + sum(1 for ph in table if _kind(ph) == span.kind)
                placeholder = f"<{span.kind}_{n}>"
                index[key], table[placeholder] = placeholder, value
            out += [text[last : span.start], placeholder]
            last = span.end
            counts[span.kind] += 1
        out.append(text[last:])
        where = tuple((s.start, s.end, s.kind) for s in spans)
        return Redacted("".join(out), table, dict(counts), where)

    def _key(self, kind: str, value: str) -> str:
        return value_key(kind, value, self.phone_regions)


@cache
def default_guard() -> PIIGuard:
    """The shared guard with default settings."""
    return PIIGuard()


def _kind(placeholder: str) -> EntityType:
    return placeholder.strip("<>").rsplit("_", 1)[0]  # type: ignore[return-value]


def _json_inner(value: str) -> str:
    import json

    return json.dumps(value, ensure_ascii=False)[1:-1]
