"""The JSON schemas a plan is asked in, built from the registry so a bad plan cannot be spelled.

Planning is two questions, each with its own schema:

1. **which skills** (:func:`choice_schema`): a list drawn from the skills that can be fed at all
   from the job's fields (directly or through other skills' outputs);
2. **how to wire them** (:func:`wiring_schema`): one entry per chosen skill, in dependency order;
   each input may only name a job field or an output of a skill *earlier in that order*, and only
   where the types fit.

A provider that enforces schemas (llama.cpp with a grammar, vLLM, OpenAI) can then only answer
with an acyclic, well-typed graph over registered skills; every answer is still validated like a
hand-written graph, since some providers only follow schemas loosely.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from orchestrator.graph.spec import INPUT_SOURCE
from orchestrator.graph.validation import assignable
from orchestrator.registry.registry import Registry, SkillVersion

__all__ = ["PY_TYPES", "choice_schema", "close_choice", "feedable_order", "wiring_schema"]

PY_TYPES: dict[str, type] = {"str": str, "int": int, "float": float, "bool": bool}


def feedable_order(registry: Registry, fields: dict[str, str]) -> list[SkillVersion]:
    """Skills whose required inputs can all be fed, in an order where producers come first."""
    sources = {f"{INPUT_SOURCE}.{f}": PY_TYPES[t] for f, t in fields.items()}
    remaining = [registry.resolve(name) for name in registry.names()]
    ordered: list[SkillVersion] = []
    while True:
        ready = [v for v in remaining if _can_feed(v, sources)]
        if not ready:
            return ordered
        for version in ready:
            ordered.append(version)
            remaining.remove(version)
            sources.update(_outputs(version))


def close_choice(
    names: set[str], feedable: list[SkillVersion], fields: dict[str, str]
) -> list[SkillVersion]:
    """The chosen skills plus the producers they cannot run without, in dependency order.

    A skill whose required input no job field and no earlier chosen skill can feed pulls in the
    first feedable skill that produces a fitting output (e.g. choosing only ``next_action`` brings
    in ``turn_intent`` for its ``intent``).
    """
    chosen = {v.name for v in feedable if v.name in names}
    while True:
        missing = _first_unfed(chosen, feedable, fields)
        if missing is None:
            return [v for v in feedable if v.name in chosen]
        chosen.add(missing.name)


def _first_unfed(
    chosen: set[str], feedable: list[SkillVersion], fields: dict[str, str]
) -> SkillVersion | None:
    """The first producer some chosen skill still lacks, or None when every one can be fed."""
    sources: dict[str, Any] = {f"{INPUT_SOURCE}.{f}": PY_TYPES[t] for f, t in fields.items()}
    for version in feedable:
        if version.name in chosen and not _can_feed(version, sources):
            for producer in feedable:
                if producer.name in chosen or producer is version:
                    continue
                if _can_feed(version, {**sources, **_outputs(producer)}):
                    return producer
        if version.name in chosen:
            sources.update(_outputs(version))
    return None


def choice_schema(skills: list[SkillVersion]) -> type[BaseModel]:
    """``{"skills": [...]}``: which of the feedable skills the task needs."""
    names = _enum([v.name for v in skills])
    model: type[BaseModel] = create_model(
        "ChosenSkills",
        __config__=ConfigDict(extra="forbid"),
        skills=(list[names], Field(min_length=1, max_length=len(skills))),  # type: ignore[valid-type]
    )
    return model


def wiring_schema(chosen: list[SkillVersion], fields: dict[str, str]) -> type[BaseModel]:
    """``{"steps": {skill: {"inputs": {...}}, ...}, "outputs": ["<skill>.<output>", ...]}`` for ``chosen``
    (already in dependency order)."""
    sources: dict[str, Any] = {f"{INPUT_SOURCE}.{f}": PY_TYPES[t] for f, t in fields.items()}
    steps: dict[str, Any] = {}
    for version in chosen:
        steps[version.name] = (_inputs_model(version, sources), ...)
        sources.update(_outputs(version))
    outputs = [key for key in sources if not key.startswith(f"{INPUT_SOURCE}.")]
    output_list: Any = list[_enum(outputs)]  # type: ignore[misc]
    steps_model = create_model("PlannedSteps", __config__=ConfigDict(extra="forbid"), **steps)
    # Outputs are a list of sources (the planner names them after their fields): free-text names
    # are where small models wander off, and grammar decoders enforce minItems, not minProperties.
    model: type[BaseModel] = create_model(
        "PlannedWiring",
        __config__=ConfigDict(extra="forbid"),
        steps=(steps_model, ...),
        outputs=(output_list, Field(min_length=1, max_length=len(outputs))),
    )
    return model


def _inputs_model(version: SkillVersion, sources: dict[str, Any]) -> type[BaseModel]:
    fields: dict[str, Any] = {}
    for name, info in version.skill_cls.Input.model_fields.items():
        fitting = [key for key, t in sources.items() if assignable(t, info.annotation)]
        if not fitting:  # only an optional input can end up here (see feedable_order)
            fitting = list(sources)
        binding = _enum(fitting)
        fields[name] = (binding, ...) if info.is_required() else (binding | None, None)
    inner = create_model(f"{version.name}_inputs", __config__=ConfigDict(extra="forbid"), **fields)
    model: type[BaseModel] = create_model(
        f"{version.name}_step", __config__=ConfigDict(extra="forbid"), inputs=(inner, ...)
    )
    return model


def _can_feed(version: SkillVersion, sources: dict[str, Any]) -> bool:
    return all(
        any(assignable(t, info.annotation) for t in sources.values())
        for info in version.skill_cls.Input.model_fields.values()
        if info.is_required()
    )


def _outputs(version: SkillVersion) -> dict[str, Any]:
    found = {
        f"{version.name}.{n}": f.annotation
        for n, f in version.skill_cls.Output.model_fields.items()
    }
    found[f"{version.name}.confidence"] = float
    return found


def _enum(values: list[str]) -> Any:
    """``Literal[values...]`` built at run time: an enum in the JSON schema providers enforce."""
    return Literal.__getitem__(tuple(values))
