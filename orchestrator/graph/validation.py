"""Check a graph spec against a registry before anything runs.

:func:`resolve_graph` finds every problem at once and raises one GraphValidationError whose issues
each name the step and say what to fix: unknown skill, unbuilt artifact, duplicate step id,
unknown or missing input, a binding to a step or field that does not exist, a type mismatch, a
cycle. No worker starts until a graph passes.
"""

from __future__ import annotations

import graphlib
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, create_model

from orchestrator.errors import GraphIssue, GraphValidationError, UnknownSkillError
from orchestrator.graph.meanings import STEP_EXTRA_TYPES, meaning_problem
from orchestrator.graph.spec import INPUT_SOURCE, PY_TYPES, Binding, GraphSpec, Step
from orchestrator.graph.thresholds import step_thresholds
from orchestrator.registry.registry import Registry, SkillVersion

__all__ = ["ResolvedGraph", "ResolvedStep", "assignable", "resolve_graph"]


@dataclass(frozen=True)
class ResolvedStep:
    """A step whose skill and bindings have been checked."""

    spec: Step
    skill: SkillVersion
    depends_on: tuple[str, ...]
    #: the escalation chain's skills, cheapest first
    chain: tuple[SkillVersion, ...] = ()
    #: confidence under which items escalate (a ``calibrated`` spec resolved to its number)
    threshold: float = 0.0
    #: per chain skill, the confidence its answer must reach to be kept
    chain_thresholds: tuple[float, ...] = ()
    #: small-model confidence under which items are held for human review (0: never)
    review_below: float = 0.0
    #: every step this one reads from, directly or not (a held item skips the step when one of
    #: these holds it)
    ancestors: frozenset[str] = frozenset()

    @property
    def id(self) -> str:
        return self.spec.id


@dataclass(frozen=True)
class ResolvedGraph:
    """A valid graph: steps in dependency order, and the pydantic model a job item must satisfy."""

    spec: GraphSpec
    steps: tuple[ResolvedStep, ...]
    item_model: type[BaseModel]

    @property
    def skills(self) -> list[SkillVersion]:
        """Distinct skill versions the graph needs, in step order."""
        seen: dict[str, SkillVersion] = {}
        for step in self.steps:
            for version in (step.skill, *step.chain):
                seen.setdefault(version.key, version)
        return list(seen.values())


def resolve_graph(spec: GraphSpec, registry: Registry) -> ResolvedGraph:
    """Validate ``spec`` against ``registry``; GraphValidationError lists every problem found."""
    issues: list[GraphIssue] = []
    skills = _resolve_skills(spec, registry, issues)
    chains = {s.id: _resolve_chain(s, skills.get(s.id), registry, issues) for s in spec.steps}
    thresholds: dict[str, tuple[float, tuple[float, ...]]] = {}
    for s in spec.steps:
        threshold, tiers, problems = step_thresholds(s, skills.get(s.id), chains[s.id])
        thresholds[s.id] = (threshold, tiers)
        issues += [GraphIssue(f"step {s.id!r}", problem) for problem in problems]
    for s in spec.steps:
        _check_review(s, thresholds[s.id][0], issues)
    _check_ids(spec, issues)
    outputs_of = {
        step.id: _output_types(skills[step.id]) for step in spec.steps if step.id in skills
    }
    inputs_of = {name: _input_type(f.type, f.required) for name, f in spec.inputs.items()}
    for step in spec.steps:
        if step.id in skills:
            _check_step_bindings(step, skills[step.id], spec, inputs_of, outputs_of, skills, issues)
    for name, binding in spec.outputs.items():
        _check_source(f"output {name!r}", binding, spec, inputs_of, outputs_of, issues, None)
    if spec.evaluate is not None and spec.evaluate.output not in spec.outputs:
        issues.append(
            GraphIssue("evaluate", f"output {spec.evaluate.output!r} is not one of the outputs")
        )
    for name in spec.known_pii:
        if name not in spec.inputs:
            issues.append(
                GraphIssue(
                    "known_pii",
                    f"{name!r} is not one of the graph's inputs ({', '.join(spec.inputs)}); "
                    "name the input field that holds the customer's value",
                )
            )
    order = _topological_order(spec, issues)
    if issues:
        raise GraphValidationError(spec.name, issues)
    ancestors: dict[str, frozenset[str]] = {}
    for step_id in order:  # dependency order: a step's sources already have their ancestors
        direct = _dependencies(spec.step(step_id))  # type: ignore[arg-type]
        ancestors[step_id] = frozenset(direct).union(*(ancestors[d] for d in direct))
    steps = tuple(
        ResolvedStep(
            spec=spec.step(step_id),  # type: ignore[arg-type]
            skill=skills[step_id],
            depends_on=_dependencies(spec.step(step_id)),  # type: ignore[arg-type]
            chain=chains[step_id],
            threshold=thresholds[step_id][0],
            chain_thresholds=thresholds[step_id][1],
            review_below=_review_below(spec.step(step_id)),  # type: ignore[arg-type]
            ancestors=ancestors[step_id],
        )
        for step_id in order
    )
    return ResolvedGraph(spec=spec, steps=steps, item_model=_item_model(spec))


