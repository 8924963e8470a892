"""The lead_score skill: gradient-boosted trees on client and campaign features, run by ONNX Runtime.

Trained on UCI Bank Marketing (a Portuguese bank's phone campaigns for term deposits, 2008-2010)
by ``python -m skills.lead_score.train``, which writes ``artifacts/model.onnx`` and records its
sha256 and metrics in the build record (``artifacts/build.json``). The call's ``duration`` is not a feature: it is only known
after the call and would leak the outcome.

Example::

    score = LeadScore(artifacts_dir="skills/lead_score/artifacts")
    score.ensure_setup()
    client = {"age": [41], "job": ["technician"], "marital": ["married"], ...}
    result = score.predict(client)
    result.outputs["subscribe_probability"]  # [0.07...]
    result.outputs["will_subscribe"]         # [False]
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

import numpy as np
from pydantic import BaseModel, Field

from orchestrator.ports import Meaning
from orchestrator.skill import Batch, OnnxSkill, Predictions

__all__ = ["LeadFeatures", "LeadScore", "SubscribeOdds"]


class LeadFeatures(BaseModel):
    """One client, their history with the bank's campaigns, and the economy at contact time.

    Categorical fields take the dataset's values; ``"unknown"`` is a value too. A value the model
    never saw counts as none of the known ones.
    """

    age: int = Field(description="age in years")
    job: str = Field(
        description="admin., blue-collar, entrepreneur, housemaid, management, retired, "
        "self-employed, services, student, technician, unemployed or unknown"
    )
    marital: str = Field(description="married, single, divorced (or widowed) or unknown")
    education: str = Field(
        description="basic.4y, basic.6y, basic.9y, high.school, illiterate, professional.course, "
        "university.degree or unknown"
    )
    default: str = Field(description="has credit in default: no, yes or unknown")
    housing: str = Field(description="has a housing loan: no, yes or unknown")
    loan: str = Field(description="has a personal loan: no, yes or unknown")
    contact: str = Field(description="contact channel: cellular or telephone")
    month: str = Field(description="month of the contact: jan ... dec (3 letters, lowercase)")
    day_of_week: str = Field(description="weekday of the contact: mon, tue, wed, thu or fri")
    campaign: int = Field(description="contacts in this campaign so far, this one included")
    pdays: int = Field(
        description="days since the client was last contacted by a previous campaign; 999 = never"
    )
    previous: int = Field(description="contacts before this campaign")
    poutcome: str = Field(
        description="outcome of the previous campaign: failure, nonexistent or success"
    )
    emp_var_rate: float = Field(description="employment variation rate, quarterly")
    cons_price_idx: float = Field(description="consumer price index, monthly")
    cons_conf_idx: float = Field(description="consumer confidence index, monthly")
    euribor3m: float = Field(description="euribor 3-month rate, daily")
    nr_employed: float = Field(description="number of employees (thousands), quarterly")


class SubscribeOdds(BaseModel):
    """How likely the client is to subscribe to a term deposit."""

    subscribe_probability: Annotated[float, Meaning.probability("subscribe")] = Field(
        description="how likely the bank client is to subscribe to a term deposit (lead score): "
        "probability 0-1"
    )
    will_subscribe: Annotated[bool, Meaning.flag("will_subscribe")] = Field(
        description="whether the client is likely to subscribe (subscribe_probability >= 0.5)"
    )


#: Input fields in model order: the ONNX graph has one input per field, named after it.
FEATURES = tuple(LeadFeatures.model_fields)
#: Fields the model one-hot encodes (the rest are numbers).
CATEGORICAL = tuple(f for f, info in LeadFeatures.model_fields.items() if info.annotation is str)


class LeadScore(OnnxSkill):
    """Term-deposit propensity of a bank client (GradientBoostingClassifier on ONNX)."""

    name: ClassVar[str] = "lead_score"
    version: ClassVar[str] = "1.0.0"
    description: ClassVar[str] = (
        "Scores how likely a bank client is to subscribe to a term deposit if the campaign calls "
        "them, from their profile (age, job, marital status, education, loans, default), this "
        "and previous campaigns' contacts, and the economic indicators of the month. Returns the "
        "probability and will_subscribe (probability >= 0.5; about 1 client in 9 subscribes, so "
        "rank leads by the probability). Confidence is the probability of the will_subscribe "
        "answer."
    )
    Input: ClassVar[type[BaseModel]] = LeadFeatures
    Output: ClassVar[type[BaseModel]] = SubscribeOdds
    relative_cost: ClassVar[float] = 2.0
    #: will_subscribe is true from this probability on: "more likely than not", so the confidence
    #: max(p, 1 - p) is the probability of the answer given.
    threshold: ClassVar[float] = 0.5

    def feed(self, batch: Batch) -> dict[str, Any]:
        columns: dict[str, Any] = {}
        for field in FEATURES:
            if field in CATEGORICAL:
                column = np.array([str(value) for value in batch[field]], dtype=object)
            else:
                column = np.asarray(batch[field], dtype=np.float32)
            columns[field] = column.reshape(-1, 1)
        return columns

    def decode(self, outputs: list[Any], batch: Batch) -> Predictions:
        probability = outputs[1][:, 1].astype(np.float64)
        return Predictions(
            {
                "subscribe_probability": probability.tolist(),
                "will_subscribe": (probability >= self.threshold).tolist(),
            },
            np.maximum(probability, 1.0 - probability),
        )
