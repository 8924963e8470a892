"""Grounded escalation: a retrieval skill's unsure items go to the big model *with their passages*.

A skill is grounded when its class can hand out passages (``passages(artifacts_dir, ids)``, as
:class:`orchestrator.kb.skill.RetrievalSkill` does) and its outputs carry each item's nearest
ids (``candidates``). For such a step the cascade (:mod:`orchestrator.graph.cascade`) asks the big
model differently:

- the prompt shows each item's question and its top-k passages, each under its id, and says:
  answer only from these passages, cite the id your answer comes from, answer ``unknown`` when
  none of them holds the answer;
- the answer schema enforces it: per item, ``answer_id`` is a ``Literal`` of *that item's*
  passage ids plus ``"unknown"``, so a model cannot cite a passage it was not shown (or invent an
  id); ``answer`` is the text to say;
- the call goes through the same ``complete`` as every escalation (the PII guard, the budget,
  the ledger, the audit), and the answers come back as the skill's outputs.

The graph layer never imports the knowledge base: the hook is the skill class's.

Example::

    request = grounded_request(step, with_candidates(step, batch, outputs), rows)
    if request is not None:
        answer = await complete(request.messages, schema=request.schema, ...)
        found = request.answers(answer.parsed)
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from orchestrator.graph.answer_envelope import answers_envelope
from orchestrator.skill import Batch

__all__ = [
    "CANDIDATES",
    "GROUNDED_SYSTEM_PROMPT",
    "UNKNOWN",
    "GroundedRequest",
    "grounded_request",
    "is_grounded",
    "with_candidates",
]

#: The output holding each item's nearest ids, best first (and the batch column it travels in).
CANDIDATES = "candidates"
#: The answer id of a grounded answer the passages do not hold.
UNKNOWN = "unknown"

GROUNDED_SYSTEM_PROMPT = (
    "You answer customers' questions for a knowledge base that was unsure. Answer each item only "
    "from the passages given with it, never from what you know otherwise. Set answer_id to the id "
    "of the passage your answer comes from (cite it), and answer in one or two sentences. If no "
    f'passage answers the question, set answer_id to "{UNKNOWN}" and say briefly that you do '
    "not know. Answer with one JSON object."
)


def is_grounded(skill_cls: type[Any]) -> bool:
    """Whether a step on ``skill_cls`` escalates grounded (see the module docstring)."""
    output = getattr(skill_cls, "Output", None)
    fields = getattr(output, "model_fields", {})
    return callable(getattr(skill_cls, "passages", None)) and CANDIDATES in fields


def with_candidates(step: Any, batch: Batch, outputs: Mapping[str, Sequence[Any]]) -> Batch:
    """``batch`` plus the step's ``candidates`` column when the step is grounded (else
    ``batch``): what :func:`grounded_request` reads the passages' ids from."""
    if not is_grounded(step.skill.skill_cls) or CANDIDATES not in outputs:
        return batch
    return {**batch, CANDIDATES: list(outputs[CANDIDATES])}


@dataclass(frozen=True)
class GroundedRequest:
    """One grounded call: its messages, its answer schema, and how answers map to outputs."""

    messages: list[dict[str, str]]
    schema: type[BaseModel]
    candidates: dict[int, list[str]]

    def answers(self, parsed: BaseModel) -> dict[int, dict[str, Any]]:
        """Row -> the skill's outputs (``answer_id``, ``answer``, ``candidates``)."""
        by_index = parsed.model_dump(by_alias=True)["answers"]
        return {
            int(i): {
                "answer_id": a["answer_id"],
                "answer": a["answer"],
                CANDIDATES: self.candidates[int(i)],
            }
            for i, a in by_index.items()
        }


def grounded_request(step: Any, batch: Batch, rows: Sequence[int]) -> GroundedRequest | None:
    """The grounded call for ``rows`` of a grounded step's ``batch`` (with its candidates, see
    :func:`with_candidates`); None for any other step."""
    skill = step.skill.skill_cls
    if not is_grounded(skill) or CANDIDATES not in batch or step.skill.artifacts_dir is None:
        return None
    candidates = {i: [str(c) for c in batch[CANDIDATES][i]] for i in rows}
    wanted = sorted({c for ids in candidates.values() for c in ids})
    passages: dict[str, str] = skill.passages(step.skill.artifacts_dir, wanted)
    # only ids whose passage is shown may be cited
    candidates = {i: [c for c in ids if c in passages] for i, ids in candidates.items()}
    items = [
        {
            "index": i,
            "question": str(batch[_text_field(skill)][i]),
            "passages": [{"id": c, "text": passages[c]} for c in candidates[i]],
        }
        for i in rows
    ]
    messages = [
        {"role": "system", "content": GROUNDED_SYSTEM_PROMPT},
        {"role": "user", "content": _prompt(skill, items)},
    ]
    return GroundedRequest(messages, _schema(skill.name, candidates), candidates)


def _text_field(skill: Any) -> str:
    """The input holding the question: the skill's ``text_field``, else its first input."""
    return str(getattr(skill, "text_field", None) or next(iter(skill.Input.model_fields)))


def _prompt(skill: Any, items: list[dict[str, Any]]) -> str:
    return "\n".join(
        [
            f"Knowledge base: {skill.name}",
            f"What it does: {skill.description}",
            "For each item give answer_id (the id of the passage you answer from, or "
            f'"{UNKNOWN}") and answer (what to say to the customer).',
            'Answer {"answers": {"<item index>": {"answer_id": ..., "answer": ...}, ...}} with '
            "one entry per item.",
            f"Items:\n{json.dumps(items, ensure_ascii=False)}",
        ]
    )


def _schema(name: str, candidates: Mapping[int, list[str]]) -> type[BaseModel]:
    """``{"answers": {"<index>": {"answer_id": <its ids | unknown>, "answer": str}}}``: every
    item a required key, each item's ids enumerated on their own."""
    keys: dict[str, Any] = {}
    for i, ids in candidates.items():
        allowed: Any = Literal.__getitem__(tuple([*ids, UNKNOWN]))
        item = create_model(
            f"{name}_grounded_{i}",
            __config__=ConfigDict(extra="forbid"),
            answer_id=(allowed, ...),
            answer=(str, Field(..., max_length=2000)),
        )
        keys[f"item_{i}"] = (item, Field(alias=str(i)))
    return answers_envelope(f"{name}_grounded_answers", keys, f"{name}_grounded_by_index")
