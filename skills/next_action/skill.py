"""next_action: rules choosing the agent's next move on an outbound sales call.

Inputs per turn: the CLINC150 intent of what the person said (or ``oos``) with its confidence, the
opt_out flag, and an optional lead score. Precedence, first match wins:

1. ``opted_out`` -> ``end_call_do_not_call``, whatever the rest says.
2. ``intent == "oos"`` or ``intent_confidence < MIN_INTENT_CONFIDENCE`` (we do not know what they
   want) -> ``transfer_to_human`` when ``lead_score >= HIGH_VALUE_LEAD``, else ``continue_script``
   (ask again / steer back). An unknown (``None``) lead score is not worth a human.
3. The intent's category in :data:`ROUTES` (every CLINC150 intent is listed there exactly once):
   ``refusal`` ends the call for a low-value lead (``< LOW_VALUE_LEAD``) and otherwise allows one
   more try (``continue_script``; ``None`` counts as "not low"); ``closing`` offers a callback to a
   high-value lead and otherwise ends the call; the other categories map to one action each.

Confidence is 1.0: the rules are deterministic and the uncertainty of the intent is already
handled by rule 2 (a low-confidence intent never drives an action by itself).
"""

from __future__ import annotations

import typing
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, Field

from orchestrator.ports import Meaning
from orchestrator.skill import Batch, Predictions, Skill

__all__ = [
    "ACTIONS",
    "CATEGORY_ACTION",
    "INTENT_CATEGORY",
    "ROUTES",
    "Action",
    "NextAction",
    "NextActionInput",
    "NextActionOutput",
    "decide",
]

Action = Literal[
    "end_call_do_not_call",
    "schedule_callback",
    "transfer_to_human",
    "answer_question",
    "continue_script",
    "end_call",
]
ACTIONS: tuple[str, ...] = typing.get_args(Action)

#: Below this intent confidence the intent is treated as unknown (like ``oos``).
MIN_INTENT_CONFIDENCE = 0.5
#: A lead at or above this score is worth a human agent's time, or a callback when leaving.
HIGH_VALUE_LEAD = 0.6
#: A lead below this score is let go at the first refusal.
LOW_VALUE_LEAD = 0.3

#: CLINC150 intent categories, each intent exactly once (tests check this against domains.json).
ROUTES: dict[str, tuple[str, ...]] = {
    # Security or an urgent problem with the person's money: a human at once, whoever the lead.
    "escalate": (
        "report_fraud", "freeze_account", "account_blocked", "report_lost_card",
        "card_declined", "damaged_card",
    ),
    # Needs the person's own account, hence authentication the calling agent cannot do.
    "account": (
        "routing", "pin_change", "bill_due", "pay_bill", "min_payment", "bill_balance",
        "transfer", "order_checks", "balance", "spending_history", "transactions",
        "replacement_card_duration", "expiration_date", "redeem_rewards", "credit_limit",
        "rewards_balance", "application_status", "credit_score", "travel_notification",
        "insurance", "insurance_change", "direct_deposit",
    ),
    # The person asks for a financial product: hand over to a human who can close.
    "buying_signal": ("new_card", "credit_limit_change", "rollover_401k"),
    # Their mind is on their schedule, on the road or on another call: "not now".
    "not_now": (
        "meeting_schedule", "schedule_meeting", "calendar", "calendar_update", "reminder",
        "reminder_update", "timezone", "traffic", "directions", "make_call",
    ),
    # A question the agent can answer briefly (or say where to find out) before going on.
    "question": (
        "interest_rate", "apr", "international_fees", "improve_credit_score", "food_last",
        "how_busy", "ingredients_list", "calories", "nutrition_info", "recipe",
        "restaurant_reviews", "meal_suggestion", "restaurant_suggestion",
        "ingredient_substitution", "cook_time", "accept_reservations", "oil_change_when",
        "oil_change_how", "tire_pressure", "mpg", "distance", "gas_type", "tire_change",
        "jump_start", "plug_type", "translate", "international_visa", "exchange_rate",
        "travel_suggestion", "travel_alert", "vaccines", "carry_on", "weather", "date", "time",
        "calculator", "definition", "measurement_conversion", "spelling", "next_holiday",
        "taxes", "who_made_you", "who_do_you_work_for", "what_is_your_name",
        "where_are_you_from", "are_you_a_bot", "what_can_i_ask_you",
    ),
    # Conversation mechanics: acknowledge and carry on with the script.
    "meta": (
        "yes", "maybe", "repeat", "thank_you", "greeting", "change_speed", "change_volume",
        "whisper_mode", "change_language", "change_accent", "user_name", "change_user_name",
    ),
    # Chit-chat, or a command meant for a voice assistant: deflect kindly, back to the script.
    "aside": (
        "confirm_reservation", "restaurant_reservation", "cancel_reservation", "what_song",
        "play_music", "todo_list_update", "order_status", "update_playlist", "shopping_list",
        "next_song", "order", "todo_list", "shopping_list_update", "smart_home",
        "current_location", "uber", "schedule_maintenance", "gas", "last_maintenance",
        "flight_status", "lost_luggage", "book_flight", "book_hotel", "car_rental", "alarm",
        "find_phone", "share_location", "timer", "flip_coin", "roll_dice", "text",
        "pto_request_status", "payday", "income", "pto_balance", "pto_request", "w2",
        "pto_used", "meaning_of_life", "do_you_have_pets", "what_are_your_hobbies", "fun_fact",
        "tell_joke", "how_old_are_you", "sync_device", "change_ai_name", "reset_settings",
    ),
    # "No" / "stop that": end for a low-value lead, else one more try (lead-dependent).
    "refusal": ("no", "cancel"),
    # They are leaving: a callback for a high-value lead, else end (lead-dependent).
    "closing": ("goodbye",),
}  # fmt: skip

