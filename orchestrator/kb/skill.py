"""The retrieval skill: a question in, the knowledge base's answer, its id and a confidence out.

A KB version is a skill folder (``orchestrator kb build``) whose ``skill.json`` has
``"kind": "retrieval"``; its generated ``skill.py`` builds the class with
:func:`load_retrieval_skill`. Like every skill it answers a whole batch in one call (one encoder
call, one index search) and its threshold is calibrated on held-out questions (top-1 correct at
the target accuracy). Below it the cascade escalates *grounded*: the big model gets the item's
top-k passages and may only cite their ids or say ``unknown``
(:mod:`orchestrator.graph.grounding` reads :meth:`RetrievalSkill.passages` and the
``candidates`` output for that).

Optional gate: a base built with ``--answer-on LABEL`` answers only items whose ``when`` input is
one of those labels (e.g. a turn whose next action is ``answer_question``); the others get an
empty answer at confidence 1.0, so they cost no encoder time and never escalate.

Example::

    cls = load_retrieval_skill("skills/outbound_faq/skill.json", "skills.outbound_faq.skill",
                               "OutboundFaq")
    skill = cls(artifacts_dir="skills/outbound_faq/artifacts")
    skill.ensure_setup()
    skill.predict({"text": ["how did you get my number?"]}).outputs["answer_id"]
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

import numpy as np
from pydantic import BaseModel, Field, create_model

from orchestrator.errors import SkillDefinitionError
from orchestrator.graph.grounding import CANDIDATES, UNKNOWN
from orchestrator.kb.base import ANSWERS_FILE, KnowledgeBase, read_build_facts
from orchestrator.ports import Meaning
from orchestrator.skill import Batch, Predictions, Skill

if TYPE_CHECKING:
    from orchestrator.embedding.shared import Embedder

__all__ = ["KIND", "UNKNOWN", "RetrievalSkill", "build_retrieval_class", "load_retrieval_skill"]

KIND = "retrieval"


class RetrievalSkill(Skill):
    """Nearest-question (or nearest-passage) answers from a built knowledge base."""

    backend: ClassVar[str] = "onnx"
    relative_cost: ClassVar[float] = 20.0
    #: The encoder pads to the longest text of a call: bounded calls bound its activations.
    max_batch: ClassVar[int | None] = 256
    #: the shared encoder's name; which build of it (sha256) is in artifacts/kb.json, since the
    #: bytes of an export differ from machine to machine
    encoder_name: ClassVar[str] = ""
    #: "exact" or "hnsw" (see orchestrator.kb.index)
    index_method: ClassVar[str] = "exact"
    #: answer ids kept per item (the passages a grounded escalation shows)
    top_k: ClassVar[int] = 5
    #: labels of the ``when`` input on which the skill answers; empty: every item
    answer_on: ClassVar[tuple[str, ...]] = ()
    #: "entries" (questions -> answers) or "passages"
    source_kind: ClassVar[str] = "entries"
    #: the input holding the question (the grounded prompt shows it)
    text_field: ClassVar[str] = "text"
    #: the output calibration and evaluation compare with the labelled answer id
    label_field: ClassVar[str] = "answer_id"

    base: KnowledgeBase
    encoder: Embedder

    def setup(self) -> None:
        """The base's texts and index, and the shared encoder (checked against the pinned one)."""
        from orchestrator.embedding.shared import pinned_encoder

        answers = self.artifact(ANSWERS_FILE)
        self.base = KnowledgeBase.load(answers.parent, self.index_method)
        self.encoder = pinned_encoder(
            answers.parent,
            self.encoder_name,
            read_build_facts(answers.parent)["encoder_sha256"],
            f"{self.name}@{self.version}",
            fix="the knowledge base's vectors would not match; rebuild it (`orchestrator skills "
            f"build {self.name}` or `orchestrator kb build {self.name} --from FILE`)",
        )

    def predict(self, batch: Batch) -> Predictions:
        texts = ["" if t is None else str(t) for t in batch["text"]]
        size = len(texts)
        gate = batch.get("when")
        asked = [
            i
            for i in range(size)
            if not self.answer_on or (gate is not None and gate[i] in self.answer_on)
        ]
        answer_ids, answers = [""] * size, [""] * size
        candidates: list[list[str]] = [[] for _ in range(size)]
        confidence = np.ones(size, dtype=np.float32)  # not asked: nothing to answer, no doubt
        if asked:
            hits = self.base.retrieve(self.encoder.embed([texts[i] for i in asked]), self.top_k)
            for i, hit in zip(asked, hits, strict=True):
                if hit.ids:
                    answer_ids[i] = hit.ids[0]
                    answers[i] = self.base.answers[hit.ids[0]]
                candidates[i] = hit.ids
                confidence[i] = hit.confidence
        outputs: dict[str, list[Any]] = {
            "answer_id": answer_ids,
            "answer": answers,
            CANDIDATES: candidates,
        }
        return Predictions(outputs, confidence)

    @classmethod
    def passages(cls, artifacts_dir: Path, ids: list[str]) -> dict[str, str]:
        """The texts of ``ids`` (answers, or passages) from a built base, for a grounded prompt."""
        texts = _answers_at(str(artifacts_dir / ANSWERS_FILE))
        return {i: texts[i] for i in ids if i in texts}


