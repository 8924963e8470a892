"""Tests of the next_action rule skill (called directly, no Ray)."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import Any

import pytest

from orchestrator.registry.manifest import load_manifest
from skills.next_action.skill import (
    ACTIONS,
    HIGH_VALUE_LEAD,
    INTENT_CATEGORY,
    LOW_VALUE_LEAD,
    MIN_INTENT_CONFIDENCE,
    NextAction,
    NextActionOutput,
)

ROOT = Path(__file__).resolve().parents[1]
CLINC_INTENTS = sorted(
    intent
    for intents in json.loads(
        (ROOT / "skills" / "datasets" / "clinc150" / "domains.json").read_text(encoding="utf-8")
    ).values()
    for intent in intents
)


@pytest.fixture(scope="module")
def skill() -> NextAction:
    s = NextAction()
    s.ensure_setup()
    return s


def act(skill: NextAction, rows: list[tuple]) -> list[str]:
    """Actions for rows of (intent, intent_confidence, opted_out, lead_score)."""
    intent, conf, opted_out, lead = (list(col) for col in zip(*rows, strict=True))
    result = skill.predict(
        {"intent": intent, "intent_confidence": conf, "opted_out": opted_out, "lead_score": lead}
    )
    assert result.errors is None
    return list(result.outputs["action"])


def test_definition_and_manifest() -> None:
    NextAction.check_definition()
    manifest = load_manifest(ROOT / "skills" / "next_action")
    assert (manifest.name, manifest.version) == (NextAction.name, NextAction.version)
    assert manifest.entrypoint == "skills.next_action.skill:NextAction"
    assert "prod" in manifest.aliases


def test_every_clinc_intent_is_routed_once() -> None:
    assert len(CLINC_INTENTS) == 150
    assert sorted(INTENT_CATEGORY) == CLINC_INTENTS


def test_opt_out_always_wins(skill: NextAction) -> None:
    rows = [
        (intent, conf, True, lead)
        for intent, conf, lead in itertools.product(
            [*CLINC_INTENTS, "oos"], [0.0, 0.3, 0.99], [None, 0.0, 0.5, 1.0]
        )
    ]
    assert set(act(skill, rows)) == {"end_call_do_not_call"}
    # Even an intent the table does not know cannot stop an opt-out.
    assert act(skill, [("no_such_intent", 0.9, True, None)]) == ["end_call_do_not_call"]


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        (("report_fraud", 0.9, False, 0.0), "transfer_to_human"),
        (("freeze_account", 0.9, False, None), "transfer_to_human"),
        (("balance", 0.9, False, None), "transfer_to_human"),
        (("new_card", 0.9, False, None), "transfer_to_human"),
        (("meeting_schedule", 0.9, False, 0.1), "schedule_callback"),
        (("reminder", 0.9, False, None), "schedule_callback"),
        (("timezone", 0.9, False, 0.9), "schedule_callback"),
        (("interest_rate", 0.9, False, None), "answer_question"),
        (("are_you_a_bot", 0.9, False, 0.2), "answer_question"),
        (("yes", 0.9, False, None), "continue_script"),
        (("maybe", 0.9, False, 0.1), "continue_script"),
        (("repeat", 0.9, False, 0.9), "continue_script"),
        (("tell_joke", 0.9, False, 0.9), "continue_script"),
        (("no", 0.9, False, 0.1), "end_call"),
        (("cancel", 0.9, False, 0.1), "end_call"),
        (("no", 0.9, False, 0.8), "continue_script"),
        (("no", 0.9, False, None), "continue_script"),
        (("goodbye", 0.9, False, 0.1), "end_call"),
        (("goodbye", 0.9, False, None), "end_call"),
        (("goodbye", 0.9, False, 0.9), "schedule_callback"),
        (("oos", 0.9, False, 0.9), "transfer_to_human"),
        (("oos", 0.9, False, 0.1), "continue_script"),
        (("oos", 0.9, False, None), "continue_script"),
        (("interest_rate", 0.2, False, 0.9), "transfer_to_human"),
        (("report_fraud", 0.2, False, None), "continue_script"),
    ],
)
def test_routes(skill: NextAction, row: tuple, expected: str) -> None:
    assert act(skill, [row]) == [expected]


def test_thresholds_are_inclusive(skill: NextAction) -> None:
    assert act(skill, [("oos", 0.9, False, HIGH_VALUE_LEAD)]) == ["transfer_to_human"]
    assert act(skill, [("no", 0.9, False, LOW_VALUE_LEAD)]) == ["continue_script"]
    assert act(skill, [("yes", MIN_INTENT_CONFIDENCE, False, None)]) == ["continue_script"]


def test_every_action_is_reachable(skill: NextAction) -> None:
    rows = list(
        itertools.product([*CLINC_INTENTS, "oos"], [0.2, 0.9], [False, True], [None, 0.1, 0.9])
    )
    assert set(act(skill, rows)) == set(ACTIONS)


def test_lead_score_missing_none_or_nan(skill: NextAction) -> None:
    batch: dict[str, list[Any]] = {
        "intent": ["oos", "no"],
        "intent_confidence": [0.9, 0.9],
        "opted_out": [False, False],
    }
    missing = skill.predict(batch)
    with_none = skill.predict({**batch, "lead_score": [None, None]})
    with_nan = skill.predict({**batch, "lead_score": [math.nan, math.nan]})
    expected = ["continue_script", "continue_script"]
    for result in (missing, with_none, with_nan):
        assert list(result.outputs["action"]) == expected
        assert "unknown" in result.outputs["reason"][0]


def test_outputs_validate_lengths_and_confidence(skill: NextAction) -> None:
    rows = [(intent, 0.9, False, 0.5) for intent in CLINC_INTENTS]
    intent, conf, opted_out, lead = (list(col) for col in zip(*rows, strict=True))
    result = skill.predict(
        {"intent": intent, "intent_confidence": conf, "opted_out": opted_out, "lead_score": lead}
    )
    assert len(result) == len(result.outputs["action"]) == len(result.outputs["reason"]) == 150
    assert list(result.confidence) == [1.0] * 150
    for action, reason in zip(result.outputs["action"], result.outputs["reason"], strict=True):
        NextActionOutput(action=action, reason=reason)  # the Literal accepts every action
        assert reason


def test_empty_batch(skill: NextAction) -> None:
    result = skill.predict({"intent": [], "intent_confidence": [], "opted_out": []})
    assert len(result) == 0
    assert list(result.outputs["action"]) == list(result.outputs["reason"]) == []


def test_unknown_intent_is_an_item_error(skill: NextAction) -> None:
    result = skill.predict(
        {"intent": ["yes", "not_an_intent"], "intent_confidence": [0.9, 0.9], "opted_out": [0, 0]}
    )
    assert result.errors is not None
    assert result.errors[0] is None
    assert "not_an_intent" in (result.errors[1] or "")
    assert result.outputs["action"][0] == "continue_script"
