"""Call scripts from real utterances: what a called customer says, turn by turn.

Each call follows a *scenario* — a list of slots, each slot a set of CLINC150 intents (or an
opt-out, or an out-of-scope turn) — and each slot is filled with a real utterance drawn from:

- CLINC150 **test** (in-scope intents) and **oos_test** (out-of-scope turns): never seen in training;
- the opt-out phrasings of ``skills/opt_out/testset.jsonl`` written after its rules were (the
  ``holdout`` and ``blind`` splits): about one in five is worded in a way the rules miss;
- questions about the term deposit (``faq_questions.csv``: rates, fees, early withdrawal, who is
  calling, how we got the number...), worded unlike the FAQ's own questions (``faq.csv``). The
  intent model was trained on CLINC150, not on them: only those it routes to ``answer_question``
  get a reply from the FAQ.

Likelier buyers are likelier to follow the ``interested`` scenario (its weight grows with the
lead score); the others are the usual mix of questions, "not now", refusals, opt-outs and
off-topic turns. Draws are seeded: the same seed gives the same calls.
"""

from __future__ import annotations

import csv
import json
import random
from collections import defaultdict
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from skills.data import OOS_INTENT, clinc150

__all__ = ["SCENARIOS", "ScriptedTurn", "draw_script"]

OPT_OUT = "opt_out"
#: a question about the campaign's product (faq_questions.csv)
FAQ = "faq_question"
ROOT = Path(__file__).resolve().parents[2]

#: scenario -> slots; a slot lists the intents one of which the customer says in that turn
SCENARIOS: dict[str, list[tuple[str, ...]]] = {
    "interested": [
        ("greeting",),
        ("yes",),
        ("interest_rate", "apr", FAQ),
        ("new_card", "credit_limit_change", "rollover_401k"),
    ],
    "question": [
        ("greeting",),
        ("interest_rate", "apr", "international_fees", FAQ, FAQ),
        (FAQ,),
        ("yes", "maybe"),
        ("thank_you",),
        ("goodbye",),
    ],
    "busy": [("greeting",), ("meeting_schedule", "calendar", "reminder"), ("goodbye",)],
    "refusal": [("greeting",), ("no",), ("no", "cancel"), ("goodbye",)],
    "opt_out": [("greeting",), (OPT_OUT,)],
    "off_topic": [("greeting",), (OOS_INTENT,), ("repeat", "maybe"), (OOS_INTENT,), ("goodbye",)],
}
#: weights of the scenarios other than ``interested`` (whose weight is 0.05 + 0.5 * score)
WEIGHTS = {"question": 0.2, "busy": 0.15, "refusal": 0.25, "opt_out": 0.1, "off_topic": 0.15}


@dataclass(frozen=True)
class ScriptedTurn:
    """One customer turn: which slot it fills and what was said."""

    slot: str
    utterance: str


@cache
def _pools() -> dict[str, list[str]]:
    pools: dict[str, list[str]] = defaultdict(list)
    for text, intent in clinc150("test") + clinc150("oos_test"):
        pools[intent].append(text)
    with (Path(__file__).with_name("faq_questions.csv")).open(encoding="utf-8") as handle:
        pools[FAQ] += [r["question"] for r in csv.DictReader(handle) if r["id"] != "unknown"]
    path = ROOT / "skills" / "opt_out" / "testset.jsonl"
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if row["opted_out"] and row["split"] in ("holdout", "blind"):
            pools[OPT_OUT].append(row["text"])
    return dict(pools)


def draw_script(rng: random.Random, lead_score: float) -> tuple[str, list[ScriptedTurn]]:
    """A scenario for a lead of this score and its turns, drawn from ``rng``."""
    weights = {"interested": 0.05 + 0.5 * lead_score, **WEIGHTS}
    scenario = rng.choices(list(weights), weights=list(weights.values()))[0]
    pools = _pools()
    turns = []
    for slot in SCENARIOS[scenario]:
        intent = rng.choice(slot)
        turns.append(ScriptedTurn(intent, rng.choice(pools[intent])))
    return scenario, turns
