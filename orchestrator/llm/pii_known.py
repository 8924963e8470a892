"""What the job already knows about a customer, matched as exact deny lists.

:class:`KnownValues` holds a customer's name, phone, e-mail, address and other strings;
:func:`known_spans` finds them in a text in any casing or formatting: the full name and each of
its parts (first, last), accent-blind and with German umlauts also as ae/oe/ue; the phone in any
formatting (digits compared, with or without country code or trunk zero); the e-mail
case-insensitively; the address whole, or its comma-separated parts that hold a number or two
words (``Street``/``St``, ``Avenue``/``Ave``... are equal). :func:`value_key` says when two
spellings are the same value, so they share one placeholder.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from orchestrator.llm.pii_span import PRIORITY, EntityType, Span

__all__ = ["Known", "KnownValues", "known_spans", "value_key"]

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


def known_spans(
    text: str,
    known: Known | None,
    regions: tuple[str, ...],
    *,
    name_parts: bool = True,
    min_part: int = 2,
) -> list[Span]:
    """Where the known values of one customer (or of several: a batch) occur in ``text``."""
    if known is None:
        return []
    customers = [known] if isinstance(known, KnownValues) else known
    return [
        Span(m.start(), m.end(), kind, PRIORITY["known"] + bonus)
        for customer in dict.fromkeys(customers)  # a batch may name one customer many times
        for kind, pattern, bonus in _known_patterns(customer, regions, name_parts, min_part)
        for m in pattern.finditer(text)
        if m.end() > m.start()
    ]


def value_key(kind: str, value: str, regions: tuple[str, ...]) -> str:
    """What makes two spellings the same value (placeholders are shared by key)."""
    if kind == "PHONE":
        return "PHONE:" + _phone_digits(value, regions)[1]
    if kind in ("CARD", "IBAN", "SSN", "LICENSE"):
        return f"{kind}:" + re.sub(r"[^0-9A-Za-z]", "", value).upper()
    if kind == "ADDRESS":
        return "ADDRESS:" + " ".join(_STREET_CANON.get(w, w) for w in _words(value))
    return f"{kind}:" + " ".join(_words(value))


# --- helpers ------------------------------------------------------------------------------------


def _fold(text: str) -> str:
    """Case- and accent-blind form."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _words(text: str) -> list[str]:
    return _WORD.findall(_fold(text))


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
