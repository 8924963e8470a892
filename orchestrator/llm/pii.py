"""PII detection and reversible redaction, fully offline.

:class:`PIIGuard` replaces each piece of personal data in a text with a placeholder (``<PERSON_1>``,
``<PHONE_1>``, ``<EMAIL_1>``, ``<CARD_1>``, ``<ADDRESS_1>``, ``<IBAN_1>``, ``<IP_1>``, ``<OTHER_1>``)
and keeps the mapping so :meth:`PIIGuard.restore` can put the values back into an answer::

    >>> guard = PIIGuard()
    >>> red = guard.redact("Ana asked us to call 912-345-678 or mail ana@example.pt")
    >>> red.text
    'Ana asked us to call <PHONE_1> or mail <EMAIL_1>'
    >>> guard.restore("Calling <PHONE_1> now", red.mapping)
    'Calling 912-345-678 now'

``Ana`` stayed: names and street addresses have no offline detector (the NER models are not on
PyPI), so only the values the job already knows catch them. With ``KnownValues(name=...)`` the
full name and each of its parts (first, last) are matched case-insensitively and accent-blind::

    >>> guard.redact("Ana asked", KnownValues(name="Ana Sousa")).text
    '<PERSON_1> asked'

What detects what:

* **Presidio pattern recognizers** (no NLP model): e-mail addresses (the domain checked against the
  Public Suffix List snapshot bundled with ``tldextract``, never downloaded), card numbers (Luhn
  checksum), IBANs (checksum; upper or lower case), IPv4/IPv6 addresses, phone numbers
  (``phonenumbers``: international formats anywhere, national formats for ``phone_regions``).
* **Known values** (:class:`KnownValues`, exact-match deny lists): the customer's name (full, and
  first/last parts), phone (any formatting: digits compared, with or without country code or trunk
  zero), e-mail (case-insensitive), street address (whole, or its comma-separated parts that hold a
  number or two words; ``Street``/``St``, ``Avenue``/``Ave``... are equal) and ``other`` strings.
* **Not detected**: names and addresses nobody told us about, spelled-out numbers ("nine one
  two..."), e-mails said aloud ("ana at example dot pt"), dates of birth, national ID numbers.

The same value gets the same placeholder within one mapping: pass the mapping of earlier texts
(``redact(..., mapping=m)``) to keep a conversation consistent. Nothing here logs a value; the
reprs of :class:`KnownValues` and :class:`Redacted` hide them.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache, lru_cache
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from presidio_analyzer import EntityRecognizer

__all__ = [
    "ENTITY_TYPES",
    "EntityType",
    "Known",
    "KnownValues",
    "PIIGuard",
    "Redacted",
    "default_guard",
]

EntityType = Literal["PERSON", "PHONE", "EMAIL", "CARD", "ADDRESS", "IBAN", "IP", "OTHER"]
ENTITY_TYPES: tuple[EntityType, ...] = (
    "PERSON", "PHONE", "EMAIL", "CARD", "ADDRESS", "IBAN", "IP", "OTHER",
)  # fmt: skip
#: Presidio entity → our placeholder type.
_PRESIDIO: dict[str, EntityType] = {
    "EMAIL_ADDRESS": "EMAIL",
    "CREDIT_CARD": "CARD",
    "IBAN_CODE": "IBAN",
    "IP_ADDRESS": "IP",
    "PHONE_NUMBER": "PHONE",
}
#: Overlapping spans merge; the type is the longest's, then the higher priority's.
_PRIORITY = {"known": 10, "CARD": 5, "IBAN": 5, "EMAIL": 4, "IP": 3, "PHONE": 2}
#: Name parts never matched on their own (particles and titles).
_NAME_STOP = frozenset(
    ("da", "de", "di", "do", "dos", "das", "du", "del", "della", "der", "den", "van", "von", "la",
     "le", "el", "al", "bin", "mr", "mrs", "ms", "dr", "sr", "jr"),
)  # fmt: skip
#: Street words and their abbreviations, matched as equals (canonical form first).
_STREET_WORDS = (
    ("street", "st"), ("avenue", "ave", "av", "avda"), ("road", "rd"), ("lane", "ln"),
    ("drive", "dr"), ("boulevard", "blvd"), ("court", "ct"), ("place", "pl"), ("square", "sq"),
    ("apartment", "apt"), ("suite", "ste"), ("floor", "fl"), ("rua", "r"), ("travessa", "tv"),
    ("strasse", "straße", "str"), ("number", "no", "nº", "n"),
)  # fmt: skip
_STREET_CANON = {alias: group[0] for group in _STREET_WORDS for alias in group}
_PLACEHOLDER = re.compile(
    r"<\s*(?P<a>[A-Za-z]+_\d+)\s*>|\[\s*(?P<b>[A-Za-z]+_\d+)\s*\]|\{\s*(?P<c>[A-Za-z]+_\d+)\s*\}"
    r"|\b(?P<d>(?:PERSON|PHONE|EMAIL|CARD|ADDRESS|IBAN|IP|OTHER)_\d+)\b"
)
_WORD = re.compile(r"[^\W_]+(?:['\u2019][^\W_]+)*")


@dataclass(frozen=True)
class KnownValues:
    """What the job already knows about the customer: exact-match deny lists (values hidden in repr).

    ``None`` or empty strings are ignored; ``other`` holds any further strings (account ids...).
    """

    name: str | None = field(default=None, repr=False)
    phone: str | None = field(default=None, repr=False)
    email: str | None = field(default=None, repr=False)
    address: str | None = field(default=None, repr=False)
    other: tuple[str, ...] = field(default=(), repr=False)

    def __repr__(self) -> str:
        given = [k for k in ("name", "phone", "email", "address", "other") if getattr(self, k)]
        return f"KnownValues(given={given})"

    @classmethod
    def from_record(cls, record: Mapping[str, Any], fields: Mapping[str, str]) -> KnownValues:
        """From a record's fields: ``fields`` maps a record key to ``name|phone|email|address|other``."""
        values: dict[str, Any] = {"other": []}
        for key, kind in fields.items():
            value = record.get(key)
            if value is None or value == "":
                continue
            if kind == "other":
                values["other"].append(str(value))
            else:
                values[kind] = str(value)
        return cls(**{**values, "other": tuple(values["other"])})


