"""turn_intent: one customer utterance -> one of 150 CLINC150 intents, or ``oos`` (out of scope)."""

from skills.turn_intent.skill import TurnIntent, normalize_text

__all__ = ["TurnIntent", "normalize_text"]
