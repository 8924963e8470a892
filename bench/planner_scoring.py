"""Scoring of the planning benchmark (``bench/planner.py``): the task file, and a plan against it.

A task says what the minimal plan must be (see the header of ``bench/planner_tasks.yaml``): its
steps by skill name with their escalation chains, EVERY binding (``<skill>.<input>: <source>``,
steps compared by skill, never by step id), the outputs the job must return, or
``impossible: true``. :func:`score_plan` lists what a plan gets wrong (nothing: the plan is right);
:func:`summarize` turns per-task outcomes into the figures of one model's table.

No LLM, registry or skill is needed here, so ``tests/test_bench_planner.py`` checks the scoring on
hand-made specs in milliseconds.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from orchestrator.graph.spec import INPUT_SOURCE, GraphSpec

__all__ = [
    "ExpectedStep",
    "Outcome",
    "PlanShape",
    "PlannerTask",
    "TaskFile",
    "load_tasks",
    "plan_shape",
    "score_error",
    "score_plan",
    "summarize",
]

FieldType = Literal["str", "int", "float", "bool"]
_SOURCE = re.compile(r"^[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ExpectedStep(_Strict):
    """One step the plan must have: its skill (by name), its chain, and optionally its threshold."""

    skill: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    chain: list[str] = Field(default_factory=list, description="escalation chain, by skill name")
    threshold: float | str | None = Field(default=None, description="checked only when given")


class PlannerTask(_Strict):
    """One benchmark task and the plan it expects (or ``impossible``)."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    task: str = Field(min_length=1)
    fields: dict[str, FieldType] = Field(min_length=1)
    impossible: bool = False
    steps: list[ExpectedStep] = Field(default_factory=list)
    bindings: dict[str, str] = Field(default_factory=dict)
    outputs: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> PlannerTask:
        """Catch typos in the task file itself: every name must point at something declared."""
        if self.impossible:
            if self.steps or self.bindings or self.outputs:
                raise ValueError(f"{self.id}: an impossible task expects no steps or bindings")
            return self
        if not self.steps or not self.outputs:
            raise ValueError(f"{self.id}: give the expected steps and outputs, or impossible: true")
        skills = [s.skill for s in self.steps]
        if len(set(skills)) != len(skills):
            raise ValueError(f"{self.id}: a skill is listed twice in steps")
        for target, source in self.bindings.items():
            skill, _, _ = target.partition(".")
            if skill not in skills or not _SOURCE.match(target):
                raise ValueError(f"{self.id}: binding {target!r} names no expected step")
            origin, _, name = source.partition(".")
            if not _SOURCE.match(source) or (origin == INPUT_SOURCE and name not in self.fields):
                raise ValueError(f"{self.id}: binding source {source!r} is not a job field")
            if origin not in (INPUT_SOURCE, *skills):
                raise ValueError(f"{self.id}: binding source {source!r} names no expected step")
        for output in self.outputs:
            if not _SOURCE.match(output) or output.partition(".")[0] not in skills:
                raise ValueError(f"{self.id}: output {output!r} names no expected step")
        return self

    @property
    def skills(self) -> list[str]:
        """The expected skills, in the task file's order."""
        return [s.skill for s in self.steps]


class TaskFile(_Strict):
    """The task file: how to fill each field for the run check, and the tasks."""

    model_config = ConfigDict(frozen=True, extra="ignore")  # anchors live beside the tasks

    samples: dict[str, list[str]] = Field(default_factory=dict)
    tasks: list[PlannerTask] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_ids(self) -> TaskFile:
        repeated = [i for i, n in Counter(t.id for t in self.tasks).items() if n > 1]
        if repeated:
            raise ValueError(f"task ids used twice: {repeated}")
        return self

    def sample_kind(self, field_name: str) -> str | None:
        """How the run check fills ``field_name`` (``text``, ``bank``, ...), or None: by type."""
        for kind, names in self.samples.items():
            if field_name in names:
                return kind
        return None


def load_tasks(path: Path | str) -> TaskFile:
    """Read and check a task file (YAML anchors and ``<<`` merges are resolved)."""
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    return TaskFile.model_validate(data)


# ---------------------------------------------------------------------------------------------
# A plan, seen by skill names


@dataclass(frozen=True)
class PlanShape:
    """A graph spec as the scoring compares it: step ids replaced by their skills' names."""

    skills: list[str]
    chains: dict[str, list[str]]
    thresholds: dict[str, float | str | None]
    bindings: dict[str, str]
    outputs: set[str]


def _bare(ref: str) -> str:
    """``turn_intent@prod`` -> ``turn_intent``."""
    return ref.partition("@")[0].strip()


def plan_shape(spec: GraphSpec) -> PlanShape:
    """The skills, chains, bindings and outputs of ``spec``, named by skill instead of step id."""
    skill_of = {step.id: _bare(step.skill) for step in spec.steps}

    def source(origin: str, name: str) -> str:
        if origin == INPUT_SOURCE:
            return f"{INPUT_SOURCE}.{name}"
        return f"{skill_of.get(origin, '?' + origin)}.{name}"

    chains: dict[str, list[str]] = {}
    thresholds: dict[str, float | str | None] = {}
    bindings: dict[str, str] = {}
    for step in spec.steps:
        skill = skill_of[step.id]
        if skill in chains:  # a second step of one skill: score_plan reports it, keep the first
            continue
        escalation = step.escalation
        chains[skill] = [_bare(s) for s in escalation.chain] if escalation else []
        thresholds[skill] = escalation.threshold if escalation else None
        for name, binding in step.inputs.items():
            bindings[f"{skill}.{name}"] = source(binding.source, binding.field)
    outputs = {source(b.source, b.field) for b in spec.outputs.values()}
    return PlanShape(
        skills=[skill_of[s.id] for s in spec.steps],
        chains=chains,
        thresholds=thresholds,
        bindings=bindings,
        outputs=outputs,
    )


