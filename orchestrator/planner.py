"""The planner: a task in plain words + the job's input fields + the registry → a graph spec.

The big model is asked once per workflow for a plan in the graph language (:mod:`orchestrator.spec`).
What it may answer is fenced in twice:

1. the answer's JSON schema is built from the registry: ``skill`` can only be a registered skill,
   ``inputs`` and ``outputs`` can only be bindings that exist (``input.<field>`` or
   ``<skill>.<output>``), so a provider that enforces schemas (llama.cpp, vLLM, OpenAI) cannot
   even spell an unknown tool;
2. the answer is validated like any hand-written graph (:func:`orchestrator.compile_graph`): on
   failure the problems go back to the model, at most ``max_repairs`` times, then
   :class:`~orchestrator.errors.PlanInvalid`. A plan that fails validation never runs (OWASP LLM06).

The prompt holds the task, the input field names and types, and each skill's card (name,
description, inputs, outputs, relative cost). Job items never reach it: transcripts are untrusted.

Example::

    planner = Planner(gateway, registry, cache=PlanCache(path))
    plan = planner.plan_sync("classify each turn's intent and decide the next action",
                             {"utterance": "str"})
    plan.spec.to_yaml()   # review it, check it into graphs/
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, create_model

from orchestrator.compiler import compile_graph
from orchestrator.errors import GraphValidationError, PlanInvalid
from orchestrator.ledger import Ledger
from orchestrator.llm import Budget, LLMGateway
from orchestrator.plan_cache import PlanCache, plan_key
from orchestrator.registry import Registry, SkillVersion
from orchestrator.spec import INPUT_SOURCE, GraphSpec
from orchestrator.telemetry import get_logger

__all__ = ["Plan", "Planner", "planning_schema"]

log = get_logger(__name__)

_TYPES = {"str": "str", "int": "int", "float": "float", "bool": "bool"}

SYSTEM_PROMPT = """\
You plan data-processing workflows. Answer with one JSON object and nothing else.
A workflow is a list of steps. Each step runs one registered skill over every item of a job.
- "id": the skill's name (one step per skill).
- "skill": the skill's name, exactly as listed.
- "inputs": an object mapping EVERY input of the skill to a source: "input.<field>" for a field
  of the job's items, or "<step id>.<output>" for an output of an earlier step.
