"""Meanings in a graph: what each binding's value means, and whether an input may read it.

The rules live in :mod:`orchestrator.ports`; this module applies them to a graph's bindings, for
the validator (hand-written and planned graphs alike) and for the planner's wiring, which only
offers sources that pass. A confidence input that names another input (``intent_confidence`` of
``intent``) must read the confidence of the step that input reads from: the confidence of a
different step's answer would make the rule it feeds act on the wrong number.
"""

from __future__ import annotations

from typing import Any

from orchestrator.graph.spec import INPUT_SOURCE, Binding, GraphSpec, Step
from orchestrator.ports import STEP_EXTRAS, Meaning, declared_meaning, mismatch, output_meaning
from orchestrator.registry.registry import SkillVersion

__all__ = [
    "STEP_EXTRA_TYPES",
    "input_meaning",
    "meaning_problem",
    "output_ports",
    "skill_output_meanings",
    "source_meaning",
]

#: The Python type of the columns every step adds next to its skill's outputs (their meanings:
#: :data:`orchestrator.ports.STEP_EXTRAS`).
STEP_EXTRA_TYPES: dict[str, Any] = {
    "confidence": float,
    "escalate": bool,
    "answered_by": str,
    "degraded": bool,
}


def skill_output_meanings(version: SkillVersion) -> dict[str, Meaning]:
    """Each output column of a step running ``version`` (its fields and the step's extras)."""
    cls = version.skill_cls
    found = {
        name: output_meaning(cls.name, name, info) for name, info in cls.Output.model_fields.items()
    }
    return {**found, **STEP_EXTRAS}


def output_ports(version: SkillVersion) -> dict[str, tuple[Meaning, Any]]:
    """Each output column of a step running ``version``: its meaning and its Python type."""
    fields = version.skill_cls.Output.model_fields
    return {
        name: (meaning, fields[name].annotation if name in fields else STEP_EXTRA_TYPES[name])
        for name, meaning in skill_output_meanings(version).items()
    }


def input_meaning(info: Any) -> Meaning | None:
    """What a skill input declares it takes (None: anything its Python type admits)."""
    return declared_meaning(info)


def source_meaning(
    binding: Binding, spec: GraphSpec, skills_of: dict[str, SkillVersion]
) -> Meaning | None:
    """What the value a binding reads means; None when the binding does not resolve."""
    if binding.source == INPUT_SOURCE:
        field = spec.inputs.get(binding.field)
        return field.meaning if field is not None else None
    version = skills_of.get(binding.source)
    if version is None:
        return None
    return skill_output_meanings(version).get(binding.field)


def meaning_problem(
    step: Step, name: str, info: Any, spec: GraphSpec, skills_of: dict[str, SkillVersion]
) -> str | None:
    """Why ``step``'s input ``name`` (pydantic field ``info``) cannot read what it is bound to."""
    target = input_meaning(info)
    binding = step.inputs[name]
    source = source_meaning(binding, spec, skills_of)
    if target is None or source is None:
        return None
    problem = mismatch(source, target)
    if problem is not None:
        return problem
    if target.kind == "confidence" and target.of:
        return _confidence_problem(step, target.of, binding)
    return None


def _confidence_problem(step: Step, of: str, binding: Binding) -> str | None:
    """A confidence of ``of`` must come from the step ``of`` reads (or the job, if it does)."""
    partner = step.inputs.get(of)
    if partner is None:
        return f"it is the confidence of input {of!r}, which is not bound; bind {of!r} first"
    if partner.source == INPUT_SOURCE:
        if binding.source == INPUT_SOURCE:
            return None
        return f"it is the confidence of {of!r}, which comes from the job: bind a job field"
    if binding.source != partner.source or binding.field != "confidence":
        return (
            f"it is the confidence of {of!r}, which {partner} gives; "
            f"bind it to {partner.source}.confidence"
        )
    return None