def _resolve_skills(
    spec: GraphSpec, registry: Registry, issues: list[GraphIssue]
) -> dict[str, SkillVersion]:
    found: dict[str, SkillVersion] = {}
    for step in spec.steps:
        try:
            version = registry.resolve(step.skill)
        except UnknownSkillError as exc:
            issues.append(GraphIssue(f"step {step.id!r}", str(exc)))
            continue
        problem = version.problem()
        if problem:
            issues.append(GraphIssue(f"step {step.id!r}", problem))
        found[step.id] = version
    return found


def _review_below(step: Step) -> float:
    if step.escalation is None or step.escalation.review_below is None:
        return 0.0
    return step.escalation.review_below


def _check_review(step: Step, threshold: float, issues: list[GraphIssue]) -> None:
    """Review is the last resort for the least sure items: its threshold sits under escalation's."""
    below = _review_below(step)
    if below > 0 and threshold > 0 and below > threshold:
        issues.append(
            GraphIssue(
                f"step {step.id!r}",
                f"review_below {below} is above the escalation threshold {threshold:.3f}; "
                "review is for the least sure items: lower review_below or raise the threshold",
            )
        )


def _resolve_chain(
    step: Step, skill: SkillVersion | None, registry: Registry, issues: list[GraphIssue]
) -> tuple[SkillVersion, ...]:
    """The escalation chain's skills; each must answer with the step's outputs from its inputs."""
    if step.escalation is None or skill is None:
        return ()
    where = f"step {step.id!r}"
    chain: list[SkillVersion] = []
    outputs = set(skill.skill_cls.Output.model_fields)
    for ref in step.escalation.chain:
        try:
            version = registry.resolve(ref)
        except UnknownSkillError as exc:
            issues.append(GraphIssue(where, f"escalation chain: {exc}"))
            continue
        missing_out = outputs - set(version.skill_cls.Output.model_fields)
        needs = {n for n, f in version.skill_cls.Input.model_fields.items() if f.is_required()}
        missing_in = needs - set(step.inputs)
        if missing_out or missing_in:
            issues.append(
                GraphIssue(
                    where,
                    f"escalation chain skill {version.key} cannot stand in for {skill.key}: "
                    f"it lacks outputs {sorted(missing_out)} / needs unbound inputs "
                    f"{sorted(missing_in)}",
                )
            )
            continue
        problem = version.problem()
        if problem:
            issues.append(GraphIssue(where, problem))
        chain.append(version)
    return tuple(chain)


def _check_ids(spec: GraphSpec, issues: list[GraphIssue]) -> None:
    seen: set[str] = set()
    for step in spec.steps:
        if step.id == INPUT_SOURCE:
            issues.append(GraphIssue(f"step {step.id!r}", "'input' is reserved; rename the step"))
        if step.id in seen:
            issues.append(
                GraphIssue(f"step {step.id!r}", "duplicate step id; give each step its own id")
            )
        seen.add(step.id)


def _check_step_bindings(
    step: Step,
    skill: SkillVersion,
    spec: GraphSpec,
    inputs_of: dict[str, Any],
    outputs_of: dict[str, dict[str, Any]],
    skills_of: dict[str, SkillVersion],
    issues: list[GraphIssue],
) -> None:
    where = f"step {step.id!r}"
    fields = skill.skill_cls.Input.model_fields
    for name, info in fields.items():
        if name not in step.inputs and info.is_required():
            issues.append(
                GraphIssue(
                    where,
                    f"skill {skill.key} needs input {name!r} but it is not bound; add "
                    f"`{name}: input.<field>` or `{name}: <step>.<field>` under inputs",
                )
            )
    for name, binding in step.inputs.items():
        if name not in fields:
            issues.append(
                GraphIssue(
                    where,
                    f"skill {skill.key} has no input {name!r}; its inputs are: {', '.join(fields)}",
                )
            )
            continue
        source_type = _check_source(where, binding, spec, inputs_of, outputs_of, issues, step.id)
        if source_type is None:
            continue
        if not assignable(source_type, fields[name].annotation):
            issues.append(
                GraphIssue(
                    where,
                    f"input {name!r} expects {_type_name(fields[name].annotation)} but "
                    f"{binding} is {_type_name(source_type)}",
                )
            )
            continue
        problem = meaning_problem(step, name, fields[name], spec, skills_of)
        if problem:
            issues.append(GraphIssue(where, f"input {name!r} cannot read {binding}: {problem}"))


