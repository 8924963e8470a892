"""The fast path of the PII guard: patterns, checksums and context words, no model.

:func:`pattern_spans` finds, by family (``detect``):

* ``EMAIL``, ``IBAN``, ``IP``: Presidio's pattern recognizers (the e-mail domain checked against
  the Public Suffix List snapshot bundled with ``tldextract``, never downloaded; IBAN checksums).
* ``PHONE``: US/NANP numbers (``+1``/``001``/``1-`` prefixes, ``(415)``, dots, dashes, spaces),
  international ``+CC``/``00CC`` numbers (``(0)`` trunk included), national numbers starting with
  a trunk zero, any 7-15 digit run after a phone word ("call", "cell", "reach"...), extensions
  (``x12``, ``ext. 12``, ``extension 12``) and spoken separators ("415 dash 555 dash 0132"); then,
  on the 8-15 digit runs nothing else took, ``phonenumbers`` for the national formats of
  ``phone_regions`` (``912 345 678`` in Portugal).
* ``CARD``: 12-19 digits plain, in groups of four, or 4-6-5/4-6-4, spaces or dashes; Luhn-valid,
  or any checksum after a card word ("card", "visa", "debit"...).
* ``SSN``: ``123-45-6789`` / ``123 45 6789`` anywhere, nine plain digits after an SSN word.
* ``LICENSE``: the first id-like token (5-20 letters/digits/dashes, 3+ digits) after a driver's
  licence word.
* ``ZIP``: five digits (``-1234``) before or after a ZIP word; UK postcodes anywhere (inside a
  street address the address takes them).
* ``ADDRESS``, ``ORG``, ``PERSON``: see :mod:`orchestrator.llm.pii_grammar` (street addresses,
  company suffixes, names after cue words).

Everything here is compiled once per process and costs ~0.1-0.5 ms per short text on one core, so
it runs on every text; the NER model (:mod:`orchestrator.llm.ner`) runs after it, and only where
these left capitalised words unexplained.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING

from orchestrator.errors import ConfigError
from orchestrator.llm.pii_grammar import grammar_spans
from orchestrator.llm.pii_span import PRIORITY, EntityType, Span

if TYPE_CHECKING:
    from presidio_analyzer import EntityRecognizer

__all__ = ["PATTERN_FAMILIES", "load_recognizers", "pattern_spans"]

#: the families :func:`pattern_spans` can look for (``PIIGuard.detect``)
PATTERN_FAMILIES = frozenset(
    {"EMAIL", "CARD", "IBAN", "IP", "PHONE", "SSN", "LICENSE", "ZIP", "ADDRESS", "ORG", "PERSON"}
)
_PRESIDIO: dict[str, EntityType] = {
    "EMAIL_ADDRESS": "EMAIL",
    "IBAN_CODE": "IBAN",
    "IP_ADDRESS": "IP",
}
_ASCII_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")

# A separator between digit groups: punctuation, spaces, or the word said aloud.
_SEP = r"(?:[ \t]*[.\-/][ \t]*|[ \t]+(?:dash|hyphen|dot|point|slash)[ \t]+|[ \t]+)"
_EXT_BODY = r"[ \t]*,?[ \t]*(?:x|ext\.?|extn\.?|extension|ex\.?)[ \t]*#?[ \t]*\d{1,6}"
_EXT = rf"(?:{_EXT_BODY})?"
_PHONES = [
    # NANP: optional +1 / 001 / 011 1 / 1-, area code with or without parentheses, 3-4 digits
    rf"(?<![\w+])(?:(?:\+|00|011)[ \t]?1{_SEP}?|1{_SEP})?(?:\([ \t]?\d{{3}}[ \t]?\)[ \t]?|\d{{3}}{_SEP}?)"
    rf"\d{{3}}{_SEP}?\d{{4}}{_EXT}(?![\w])",
    # international: +CC or 00CC, an optional (0), then 2-6 digit groups
    rf"(?<![\w+])(?:\+|00)[ \t]?\d{{1,3}}(?:[ \t]?\(0\)[ \t]?)?(?:{_SEP}?\(?\d{{1,6}}\)?){{1,6}}{_EXT}(?![\w])",
    # national with a trunk zero: 0XX XXXX XXXX and friends
    rf"(?<![\w+])\(?0\d{{1,4}}\)?(?:{_SEP}\d{{2,8}}){{1,4}}{_EXT}(?![\w])",
]
_DIGIT_RUN = re.compile(rf"(?<![\w+])\+?\(?\d[\d()]*(?:{_SEP}\(?\d+\)?)*{_EXT}(?![\w])")
_PHONE_CUE = re.compile(
    r"\b(?:call(?:s|ed|ing)?|phone[sd]?|numbers?|no\.|cell|mobile|tel|telephone|fax|text(?:ed)?|"
    r"reach(?:ed|ing)?|ring|line|landline|contact(?:ed)?|whats ?app|dial(?:ed|ing)?|extension|"
    r"ext)\b",
    re.IGNORECASE,
)
_CARD = re.compile(
    r"(?<![\w\-])(?:\d{4}(?P<s>[ \-])\d{4}(?P=s)\d{4}(?:(?P=s)\d{1,4}){0,2}"
    r"|\d{4}(?P<t>[ \-])\d{6}(?P=t)\d{4,5}|\d{12,19})(?![\w\-])"
)
_CARD_CUE = re.compile(
    r"\b(?:card|visa|master ?card|amex|american express|discover|diners|jcb|maestro|credit|"
    r"debit|cc)\b",
    re.IGNORECASE,
)
_SSN = re.compile(r"(?<![\w\-])\d{3}(?P<s>[\- ])\d{2}(?P=s)\d{4}(?![\w\-])")
_NINE = re.compile(r"(?<![\w\-])\d{9}(?![\w\-])")
_SSN_CUE = re.compile(
    r"\b(?:ssn|ss#|ss no|social(?: security)?(?: number| no\.?| #)?|tin|taxpayer id|tax id)\b",
    re.IGNORECASE,
)
_LICENSE_CUE = re.compile(
    r"\b(?:driver'?s'?|drivers|driving)[ \t]+licen[cs]e\b|\bDL\b|\bD\.L\.|\blicen[cs]e\b",
    re.IGNORECASE,
)
_ID_TOKEN = re.compile(
    r"(?<![\w\-])(?:[A-Za-z0-9][A-Za-z0-9\-]{4,19}|\d{3}[ ]\d{3}[ ]\d{3})(?![\w\-])"
)
_ZIP = re.compile(r"(?<![\w\-])\d{5}(?:-\d{4})?(?![\w\-])")
_ZIP_CUE = re.compile(r"\b(?:zip|zipcode|postal|post ?code)\b", re.IGNORECASE)
_UK_POSTCODE = re.compile(r"\b[A-Z]{1,2}\d[A-Z\d]?[ ]?\d[ABD-HJLNP-UW-Z]{2}\b")


def pattern_spans(
    text: str, detect: frozenset[str], regions: tuple[str, ...], leniency: int
) -> list[Span]:
    """Every span the pattern families in ``detect`` find in ``text`` (may overlap)."""
    spans: list[Span] = []
    for recognizer in load_recognizers(regions, leniency, detect):
        entity = recognizer.supported_entities[0]
        # IBANs are written in capitals in the pattern: scan an ASCII-uppercased copy (same
        # offsets) so lower-case ones are found too; the checksum keeps it honest.
        scanned = text.translate(_ASCII_UPPER) if entity == "IBAN_CODE" else text
        for result in recognizer.analyze(scanned, [entity], None):  # type: ignore[arg-type]
            kind = _PRESIDIO[result.entity_type]
            spans.append(Span(result.start, result.end, kind, PRIORITY[kind]))
    if any(c.isdigit() for c in text):
        for name, finder in _DIGIT_FINDERS.items():
            if name in detect:
                spans += finder(text)
        if "PHONE" in detect:
            spans += _national_phones(text, spans, regions, leniency)
    return spans + grammar_spans(text, detect)


def _span(m: re.Match[str] | tuple[int, int], kind: EntityType) -> Span:
    start, end = (m.start(), m.end()) if isinstance(m, re.Match) else m
    return Span(start, end, kind, PRIORITY[kind])


def _cued(cue: re.Pattern[str], text: str, start: int, window: int = 40) -> bool:
    return cue.search(text, max(0, start - window), start) is not None


def _digits(value: str) -> str:
    return re.sub(r"\D", "", value)


def _phones(text: str) -> list[Span]:
    spans = []
    for pattern in _phone_patterns():
        for m in pattern.finditer(text):
            if 7 <= len(_digits(_no_ext(m.group(0)))) <= 15:
                spans.append(_balanced(m))
    for m in _DIGIT_RUN.finditer(text):  # any run of 7-15 digits after a phone word
        if 7 <= len(_digits(_no_ext(m.group(0)))) <= 15 and _cued(_PHONE_CUE, text, m.start()):
            spans.append(_balanced(m))
    return spans


def _balanced(m: re.Match[str]) -> Span:
    """The phone without an opening parenthesis it does not close ("Ann (555-0132)")."""
    value, start = m.group(0), m.start()
    if value.startswith("(") and ")" not in value:
        start += 1
    return _span((start, m.end()), "PHONE")


@lru_cache(maxsize=1)
def _phone_patterns() -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(p, re.IGNORECASE) for p in _PHONES)


_EXT_TAIL = re.compile(_EXT_BODY + r"$", re.IGNORECASE)


def _no_ext(value: str) -> str:
    return _EXT_TAIL.sub("", value)


def _national_phones(
    text: str, found: list[Span], regions: tuple[str, ...], leniency: int
) -> list[Span]:
    """Digit runs no other pattern took that ``phonenumbers`` accepts as a national number of
    one of ``regions`` (``912 345 678`` in Portugal, ``06 12 34 56 78`` in France...)."""
    import phonenumbers

    spans = []
    for m in _DIGIT_RUN.finditer(text):
        digits = _digits(_no_ext(m.group(0)))
        if not 8 <= len(digits) <= 15 or any(
            s.start < m.end() and m.start() < s.end for s in found
        ):
            continue
        for region in regions:
            try:
                number = phonenumbers.parse(m.group(0), region)
            except phonenumbers.NumberParseException:
                continue
            check = phonenumbers.is_valid_number if leniency else phonenumbers.is_possible_number
            if check(number):
                spans.append(_span(m, "PHONE"))
                break
    return spans


def _cards(text: str) -> list[Span]:
    spans = []
    for m in _CARD.finditer(text):
        digits = _digits(m.group(0))
        if (_luhn(digits) and len(digits) >= 12) or (
            len(digits) >= 13 and _cued(_CARD_CUE, text, m.start())
        ):
            spans.append(_span(m, "CARD"))
    return spans


def _luhn(digits: str) -> bool:
    total = 0
    for i, c in enumerate(reversed(digits)):
        d = int(c) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def _ssns(text: str) -> list[Span]:
    spans = [_span(m, "SSN") for m in _SSN.finditer(text)]
    spans += [_span(m, "SSN") for m in _NINE.finditer(text) if _cued(_SSN_CUE, text, m.start())]
    return spans


def _licenses(text: str) -> list[Span]:
    spans = []
    for cue in _LICENSE_CUE.finditer(text):
        for m in _ID_TOKEN.finditer(text, cue.end(), min(len(text), cue.end() + 40)):
            if sum(c.isdigit() for c in m.group(0)) >= 3:
                spans.append(_span(m, "LICENSE"))
                break
    return spans


def _zips(text: str) -> list[Span]:
    spans = [_span(m, "ZIP") for m in _UK_POSTCODE.finditer(text)]
    for m in _ZIP.finditer(text):
        before = _cued(_ZIP_CUE, text, m.start(), 30)
        after = _ZIP_CUE.search(text, m.end(), m.end() + 15) is not None
        if before or after:
            spans.append(_span(m, "ZIP"))
    return spans


_DIGIT_FINDERS: dict[str, Callable[[str], list[Span]]] = {
    "PHONE": _phones,
    "CARD": _cards,
    "SSN": _ssns,
    "LICENSE": _licenses,
    "ZIP": _zips,
}


@lru_cache(maxsize=8)
def load_recognizers(
    regions: tuple[str, ...], leniency: int, detect: frozenset[str]
) -> tuple[EntityRecognizer, ...]:
    """Presidio's pattern recognizers, offline: no NLP engine, no Public Suffix List download."""
    unknown = detect - PATTERN_FAMILIES
    if unknown:
        raise ConfigError(
            f"unknown PII detectors {sorted(unknown)}; choose from {sorted(PATTERN_FAMILIES)}"
        )
    import tldextract
    from presidio_analyzer.predefined_recognizers import (
        EmailRecognizer,
        IbanRecognizer,
        IpRecognizer,
    )

    # tldextract's module default fetches the Public Suffix List over HTTP on first use (and
    # writes a cache under ~/.cache). This one reads only the snapshot bundled in the wheel.
    offline = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)

    class OfflineEmailRecognizer(EmailRecognizer):
        def validate_result(self, pattern_text: str) -> bool:
            return bool(offline(pattern_text.rsplit("@", 1)[-1]).fqdn)

    makers: dict[str, Callable[[], EntityRecognizer]] = {
        "EMAIL": OfflineEmailRecognizer,
        "IBAN": IbanRecognizer,
        "IP": IpRecognizer,
    }
    recognizers = tuple(makers[name]() for name in sorted(detect & set(makers)))
    offline("warm.example.com")  # load the snapshot now, not inside the first redaction
    return recognizers
