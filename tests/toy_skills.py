"""Small skills with known answers, for testing the runtime itself (no model files needed)."""

from __future__ import annotations

from pydantic import BaseModel

from orchestrator import Predictions, Registry, Skill, skill


class Text(BaseModel):
    text: str


class Length(BaseModel):
    length: int


class Verdict(BaseModel):
    verdict: str


class Decision(BaseModel):
    length: int
    verdict: str


@skill(name="length", version="1.0.0", description="Number of characters; confidence len/10.")
def length(item: Text) -> tuple[Length, float]:
    if item.text == "boom":
        raise ValueError("boom is not a word")
    return Length(length=len(item.text)), min(1.0, len(item.text) / 10)


@skill(name="shout", version="1.0.0", description="'loud' when the text is upper case.")
def shout(item: Text) -> Verdict:
    return Verdict(verdict="loud" if item.text.isupper() else "calm")


@skill(name="decide", version="1.0.0", description="Joins a verdict and a length.")
def decide(item: Decision) -> Verdict:
    return Verdict(verdict=f"{item.verdict}-{item.length}")


@skill(
    name="upper",
    version="2.0.0",
    description="Upper-cases a column at once (batched).",
    batched=True,
    input=Text,
    output=Verdict,
)
def upper(batch: dict[str, list[str]]) -> Predictions:
    return Predictions({"verdict": [t.upper() for t in batch["text"]]}, [1.0] * len(batch["text"]))


class BrokenSetup(Skill):
    """Fails to load its model: the job must fail before any item runs."""

    name = "broken_setup"
    version = "1.0.0"
    description = "Always fails in setup()."
    Input = Text
    Output = Verdict

    def setup(self) -> None:
        raise RuntimeError("model file corrupt")

    def predict(self, batch):  # pragma: no cover - never reached
        raise AssertionError


class WrongLength(Skill):
    """Returns one output too few: the runtime must reject the batch."""

    name = "wrong_length"
    version = "1.0.0"
    description = "Breaks the contract by returning fewer outputs than inputs."
    Input = Text
    Output = Verdict

    def predict(self, batch):
        n = max(0, len(batch["text"]) - 1)
        return Predictions({"verdict": ["x"] * n}, [1.0] * n)


class Crashes(Skill):
    """Raises for the whole batch."""

    name = "crashes"
    version = "1.0.0"
    description = "Raises on every batch."
    Input = Text
    Output = Verdict

    def predict(self, batch):
        raise ZeroDivisionError("division by zero in legacy model")


def toy_registry() -> Registry:
    registry = Registry()
    for cls in (length, shout, decide, upper, BrokenSetup, WrongLength, Crashes):
        registry.register(cls, aliases=["prod"])
    return registry


TOY_GRAPH = {
    "name": "toy",
    "inputs": {"utterance": "str"},
    "steps": [
        {
            "id": "len",
            "skill": "length@prod",
            "inputs": {"text": "input.utterance"},
            "escalation": {"threshold": 0.5},
        },
        {"id": "sh", "skill": "shout", "inputs": {"text": "input.utterance"}},
        {
            "id": "dec",
            "skill": "decide",
            "inputs": {"length": "len.length", "verdict": "sh.verdict"},
        },
    ],
    "outputs": {"length": "len.length", "verdict": "dec.verdict", "conf": "len.confidence"},
    "evaluate": {"output": "verdict"},
}