def score_plan(task: PlannerTask, spec: GraphSpec) -> list[str]:
    """What ``spec`` gets wrong for ``task``: an empty list when the plan is right."""
    if task.impossible:
        return ["planned an impossible task (expected PlanImpossible)"]
    shape = plan_shape(spec)
    misses: list[str] = []
    counts = Counter(shape.skills)
    expected = set(task.skills)
    missing = sorted(expected - set(counts))
    extra = sorted(set(counts) - expected)
    if missing:
        misses.append(f"missing step(s): {', '.join(missing)}")
    if extra:
        misses.append(f"extra step(s): {', '.join(extra)}")
    misses += [f"{skill} planned as {n} steps (one step)" for skill, n in counts.items() if n > 1]
    for step in task.steps:
        if step.skill not in counts:
            continue
        if shape.chains[step.skill] != step.chain:
            misses.append(f"{step.skill} chain {shape.chains[step.skill]} (expected {step.chain})")
        got = shape.thresholds[step.skill]
        if step.threshold is not None and got != step.threshold:
            misses.append(f"{step.skill} threshold {got!r} (expected {step.threshold!r})")
    misses += _binding_misses(task, shape)
    misses += [f"output {o} missing" for o in task.outputs if o not in shape.outputs]
    return misses


def _binding_misses(task: PlannerTask, shape: PlanShape) -> list[str]:
    """Wrong, missing and extra bindings of the steps both the task and the plan have."""
    shared = set(task.skills) & set(shape.skills)
    misses: list[str] = []
    for target, want in task.bindings.items():
        if target.partition(".")[0] not in shared:
            continue  # the missing step is already reported
        got = shape.bindings.get(target)
        if got is None:
            misses.append(f"{target} unbound (expected {want})")
        elif got != want:
            misses.append(f"{target} <- {got} (expected {want})")
    for target, got in sorted(shape.bindings.items()):
        if target.partition(".")[0] in shared and target not in task.bindings:
            misses.append(f"{target} <- {got} (expected unbound)")
    return misses


def score_error(task: PlannerTask, error: BaseException, impossible_error: type) -> list[str]:
    """What a planning error means for ``task``: right (no misses) only when the task is
    impossible and the error is ``impossible_error`` (PlanImpossible, or PlanInvalid before that
    class existed)."""
    name = type(error).__name__
    if task.impossible and isinstance(error, impossible_error):
        return []
    first_line = str(error).strip().splitlines()[0][:160] if str(error).strip() else ""
    if task.impossible:
        return [f"raised {name} (expected {impossible_error.__name__}): {first_line}"]
    return [f"raised {name}: {first_line}"]


# ---------------------------------------------------------------------------------------------
# Outcomes and summaries


@dataclass
class Outcome:
    """One task planned by one model (with one scripted fault, for the stub)."""

    task: str
    model: str
    impossible: bool
    right: bool
    #: the plan ran on the sample items with no failed item; None: nothing to run (impossible
    #: task answered with an error)
    runs: bool | None
    misses: list[str] = field(default_factory=list)
    run_problem: str | None = None
    #: class name of the planning error, None when a plan came out
    error: str | None = None
    #: the error is one the planner raises on purpose (OrchestratorError), not a crash
    refused: bool = False
    calls: int = 0
    tokens: int = 0
    seconds: float = 0.0
    fault: str | None = None

    @property
    def right_and_runs(self) -> bool:
        """Right, and (for a possible task) ran without a failed item."""
        return self.right and (self.runs is None or self.runs)

    @property
    def caught(self) -> bool:
        """For a wrong answer on purpose: no bad plan came out (the planner refused it on
        purpose, or what came out is right and runs)."""
        return self.refused or (self.error is None and self.right_and_runs)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["right_and_runs"] = self.right_and_runs
        data["caught"] = self.caught
        return data


def summarize(outcomes: list[Outcome]) -> dict[str, Any]:
    """One model's figures: counts, shares, calls and tokens per plan (mean), s/plan (median)."""
    n = len(outcomes)
    if n == 0:
        return {"tasks": 0}
    possible = [o for o in outcomes if not o.impossible]
    return {
        "tasks": n,
        "possible": len(possible),
        "impossible": n - len(possible),
        "right": sum(o.right for o in outcomes),
        "runs": sum(bool(o.runs) for o in possible),
        "right_and_runs": sum(o.right_and_runs for o in outcomes),
        "right_and_runs_share": round(sum(o.right_and_runs for o in outcomes) / n, 4),
        "caught": sum(o.caught for o in outcomes),
        "caught_share": round(sum(o.caught for o in outcomes) / n, 4),
        "errors": dict(Counter(o.error for o in outcomes if o.error)),
        "calls_per_plan": round(statistics.fmean(o.calls for o in outcomes), 2),
        "tokens_per_plan": round(statistics.fmean(o.tokens for o in outcomes), 1),
        "seconds_per_plan_median": round(statistics.median(o.seconds for o in outcomes), 3),
        "seconds_total": round(sum(o.seconds for o in outcomes), 1),
    }
