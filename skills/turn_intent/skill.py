"""The turn_intent skill: a TF-IDF + logistic regression intent classifier, run by ONNX Runtime.

Trained on CLINC150 (150 intents across 10 domains, plus out-of-scope utterances) by
``python -m skills.turn_intent.train``, which writes ``artifacts/model.onnx`` and records its
sha256 and metrics in the build record (``artifacts/build.json``).

Example::

    intent = TurnIntent(artifacts_dir="skills/turn_intent/artifacts")
    intent.ensure_setup()
    result = intent.predict({"text": ["what's my checking balance", "tell me about volcanoes"]})
    result.outputs["intent"]  # ['balance', 'oos']
    result.confidence         # array([0.9..., 0.2...], dtype=float32)
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar

import numpy as np
from pydantic import BaseModel, Field

from orchestrator.ports import Meaning
from orchestrator.skill import Batch, OnnxClassifierSkill, Predictions

__all__ = ["TurnIntent", "normalize_text"]

_WHITESPACE = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """Lowercase and turn every run of whitespace into one space.

    Training and :meth:`TurnIntent.feed` both apply it, so the ONNX graph sees the text the
    scikit-learn pipeline saw: its char n-grams collapse whitespace runs, which the ONNX tokenizer
    does not, and Python's lowercasing does not depend on the machine's locales.
    """
    return _WHITESPACE.sub(" ", text.lower())


#: The label set of CLINC150 intents (+ ``oos``): inputs that take an intent name read only it.
INTENT_LABELS = "clinc150_intent"


class Utterance(BaseModel):
    """One customer turn."""

    text: Annotated[str, Meaning.text()] = Field(
        description="what the customer said, as transcribed (any case)"
    )


class Intent(BaseModel):
    """The customer's intent."""

    intent: Annotated[str, Meaning.labels(INTENT_LABELS)] = Field(
        description="what the customer wants (the turn's intent): one of the 150 CLINC150 intent names (e.g. 'balance', 'book_flight', "
        "'cancel_reservation'), or 'oos' when the turn is outside them"
    )


class TurnIntent(OnnxClassifierSkill):
    """CLINC150 intent classifier (word 1-2 + char 2-5 TF-IDF, logistic regression) on ONNX."""

    name: ClassVar[str] = "turn_intent"
    version: ClassVar[str] = "1.0.0"
    description: ClassVar[str] = (
        "Classifies one customer utterance into one of 150 intents from the CLINC150 set (banking, "
        "credit cards, travel, home, auto, kitchen, work, small talk, meta, utility; e.g. "
        "'balance', 'transfer', 'book_flight', 'cancel_reservation', 'weather') or 'oos' when it "
        "fits none of them. Confidence is the probability of the chosen intent; out-of-scope turns "
        "are often misread as an intent with low confidence, so escalate those."
    )
    Input: ClassVar[type[BaseModel]] = Utterance
    Output: ClassVar[type[BaseModel]] = Intent
    label_field: ClassVar[str] = "intent"
    relative_cost: ClassVar[float] = 2.0
    #: ONNX Runtime keeps buffers sized for the largest batch it has seen (~0.3 MB per item here):
    #: 1,024 bounds a worker near 470 MB while keeping batches large enough to amortise calls.
    max_batch: ClassVar[int | None] = 1024

    @classmethod
    def output_labels(cls) -> dict[str, list[str]]:
        """The 150 CLINC150 intents and ``oos``: the big model must pick one of them."""
        import json

        from skills.data import DATASETS_DIR, OOS_INTENT

        domains = json.loads((DATASETS_DIR / "clinc150" / "domains.json").read_text())
        intents = sorted({intent for names in domains.values() for intent in names})
        return {cls.label_field: [*intents, OOS_INTENT]}

    def feed(self, batch: Batch) -> dict[str, Any]:
        texts = [normalize_text(text) for text in batch["text"]]
        return {"text": np.array(texts, dtype=object).reshape(-1, 1)}

    def predict(self, batch: Batch) -> Predictions:
        if len(batch["text"]) == 0:
            return Predictions({self.label_field: []}, np.zeros(0, dtype=np.float32))
        return super().predict(batch)
