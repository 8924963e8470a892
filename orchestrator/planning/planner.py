"""The planner: a task in plain words + the job's input fields + the registry → a graph spec.

The big model is asked once per workflow (two short questions: which skills, then how to wire
them) for a plan in the graph language (:mod:`orchestrator.graph.spec`). What it may answer is fenced in
twice:

1. the answers' JSON schemas are built from the registry (:mod:`orchestrator.planning.schema`): only
   registered skills that can be fed, only bindings that exist, fit the type and point at an
   earlier skill, so a provider that enforces schemas (llama.cpp, vLLM, OpenAI) cannot even spell
   an unknown tool or a cycle;
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
from typing import Any

from pydantic import BaseModel

from orchestrator.accounting.ledger import Ledger
from orchestrator.errors import GraphValidationError, PlanInvalid
from orchestrator.graph.compiler import compile_graph
from orchestrator.graph.spec import GraphSpec
from orchestrator.llm.gateway import Budget, LLMGateway
from orchestrator.planning.cache import PlanCache, plan_key
from orchestrator.planning.schema import (
    PY_TYPES,
    choice_schema,
    close_choice,
    feedable_order,
    wiring_schema,
)
from orchestrator.registry.registry import Registry, SkillVersion
from orchestrator.telemetry.logs import get_logger

__all__ = ["Plan", "Planner"]

log = get_logger(__name__)


SYSTEM_PROMPT = """\
You plan data-processing workflows. Answer with one JSON object and nothing else.
A workflow runs registered skills over every item of a job. Each skill reads its inputs from the
job's fields ("input.<field>") or from the outputs of skills that run before it
("<skill>.<output>"; every skill also outputs "confidence"). Use only the listed skills, only
those the task needs, and prefer cheaper ones.
"""

CHOOSE_PROMPT = 'Which skills does the task need? Answer {"skills": [...]}.'

WIRE_PROMPT = """\
Now wire them, in this order: {order}. For each skill, map every input to a job field or to an
output of a skill before it. Then list what the job returns as "outputs": \
["<skill>.<output>", ...]."""


@dataclass(frozen=True)
class Plan:
    """A validated plan, and what it cost (zero calls when it came from the cache)."""

    spec: GraphSpec
    cached: bool
    llm_calls: int
    tokens: int
    attempts: int
    key: str


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
        feedable = feedable_order(self.registry, fields)
        if not feedable:
            raise PlanInvalid(task, [f"no registered skill can take items with {fields}"], 0)
        budget = Budget(max_calls=self.max_calls)

        async def ask(messages: list[dict[str, Any]], schema: type[BaseModel]) -> dict[str, Any]:
            answer = await self.gateway.complete(
                messages, schema=schema, budget=budget, purpose="plan", job_id=job_id, ledger=ledger
            )
            draft: dict[str, Any] = answer.parsed.model_dump(mode="json", exclude_none=True)
            return draft

        messages: list[dict[str, Any]] = [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": self._prompt(task, fields, feedable) + CHOOSE_PROMPT},
        ]
        choice = await ask(messages, choice_schema(feedable))
        chosen = close_choice(set(choice["skills"]), feedable, fields)
        schema = wiring_schema(chosen, fields)
        order = ", ".join(v.name for v in chosen)
        messages += [
            {"role": "assistant", "content": json.dumps(choice)},
            {"role": "user", "content": WIRE_PROMPT.format(order=order)},
        ]
        problems: list[str] = []
        for attempt in range(1, self.max_repairs + 2):
            draft = await ask(messages, schema)
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

    def _prompt(self, task: str, fields: dict[str, str], skills: list[SkillVersion]) -> str:
        cards = [_card(v) for v in skills]
        field_list = ", ".join(f"{f} ({t})" for f, t in fields.items())
        return (
            f"Task: {task}\n\nThe job's items have these fields: {field_list}.\n\n"
            f"Registered skills:\n{json.dumps(cards, indent=1)}\n\n"
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


def _check_fields(fields: dict[str, str]) -> dict[str, str]:
    bad = {f: t for f, t in fields.items() if t not in PY_TYPES}
    if bad or not fields:
        raise PlanInvalid(
            "", [f"input fields need types str|int|float|bool, got {bad or 'none'}"], 0
        )
    return dict(sorted(fields.items()))


def _to_spec(draft: dict[str, Any], fields: dict[str, str], task: str, name: str) -> GraphSpec:
    steps = [
        {"id": skill_name, "skill": skill_name, "inputs": step.get("inputs", {})}
        for skill_name, step in draft["steps"].items()
    ]
    data = {
        "name": name,
        "description": task[:500],
        "inputs": fields,
        "steps": steps,
        "outputs": output_names(draft["outputs"]),
    }
    return GraphSpec.from_dict(data, source="plan")


def output_names(sources: list[str]) -> dict[str, str]:
    """Name each chosen output after its field (``turn_intent.intent`` → ``intent``), or after its
    step and field when the short name is taken or generic (``opt_out_confidence``)."""
    names: dict[str, str] = {}
    for source in dict.fromkeys(sources):  # keep order, drop repeats
        step, _, field = source.partition(".")
        short = field if field not in {"confidence", "escalate", "error", "id"} else ""
        names[short if short and short not in names else f"{step}_{field}"] = source
    return names


def _repair_prompt(problems: list[str]) -> str:
    lines = "\n".join(f"- {p}" for p in problems)
    return f"That workflow is invalid:\n{lines}\nAnswer with a corrected workflow JSON."