@functools.lru_cache(maxsize=16)
def _answers_at(path: str) -> dict[str, str]:
    with open(path, encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    return {row["id"]: row["answer"] for row in rows}


def load_retrieval_skill(config_path: Path | str, module: str, qualname: str) -> type[Skill]:
    """Build the class a KB folder's ``skill.json`` describes (its generated ``skill.py`` calls
    this with its ``__name__``, so pickling to a Ray worker finds the class by reference)."""
    from orchestrator.registry.kinds import read_skill_config

    path = Path(config_path)
    return build_retrieval_class(read_skill_config(path), module, qualname, where=str(path))


def build_retrieval_class(
    config: dict[str, Any], module: str, qualname: str, *, where: str = "skill.json"
) -> type[Skill]:
    """The retrieval skill class for a parsed ``skill.json``."""
    try:
        if config["kind"] != KIND:
            raise KeyError("kind")
        attrs: dict[str, Any] = {
            "name": str(config["name"]),
            "version": str(config["version"]),
            "description": str(config["description"]),
            "encoder_name": str(config["encoder"]),
            "index_method": str(config["index"]),
            "top_k": int(config["top_k"]),
            "answer_on": tuple(str(label) for label in config.get("answer_on", [])),
            "source_kind": str(config["source_kind"]),
        }
    except (KeyError, TypeError, ValueError) as exc:
        raise SkillDefinitionError(
            f"{where}: missing or malformed key {exc}; rebuild the base with `orchestrator kb build`"
        ) from None
    attrs |= {
        "Input": _input_model(module, f"{qualname}.Input", attrs["answer_on"]),
        "Output": _output_model(attrs["name"], module, f"{qualname}.Output"),
        "__module__": module,
        "__qualname__": qualname,
        "__doc__": attrs["description"],
    }
    cls: type[Skill] = type(qualname.rpartition(".")[2], (RetrievalSkill,), attrs)
    cls.check_definition()
    return cls


def _input_model(module: str, qualname: str, answer_on: tuple[str, ...]) -> type[BaseModel]:
    fields: dict[str, Any] = {
        "text": (Annotated[str, Meaning.text()], Field(description="the question to answer"))
    }
    if answer_on:
        shown = ", ".join(answer_on)
        fields["when"] = (
            Annotated[str | None, Meaning("label")],
            Field(default=None, description=f"answer only when this label is one of: {shown}"),
        )
    model: type[BaseModel] = create_model("Input", __module__=module, **fields)
    model.__qualname__ = qualname
    return model


def _output_model(name: str, module: str, qualname: str) -> type[BaseModel]:
    fields: dict[str, Any] = {
        "answer_id": (
            Annotated[str, Meaning("value")],
            Field(description=f"the id of the {name} entry that answers, or '{UNKNOWN}'"),
        ),
        "answer": (
            Annotated[str, Meaning.note()],
            Field(description="the answer to say to the customer ('' when not asked)"),
        ),
        CANDIDATES: (
            list[str],
            Field(description="the ids of the nearest entries, best first"),
        ),
    }
    model: type[BaseModel] = create_model("Output", __module__=module, **fields)
    model.__qualname__ = qualname
    return model