#: Intent -> category, the inverse of :data:`ROUTES`.
INTENT_CATEGORY: dict[str, str] = {
    intent: category for category, intents in ROUTES.items() for intent in intents
}
if len(INTENT_CATEGORY) != sum(len(v) for v in ROUTES.values()):  # pragma: no cover
    raise RuntimeError("an intent is listed under two categories in ROUTES")

#: Action of each lead-independent category, and the reason given for it.
CATEGORY_ACTION: dict[str, tuple[Action, str]] = {
    "escalate": ("transfer_to_human", "security or urgent account problem: a human now"),
    "account": ("transfer_to_human", "needs their account: a human can authenticate"),
    "buying_signal": ("transfer_to_human", "buying signal: hand over to a human closer"),
    "not_now": ("schedule_callback", "busy, not a good time: offer a callback"),
    "question": ("answer_question", "question: answer briefly, then back to the script"),
    "meta": ("continue_script", "conversation mechanics: carry on"),
    "aside": ("continue_script", "off-topic: deflect kindly, back to the script"),
}


class NextActionInput(BaseModel):
    """What is known after one caller turn."""

    intent: Annotated[str, Meaning.labels("clinc150_intent")] = Field(
        description="CLINC150 intent name of the turn, or 'oos'"
    )
    intent_confidence: Annotated[float, Meaning.confidence(of="intent")] = Field(
        ge=0.0, le=1.0, description="confidence of that intent"
    )
    opted_out: Annotated[bool, Meaning.flag("opted_out")] = Field(
        description="output of the opt_out skill for the same turn"
    )
    lead_score: Annotated[float | None, Meaning.probability("subscribe")] = Field(
        default=None, ge=0.0, le=1.0, description="propensity to buy, 0-1; None if unknown"
    )


class NextActionOutput(BaseModel):
    """The agent's next move and why."""

    action: Annotated[Action, Meaning.labels("next_action")] = Field(
        description="the calling agent's next move after the caller's turn: end the call, "
        "transfer to a human, schedule a callback, answer the question or continue the script"
    )
    reason: Annotated[str, Meaning.note()] = Field(description="short human-readable justification")


def _lead(lead_score: float | None) -> str:
    return "unknown" if lead_score is None else f"{lead_score:.2f}"