- "outputs": a list of {"name": ..., "source": "<step id>.<output>"}: what the job returns.
Use only the listed skills, only the steps the task needs, and prefer cheaper skills.
Every step also has the outputs "confidence" and "escalate".
"""


@dataclass(frozen=True)
class Plan:
    """A validated plan, and what it cost (zero calls when it came from the cache)."""

    spec: GraphSpec
    cached: bool
    llm_calls: int
    tokens: int
    attempts: int
    key: str


def planning_schema(registry: Registry, fields: dict[str, str]) -> type[BaseModel]:
    """The pydantic model a plan must match, with the registry's skills and bindings enumerated.

    Each step is one of a union of per-skill shapes: ``skill`` and ``id`` fixed to that skill's
    name, ``inputs`` holding exactly its input names, each an enumerated binding.
    """
    skills = [registry.resolve(name) for name in registry.names()]
    sources = [f"{INPUT_SOURCE}.{f}" for f in fields]
    outputs = [f"{v.name}.{o}" for v in skills for o in [*_output_fields(v), "confidence"]]
    # Literal[...] built at run time: one enum per schema, so providers can enforce it.
    binding: Any = Literal.__getitem__(tuple(sources + outputs))
    output_binding: Any = Literal.__getitem__(tuple(outputs))
    variants = [_step_variant(v, binding) for v in skills]
    step: Any = variants[0] if len(variants) == 1 else Union.__getitem__(tuple(variants))
    # A list, not a map: grammar-constrained decoders enforce minItems but not minProperties.
    output: Any = create_model(
        "PlannedOutput",
        __config__=ConfigDict(extra="forbid"),
        name=(str, Field(min_length=1, max_length=40)),
        source=(output_binding, ...),
    )
    model: type[BaseModel] = create_model(
        "PlannedGraph",
        __config__=ConfigDict(extra="forbid"),
        steps=(list[step], Field(min_length=1, max_length=len(skills))),
        outputs=(list[output], Field(min_length=1, max_length=len(outputs))),
    )
    return model


def _step_variant(version: SkillVersion, binding: Any) -> type[BaseModel]:
    name: Any = Literal.__getitem__((version.name,))
    input_fields: dict[str, Any] = {
        f: (binding, ...) if info.is_required() else (binding | None, None)
        for f, info in version.skill_cls.Input.model_fields.items()
    }
    inputs = create_model(
        f"{version.name}_inputs", __config__=ConfigDict(extra="forbid"), **input_fields
    )
    step: type[BaseModel] = create_model(
        f"{version.name}_step",
        __config__=ConfigDict(extra="forbid"),
        id=(name, ...),
        skill=(name, ...),
        inputs=(inputs, ...),
    )
    return step


class Planner:
    """Turns tasks into validated graph specs through the LLM gateway, with a plan cache."""

    def __init__(
        self,
        gateway: LLMGateway,
        registry: Registry,
        *,
        cache: PlanCache | None = None,
        max_repairs: int = 2,
        max_calls: int = 8,
    ) -> None:
        self.gateway = gateway
        self.registry = registry
        self.cache = cache
        self.max_repairs = max_repairs
        self.max_calls = max_calls

    async def plan(
        self,
        task: str,
        fields: dict[str, str],
        *,
        name: str = "planned",
        job_id: str | None = None,
        ledger: Ledger | None = None,
    ) -> Plan:
        """A plan for ``task`` over items with ``fields`` (name -> str|int|float|bool)."""
        fields = _check_fields(fields)
        key = plan_key(task, fields, self.registry)
        if self.cache is not None:
            cached = self.cache.get(key)
            if cached is not None:
                log.info("plan_cache_hit", key=key[:12])
                return Plan(cached, cached=True, llm_calls=0, tokens=0, attempts=0, key=key)
        spec, calls, tokens, attempts = await self._ask(task, fields, name, job_id, ledger)
        if self.cache is not None:
            self.cache.put(key, task, fields, spec)
        log.info("plan_made", key=key[:12], llm_calls=calls, tokens=tokens, attempts=attempts)
        return Plan(spec, cached=False, llm_calls=calls, tokens=tokens, attempts=attempts, key=key)

    def plan_sync(self, task: str, fields: dict[str, str], **kwargs: Any) -> Plan:
        """:meth:`plan` for synchronous callers."""

        async def run() -> Plan:
            try:
                return await self.plan(task, fields, **kwargs)
            finally:
                await self.gateway.aclose()

        return asyncio.run(run())

    async def _ask(
        self,
        task: str,
        fields: dict[str, str],
        name: str,
        job_id: str | None,
        ledger: Ledger | None,
    ) -> tuple[GraphSpec, int, int, int]:
        schema = planning_schema(self.registry, fields)
        budget = Budget(max_calls=self.max_calls)
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": self._prompt(task, fields)},
        ]
        problems: list[str] = []
        for attempt in range(1, self.max_repairs + 2):
            answer = await self.gateway.complete(
                messages, schema=schema, budget=budget, purpose="plan", job_id=job_id, ledger=ledger
            )
            draft = answer.parsed.model_dump(mode="json", exclude_none=True)
            try:
                spec = _to_spec(draft, fields, task, name)
                compile_graph(spec, self.registry)
                return spec, budget.calls, budget.tokens, attempt
            except GraphValidationError as exc:
                problems = [str(issue) for issue in exc.issues]
            log.info("plan_repair", attempt=attempt, problems=len(problems))
            messages += [
                {"role": "assistant", "content": json.dumps(draft)},
                {"role": "user", "content": _repair_prompt(problems)},
            ]
        raise PlanInvalid(task, problems, self.max_repairs)

    def _prompt(self, task: str, fields: dict[str, str]) -> str:
        cards = [_card(self.registry.resolve(n)) for n in self.registry.names()]
        field_list = ", ".join(f"{f} ({t})" for f, t in fields.items())
        return (
            f"Task: {task}\n\nThe job's items have these fields: {field_list}.\n\n"
            f"Registered skills:\n{json.dumps(cards, indent=1)}\n\nAnswer with the workflow JSON."
        )


def _card(version: SkillVersion) -> dict[str, Any]:
    cls = version.skill_cls
    return {
        "name": cls.name,
        "description": cls.description,
        "inputs": {n: _type_label(f.annotation) for n, f in cls.Input.model_fields.items()},
        "outputs": {n: _type_label(f.annotation) for n, f in cls.Output.model_fields.items()},
        "relative_cost": cls.relative_cost,
    }


def _type_label(annotation: Any) -> str:
    return getattr(annotation, "__name__", str(annotation).replace("typing.", ""))


def _output_fields(version: SkillVersion) -> list[str]:
    return list(version.skill_cls.Output.model_fields)


def _check_fields(fields: dict[str, str]) -> dict[str, str]:
    bad = {f: t for f, t in fields.items() if t not in _TYPES}
    if bad or not fields:
        raise PlanInvalid(
            "", [f"input fields need types str|int|float|bool, got {bad or 'none'}"], 0
        )
    return dict(sorted(fields.items()))


def _to_spec(draft: dict[str, Any], fields: dict[str, str], task: str, name: str) -> GraphSpec:
    data = {
        "name": name,
        "description": task[:500],
        "inputs": fields,
        "steps": draft["steps"],
        "outputs": {o["name"]: o["source"] for o in draft["outputs"]},
    }
    return GraphSpec.from_dict(data, source="plan")


def _repair_prompt(problems: list[str]) -> str:
    lines = "\n".join(f"- {p}" for p in problems)
    return f"That workflow is invalid:\n{lines}\nAnswer with a corrected workflow JSON."