def _check_source(
    where: str,
    binding: Binding,
    spec: GraphSpec,
    inputs_of: dict[str, Any],
    outputs_of: dict[str, dict[str, Any]],
    issues: list[GraphIssue],
    step_id: str | None,
) -> Any | None:
    """The type a binding yields, or None after recording why it does not resolve."""
    if binding.source == INPUT_SOURCE:
        if binding.field not in inputs_of:
            issues.append(
                GraphIssue(
                    where,
                    f"{binding} is not a job input; declare {binding.field!r} under inputs "
                    f"(declared: {', '.join(inputs_of)})",
                )
            )
            return None
        return inputs_of[binding.field]
    if binding.source == step_id:
        issues.append(GraphIssue(where, f"{binding} reads the step's own output"))
        return None
    if spec.step(binding.source) is None:
        step_ids = ", ".join(s.id for s in spec.steps)
        issues.append(
            GraphIssue(
                where, f"{binding} names unknown step {binding.source!r} (steps: {step_ids})"
            )
        )
        return None
    outputs = outputs_of.get(binding.source)
    if outputs is None:  # that step's skill did not resolve: already reported there
        return None
    if binding.field not in outputs:
        issues.append(
            GraphIssue(
                where,
                f"{binding}: step {binding.source!r} has no output {binding.field!r}; "
                f"it has: {', '.join(outputs)}",
            )
        )
        return None
    return outputs[binding.field]


def _topological_order(spec: GraphSpec, issues: list[GraphIssue]) -> list[str]:
    step_ids = {s.id for s in spec.steps}
    graph = {s.id: {d for d in _dependencies(s) if d in step_ids} for s in spec.steps}
    try:
        return list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as exc:
        cycle = exc.args[1]
        issues.append(
            GraphIssue(
                f"step {cycle[0]!r}",
                f"steps form a cycle: {' -> '.join(cycle)}; a step can only read earlier steps",
            )
        )
        return []


def _dependencies(step: Step) -> tuple[str, ...]:
    return tuple(sorted({b.source for b in step.inputs.values() if b.source != INPUT_SOURCE}))


def _output_types(skill: SkillVersion) -> dict[str, Any]:
    fields = {n: f.annotation for n, f in skill.skill_cls.Output.model_fields.items()}
    return {**fields, **STEP_EXTRA_TYPES}


def _input_type(type_name: str, required: bool) -> Any:
    base = PY_TYPES[type_name]
    return base if required else base | None


def _item_model(spec: GraphSpec) -> type[BaseModel]:
    """The pydantic model one job item must satisfy (extra fields are allowed and ignored)."""
    fields: dict[str, Any] = {}
    for name, f in spec.inputs.items():
        annotation = _input_type(f.type, f.required)
        fields[name] = (annotation, ...) if f.required else (annotation, None)
    model: type[BaseModel] = create_model(
        f"{spec.name}_item", __config__=ConfigDict(extra="ignore", strict=False), **fields
    )
    return model


def _members(annotation: Any) -> set[Any]:
    """The concrete types an annotation admits (Optional and unions flattened, Literal -> type)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return set().union(*(_members(arg) for arg in typing.get_args(annotation)))
    if origin is Literal:
        return {type(value) for value in typing.get_args(annotation)}
    if annotation is None:
        return {type(None)}
    return {annotation}


def assignable(source: Any, target: Any) -> bool:
    """Whether every value of type ``source`` is a valid value for ``target``."""
    targets = _members(target)
    if Any in targets or object in targets:
        return True
    for member in _members(source):
        if member in targets or (member is int and float in targets) or member is Any:
            continue
        return False
    return True


def _type_name(annotation: Any) -> str:
    names = sorted(
        getattr(m, "__name__", str(m)).replace("NoneType", "None") for m in _members(annotation)
    )
    return " | ".join(names)