#: what a text may hold about customers: one customer's values, or several (a batch of items)
Known = KnownValues | Sequence[KnownValues]


@dataclass(frozen=True)
class Redacted:
    """A redacted text; ``mapping`` (placeholder → original) restores it and is hidden in repr."""

    text: str
    mapping: dict[str, str] = field(repr=False)
    #: spans replaced in this text, by placeholder type
    counts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class _Span:
    start: int
    end: int
    kind: EntityType
    priority: int


@dataclass(frozen=True)
class PIIGuard:
    """Offline PII redaction (see the module docstring for what it finds). Frozen, thread-safe.

    ``phone_regions``: regions whose national phone formats are recognised (international
    ``+CC ...`` numbers are found whatever the region); ``phone_leniency`` is phonenumbers'
    (0 possible, 1 valid, 2-3 stricter grouping); ``detect``: which pattern detectors run;
    ``name_parts``: also match each part of a known name on its own (``Ana``, ``Sousa``), parts
    shorter than ``min_name_part`` excepted. Matching a part is case-insensitive, so a customer
    named Will also hides the word "will": safer than leaking the name.
    """

    phone_regions: tuple[str, ...] = ("US", "GB", "PT", "DE", "FR", "ES", "BR")
    phone_leniency: int = 1
    detect: frozenset[str] = frozenset({"EMAIL", "CARD", "IBAN", "IP", "PHONE"})
    name_parts: bool = True
    min_name_part: int = 2

    def warm(self) -> None:
        """Load the recognizers now (presidio's import takes ~2 s) instead of on first use."""
        _recognizers(self.phone_regions, self.phone_leniency, self.detect)

    def redact(
        self,
        text: str,
        known: Known | None = None,
        *,
        mapping: Mapping[str, str] | None = None,
    ) -> Redacted:
        """``text`` with each PII span replaced by a placeholder; ``mapping`` continues an earlier
        one (same value → same placeholder), the returned mapping includes it."""
        spans = _choose([*self._detected(text), *self._known(text, known)])
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
        return Redacted("".join(out), table, dict(counts))

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

    def _detected(self, text: str) -> list[_Span]:
        spans: list[_Span] = []
        for recognizer in _recognizers(self.phone_regions, self.phone_leniency, self.detect):
            entity = recognizer.supported_entities[0]
            # IBANs are written in capitals in the pattern: scan an ASCII-uppercased copy (same
            # offsets) so lower-case ones are found too; the checksum keeps it honest.
            scanned = text.translate(_ASCII_UPPER) if entity == "IBAN_CODE" else text
            for result in recognizer.analyze(scanned, [entity], None):  # type: ignore[arg-type]
                kind = _PRESIDIO[result.entity_type]
                spans.append(_Span(result.start, result.end, kind, _PRIORITY[kind]))
        return spans

    def _known(self, text: str, known: Known | None) -> list[_Span]:
        if known is None:
            return []
        customers = [known] if isinstance(known, KnownValues) else known
        return [
            _Span(m.start(), m.end(), kind, _PRIORITY["known"] + bonus)
            for customer in dict.fromkeys(customers)  # a batch may name one customer many times
            for kind, pattern, bonus in _known_patterns(
                customer, self.phone_regions, self.name_parts, self.min_name_part
            )
            for m in pattern.finditer(text)
            if m.end() > m.start()
        ]

    def _key(self, kind: str, value: str) -> str:
        """What makes two spellings the same value (placeholders are shared by key)."""
        if kind == "PHONE":
            return "PHONE:" + _phone_digits(value, self.phone_regions)[1]
        if kind in ("CARD", "IBAN"):
            return f"{kind}:" + re.sub(r"[^0-9A-Za-z]", "", value).upper()
        if kind == "ADDRESS":
            return "ADDRESS:" + " ".join(_STREET_CANON.get(w, w) for w in _words(value))
        return f"{kind}:" + " ".join(_words(value))


