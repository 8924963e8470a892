"""The turn_intent_minilm skill: the second tier of the intent cascade.

turn_intent (TF-IDF + logistic regression, ~0.1 ms a turn) answers every turn; the turns it is
unsure of go to this skill before the big model. It embeds the turn with the project's shared
all-MiniLM-L6-v2 encoder (:mod:`orchestrator.embedding`: one copy per process or Ray cluster, not
one per skill), scores the 151 classes with a logistic-regression head, and blends those
probabilities with the TF-IDF model's (``tfidf_weight``, chosen on CLINC150 val): the two models
err on different turns. ~4 ms a turn on one CPU core; a GPU runs the encoder when onnxruntime has
a CUDA provider.

It is a CSV-style embedding tier (:class:`~orchestrator.registry.kinds.EmbeddingClassifier`) whose
classes, blend weight and encoder pin come from its build (``blend.json``). Artifacts (built by
``python -m skills.turn_intent_minilm.train``): ``model.onnx`` (embedding + TF-IDF probabilities
-> blended probabilities), ``tfidf.onnx`` (turn_intent's model it was trained with),
``blend.json``, ``val.csv``.

Example::

    tier2 = TurnIntentMiniLM(artifacts_dir="skills/turn_intent_minilm/artifacts")
    tier2.ensure_setup()
    tier2.predict({"text": ["what's my checking balance"]}).outputs["intent"]  # ['balance']
"""

from __future__ import annotations

import json
from typing import ClassVar

import numpy as np
from pydantic import BaseModel

from orchestrator.registry.kinds import EmbeddingClassifier
from skills.turn_intent.skill import Intent, TurnIntent, Utterance

__all__ = ["TurnIntentMiniLM"]


class TurnIntentMiniLM(EmbeddingClassifier):
    """CLINC150 intents from sentence embeddings + a linear head, blended with TF-IDF scores."""

    name: ClassVar[str] = "turn_intent_minilm"
    version: ClassVar[str] = "1.0.0"
    description: ClassVar[str] = (
        "Second opinion on a customer utterance's CLINC150 intent (150 intents, or 'oos' when it "
        "fits none), from all-MiniLM-L6-v2 sentence embeddings and a linear head blended with "
        "turn_intent's TF-IDF model. Dearer than turn_intent (~4 ms a turn on CPU) and more "
        "accurate: put it in turn_intent's escalation chain, before the big model."
    )
    Input: ClassVar[type[BaseModel]] = Utterance
    Output: ClassVar[type[BaseModel]] = Intent
    label_field: ClassVar[str] = "intent"
    text_field: ClassVar[str] = "text"
    relative_cost: ClassVar[float] = 40.0

    def setup(self) -> None:
        """The build's classes, blend weight and encoder pin, then the shared sessions."""
        blend = json.loads(self.artifact("blend.json").read_text(encoding="utf-8"))
        self.tfidf_weight = float(blend["tfidf_weight"])
        self.labels = tuple(str(c) for c in blend["classes"])
        self.encoder_name = str(blend["encoder"]["name"])
        self.encoder_sha256 = str(blend["encoder"]["sha256"])
        super().setup()

    @classmethod
    def output_labels(cls) -> dict[str, list[str]]:
        """The same 150 intents and ``oos`` as turn_intent."""
        return TurnIntent.output_labels()

    def probabilities(self, texts: list[str]) -> np.ndarray:
        """Blended class probabilities: ``w * tfidf + (1 - w) * minilm``."""
        return np.asarray(self.session.run(None, self.feed({"text": texts}))[0])
