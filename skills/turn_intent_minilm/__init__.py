"""turn_intent_minilm: turn_intent's second tier, sentence embeddings (all-MiniLM-L6-v2) + a linear
head, blended with turn_intent's TF-IDF model; it answers the turns turn_intent is unsure of."""

from skills.turn_intent_minilm.skill import TurnIntentMiniLM

__all__ = ["TurnIntentMiniLM"]