@cache
def default_guard() -> PIIGuard:
    """The shared guard with default settings."""
    return PIIGuard()


# --- helpers ------------------------------------------------------------------------------------

_ASCII_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _kind(placeholder: str) -> str:
    return placeholder.strip("<>").rsplit("_", 1)[0]


def _json_inner(value: str) -> str:
    import json

    return json.dumps(value, ensure_ascii=False)[1:-1]


def _fold(text: str) -> str:
    """Case- and accent-blind form."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _words(text: str) -> list[str]:
    return _WORD.findall(_fold(text))


def _choose(spans: Iterable[_Span]) -> list[_Span]:
    """Overlapping spans merged into one (nothing half-redacted: a known name inside an e-mail
    takes the whole e-mail), typed after the longest member, then the higher priority."""
    merged: list[list[_Span]] = []
    for span in sorted(spans, key=lambda s: s.start):
        if merged and span.start < max(s.end for s in merged[-1]):
            merged[-1].append(span)
        else:
            merged.append([span])
    out = []
    for group in merged:
        best = max(group, key=lambda s: (s.end - s.start, s.priority))
        out.append(_Span(group[0].start, max(s.end for s in group), best.kind, best.priority))
    return out


def _accented() -> dict[str, str]:
    """Each basic Latin letter → itself and its accented forms (``e`` → ``eéèêë...``)."""
    variants: dict[str, str] = {c: c for c in "abcdefghijklmnopqrstuvwxyz"}
    for code in range(0xC0, 0x250):
        char = chr(code)
        base = _fold(char)
        if base in variants and char.islower():
            variants[base] += char
    return variants


_ACCENTED = _accented()


def _word_pattern(word: str) -> str:
    """A folded word, accent-blind: each letter also matches its accented forms (``ss``: ``ß``)."""
    return "(?:ss|ß)".join(
        "".join(f"[{_ACCENTED[c]}]" if len(_ACCENTED.get(c, "")) > 1 else re.escape(c) for c in w)
        for w in word.split("ss")
    )


#: German umlauts are also written ae/oe/ue: known names and addresses are matched both ways.
_UMLAUTS = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "Ä": "Ae", "Ö": "Oe", "Ü": "Ue"})


def _spellings(value: str) -> list[str]:
    return list(dict.fromkeys([value, value.translate(_UMLAUTS)]))


def _phone_digits(value: str, regions: tuple[str, ...]) -> tuple[str | None, str]:
    """(country code or None, national significant number) of a phone in any formatting."""
    import phonenumbers

    digits = re.sub(r"\D", "", value)
    text = value.strip()
    tries: list[tuple[str, str | None]] = []
    if text.startswith("+"):
        tries.append((text, None))
    elif digits.startswith("00"):
        tries.append(("+" + digits[2:], None))
    tries += [(text, region) for region in regions]
    tries.append(("+" + digits, None))
    for candidate, region in tries:
        try:
            number = phonenumbers.parse(candidate, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            return str(number.country_code), phonenumbers.national_significant_number(number)
    return None, digits


_SEP = r"[\s.\-()/]{0,3}"


def _phone_pattern(phone: str, regions: tuple[str, ...]) -> str | None:
    country, national = _phone_digits(phone, regions)
    if len(national) < 5:
        return None
    body = _SEP.join(national)
    if country is not None:
        prefix = rf"(?:\(?(?:\+|00)?[\s.]*{country}\)?[\s.\-]*(?:\(0\)[\s.\-]*)?|\(?0\)?[\s.\-]*)?"
    else:
        prefix = r"(?:\+[\s.]*)?"
    return rf"(?<![\d+]){prefix}\(?{body}(?!\d)"


def _phrase_pattern(words: list[str], *, street: bool = False) -> str:
    """Words in order, any punctuation or spaces between them, case- and accent-blind."""
    parts = []
    for word in words:
        if street and word in _STREET_CANON:
            canon = _STREET_CANON[word]
            aliases = sorted({a for a, c in _STREET_CANON.items() if c == canon}, key=len)[::-1]
            parts.append("(?:" + "|".join(_word_pattern(a) for a in aliases) + r")\.?")
        else:
            parts.append(_word_pattern(word))
    return r"(?<!\w)" + r"[\W_]{1,4}".join(parts) + r"(?!\w)"


@lru_cache(maxsize=2048)
def _known_patterns(
    known: KnownValues, regions: tuple[str, ...], name_parts: bool, min_part: int
) -> list[tuple[EntityType, re.Pattern[str], int]]:
    """(type, compiled pattern, priority bonus) for each known value: wholes before parts."""
    found: list[tuple[EntityType, str, int]] = []
    for name in _spellings(known.name or ""):
        words = _words(name)
        if not words:
            continue
        found.append(("PERSON", _phrase_pattern(words), 1))
        if name_parts and len(words) > 1:
            found += [
                ("PERSON", _phrase_pattern([w]), 0)
                for w in dict.fromkeys(words)
                if len(w) >= min_part and w not in _NAME_STOP
            ]
    if known.phone and (pattern := _phone_pattern(known.phone, regions)):
        found.append(("PHONE", pattern, 1))
    if known.email and known.email.strip():
        found.append(("EMAIL", r"(?<![\w.+-])" + re.escape(known.email.strip()) + r"(?!\w)", 1))
    for address in _spellings(known.address or ""):
        if not (words := _words(address)):
            continue
        found.append(("ADDRESS", _phrase_pattern(words, street=True), 1))
        for part in re.split(r"[,;\n]+", address):
            part_words = _words(part)
            if len(part_words) >= 2 or (any(c.isdigit() for c in part) and len(part.strip()) >= 3):
                found.append(("ADDRESS", _phrase_pattern(part_words, street=True), 0))
    for value in known.other:
        if words := _words(value):
            literal = re.escape(value.strip())
            found.append(("OTHER", rf"(?<!\w){literal}(?!\w)|{_phrase_pattern(words)}", 1))
    return [(kind, re.compile(p, re.IGNORECASE), bonus) for kind, p, bonus in found]


@lru_cache(maxsize=8)
def _recognizers(
    regions: tuple[str, ...], leniency: int, detect: frozenset[str]
) -> tuple[EntityRecognizer, ...]:
    """Presidio's pattern recognizers, offline: no NLP engine, no Public Suffix List download."""
    import tldextract
    from presidio_analyzer.predefined_recognizers import (
        CreditCardRecognizer,
        EmailRecognizer,
        IbanRecognizer,
        IpRecognizer,
        PhoneRecognizer,
    )

    # tldextract's module default fetches the Public Suffix List over HTTP on first use (and
    # writes a cache under ~/.cache). This one reads only the snapshot bundled in the wheel.
    offline = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)

    class OfflineEmailRecognizer(EmailRecognizer):
        def validate_result(self, pattern_text: str) -> bool:
            return bool(offline(pattern_text.rsplit("@", 1)[-1]).fqdn)

    makers: dict[str, Callable[[], EntityRecognizer]] = {
        "EMAIL": OfflineEmailRecognizer,
        "CARD": CreditCardRecognizer,
        "IBAN": IbanRecognizer,
        "IP": IpRecognizer,
        "PHONE": lambda: PhoneRecognizer(supported_regions=regions, leniency=leniency),
    }
    unknown = detect - set(makers)
    if unknown:
        raise ValueError(f"unknown detectors {sorted(unknown)}; choose from {sorted(makers)}")
    recognizers = tuple(makers[name]() for name in sorted(detect))
    offline("warm.example.com")  # load the snapshot now, not inside the first redaction
    return recognizers
