"""What a skill's inputs and outputs *mean*, so a graph can only wire values that make sense.

Python types are too weak a fence: ``str -> str`` lets a customer's utterance feed an input that
expects an intent name, and every item then fails at run time. A port declares its meaning with a
:class:`Meaning` in its annotation::

    class Intent(BaseModel):
        intent: Annotated[str, Meaning.labels("clinc150_intent")] = Field(description=...)

    class NextActionInput(BaseModel):
        intent: Annotated[str, Meaning.labels("clinc150_intent")]
        intent_confidence: Annotated[float, Meaning.confidence(of="intent")]
        opted_out: Annotated[bool, Meaning.flag("opted_out")]

Kinds: ``text`` (free text a person wrote or said), ``label`` (one of a closed, named label set),
``flag`` (a yes/no fact, named), ``probability`` (0-1, named), ``confidence`` (a step's confidence
in its answer), ``number``, ``note`` (text written by a skill for people, e.g. a reason: never fed
to a text input) and ``value`` (a plain value: what a job field is unless the graph says more).

The rule (:func:`mismatch`): an input that declares no meaning takes anything its Python type
admits (skills written before ports keep working); a declared input takes a source of the same
kind and, when the input names its label set or concept, the same name (a label set may be
declared a subset of another). A plain job value fits any input that is not ``text`` or ``label``:
the caller vouches for what its own fields hold. Undeclared outputs get a meaning from their type:
a ``Literal`` is a label set named ``<skill>.<field>``, a ``bool`` a flag of that name, numbers
are ``number``, strings ``value``.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "KINDS",
    "STEP_EXTRAS",
    "Kind",
    "Meaning",
    "declared_meaning",
    "job_meaning",
    "mismatch",
    "output_meaning",
]

Kind = Literal["text", "label", "flag", "probability", "confidence", "number", "note", "value"]
KINDS: tuple[Kind, ...] = typing.get_args(Kind)


@dataclass(frozen=True)
class Meaning:
    """The meaning of one port: a kind, and for labels/flags/probabilities the concept's name.

    ``members``: the closed label set when it is known from the code (trained classifiers know
    theirs; a model whose labels live in data may leave it empty). ``subset_of``: this label set
    is a declared subset of another, so it may feed inputs of that one. ``of``: for a confidence
    input, the input whose producing step it must come from.
    """

    kind: Kind
    name: str | None = None
    members: tuple[str, ...] = ()
    subset_of: str | None = None
    of: str | None = None

    @classmethod
    def text(cls) -> Meaning:
        """Free text a person wrote or said (an utterance, an e-mail body)."""
        return cls("text")

    @classmethod
    def labels(
        cls, name: str, members: tuple[str, ...] = (), *, subset_of: str | None = None
    ) -> Meaning:
        """One label of the closed set ``name`` (e.g. ``clinc150_intent``)."""
        return cls("label", name, tuple(members), subset_of)

    @classmethod
    def flag(cls, name: str | None = None) -> Meaning:
        """A named yes/no fact (``opted_out``); unnamed on an input: any flag."""
        return cls("flag", name)

    @classmethod
    def probability(cls, name: str | None = None) -> Meaning:
        """A probability in 0-1 of a named event (``subscribe``)."""
        return cls("probability", name)

    @classmethod
    def confidence(cls, of: str | None = None) -> Meaning:
        """A step's confidence; on an input, ``of`` names the input whose step it must come from."""
        return cls("confidence", of=of)

    @classmethod
    def number(cls, name: str | None = None) -> Meaning:
        """Any number (a count, an amount, a score)."""
        return cls("number", name)

    @classmethod
    def note(cls) -> Meaning:
        """Text a skill writes for people (a reason, a summary line): not an input to classify."""
        return cls("note")

    def describe(self) -> str:
        """How the meaning reads in an error message or a prompt (``labels of clinc150_intent``)."""
        if self.kind == "label":
            return f"labels of {self.name}" if self.name else "labels"
        if self.kind == "confidence" and self.of:
            return f"the confidence of {self.of}"
        if self.kind in ("flag", "probability", "number") and self.name:
            return f"{self.kind} {self.name}"
        return {"value": "a plain value"}.get(self.kind, self.kind)


#: The meaning of the columns every step adds next to its skill's outputs.
STEP_EXTRAS: dict[str, Meaning] = {
    "confidence": Meaning.confidence(),
    "escalate": Meaning.flag("escalate"),
    "answered_by": Meaning("value"),
    "degraded": Meaning.flag("degraded"),
}


def declared_meaning(info: Any) -> Meaning | None:
    """The :class:`Meaning` a pydantic field declares in its ``Annotated`` metadata, if any."""
    for item in getattr(info, "metadata", ()) or ():
        if isinstance(item, Meaning):
            return item
    return None


def output_meaning(skill: str, field: str, info: Any) -> Meaning:
    """The meaning of an output field: declared, or read from its type (see the module doc)."""
    found = declared_meaning(info)
    if found is not None:
        return found
    annotation = info.annotation
    if typing.get_origin(annotation) is Literal:
        labels = tuple(str(v) for v in typing.get_args(annotation))
        return Meaning("label", f"{skill}.{field}", labels)
    if annotation is bool:
        return Meaning.flag(f"{skill}.{field}")
    if annotation in (int, float):
        return Meaning.number()
    return Meaning("value")


def job_meaning(type_name: str, kind: str | None = None, labels: str | None = None) -> Meaning:
    """The meaning of a job field: ``labels`` names its label set; otherwise ``kind``, or ``text``
    for strings and a plain ``value`` for the rest."""
    if labels:
        return Meaning("label", labels)
    if kind:
        return Meaning(kind)  # type: ignore[arg-type]
    return Meaning.text() if type_name == "str" else Meaning("value")


def mismatch(source: Meaning, target: Meaning | None) -> str | None:
    """Why a value meaning ``source`` cannot feed an input meaning ``target``; None when it can.

    A confidence input's ``of`` is checked by the graph validator, which knows the bindings.
    """
    if target is None or target.kind == "value":
        return None
    if target.kind == "label":
        if source.kind != "label":
            return f"it takes {target.describe()} but gets {source.describe()}"
        if target.name and target.name not in (source.name, source.subset_of):
            return f"it takes {target.describe()} but gets {source.describe()}"
        return None
    if source.kind == "value" and target.kind != "text":
        return None  # a plain job field: the caller vouches for it
    if target.kind == "number" and source.kind in ("number", "probability", "confidence"):
        return None
    if source.kind != target.kind:
        return f"it takes {target.describe()} but gets {source.describe()}"
    if target.name and source.name != target.name:
        return f"it takes {target.describe()} but gets {source.describe()}"
    return None