def decide(
    intent: str, intent_confidence: float, opted_out: bool, lead_score: float | None = None
) -> tuple[Action, str]:
    """(action, reason) for one turn; raises ValueError for an intent that is not CLINC150."""
    if opted_out:
        return "end_call_do_not_call", "opted out: end politely and add to the do-not-call list"
    high = lead_score is not None and lead_score >= HIGH_VALUE_LEAD
    low = lead_score is not None and lead_score < LOW_VALUE_LEAD
    if intent == "oos" or intent_confidence < MIN_INTENT_CONFIDENCE:
        why = (
            "out of scope" if intent == "oos" else f"unsure of {intent!r} ({intent_confidence:.2f})"
        )
        if high:
            return "transfer_to_human", f"{why}, lead {_lead(lead_score)} worth a human"
        return "continue_script", f"{why}, lead {_lead(lead_score)} not worth a human: rephrase"
    category = INTENT_CATEGORY.get(intent)
    if category is None:
        raise ValueError(f"unknown intent {intent!r}; expected a CLINC150 intent name or 'oos'")
    if category == "refusal":
        if low:
            return "end_call", f"refusal ({intent}) from a low-value lead ({_lead(lead_score)})"
        return "continue_script", f"refusal ({intent}), lead {_lead(lead_score)}: one more try"
    if category == "closing":
        if high:
            return "schedule_callback", f"leaving, high-value lead ({_lead(lead_score)})"
        return "end_call", f"leaving ({intent}), lead {_lead(lead_score)}"
    action, why = CATEGORY_ACTION[category]
    return action, f"{intent}: {why}"


class NextAction(Skill):
    """Rule-based next move of an outbound calling agent; see the module docstring."""

    name: ClassVar[str] = "next_action"
    version: ClassVar[str] = "1.0.0"
    description: ClassVar[str] = (
        "Chooses the calling agent's next move after one caller turn on an outbound sales call "
        "(rules, microseconds, confidence always 1.0). Inputs: intent: str (a CLINC150 intent "
        "name or 'oos', e.g. from an intent classifier), intent_confidence: float 0-1, "
        "opted_out: bool (from opt_out on the same turn), lead_score: float 0-1 or None "
        "(propensity to buy; None = unknown). Output action, one of: end_call_do_not_call "
        "(opted out; always wins), transfer_to_human (fraud/security or account requests, "
        "buying signals, or oos / intent_confidence < 0.5 with lead_score >= 0.6), "
        "schedule_callback (busy/'not now' intents such as meeting_schedule, reminder, "
        "timezone, or goodbye from a lead >= 0.6), answer_question (in-scope question intents), "
        "continue_script (yes/maybe/repeat and other meta replies, chit-chat, oos with a "
        "lower or unknown lead, and no/cancel unless the lead is < 0.3), end_call (no/cancel "
        "with lead_score < 0.3, or goodbye with lead < 0.6 or unknown); and reason: str. An "
        "unknown intent name is an item error."
    )
    Input: ClassVar[type[BaseModel]] = NextActionInput
    Output: ClassVar[type[BaseModel]] = NextActionOutput

    def predict(self, batch: Batch) -> Predictions:
        """One action and reason per item; ``lead_score`` may be missing from the batch."""
        intents = batch["intent"]
        size = len(intents)
        leads = batch.get("lead_score")
        if leads is None:  # the column is optional: every lead unknown
            leads = [None] * size
        actions: list[str | None] = [None] * size
        reasons: list[str | None] = [None] * size
        errors: list[str | None] = [None] * size
        for i, (intent, conf, opted_out, lead) in enumerate(
            zip(intents, batch["intent_confidence"], batch["opted_out"], leads, strict=True)
        ):
            try:
                # NaN (a missing value from a dataframe) means unknown, like None.
                lead_score = None if lead is None or lead != lead else float(lead)
                actions[i], reasons[i] = decide(intent, float(conf), bool(opted_out), lead_score)
            except (TypeError, ValueError) as exc:  # one bad item must not sink the batch
                errors[i] = f"{type(exc).__name__}: {exc}"
        return Predictions(
            {"action": actions, "reason": reasons},
            [1.0] * size,
            errors if any(errors) else None,
        )
