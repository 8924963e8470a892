"""The graph spec: one language for the planner's output and for hand-written graphs in ``graphs/``.

A graph declares the job's input fields, a list of steps (each names a registered skill and binds
every skill input to a job field or to an earlier step's output) and the job's outputs. Bindings
are ``input.<field>`` or ``<step>.<field>``; every step also exposes ``<step>.confidence`` and
``<step>.escalate``.

Example (``graphs/outbound_call_turn.yaml``)::

    name: outbound_call_turn
    inputs:
      utterance: str
    steps:
      - id: intent
        skill: turn_intent@prod
        inputs: {text: input.utterance}
        escalation: {threshold: 0.55}
    outputs:
      intent: intent.intent

This module checks structure only (names, shapes, syntax). Whether the skills exist, the bindings
resolve and the types match is checked against a registry by :mod:`orchestrator.graph.validation`.
"""

from __future__ import annotations

import builtins
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from orchestrator.errors import GraphIssue, GraphValidationError
from orchestrator.ports import Kind, Meaning, job_meaning

__all__ = [
    "INPUT_SOURCE",
    "Binding",
    "Escalation",
    "Evaluation",
    "GraphSpec",
    "InputField",
    "Step",
    "load_graph",
]

#: The binding source that means "the job's item" (``input.utterance``).
INPUT_SOURCE = "input"

_IDENT = r"[a-z_][a-z0-9_]*"
_BINDING = re.compile(rf"^({_IDENT})\.({_IDENT})$")
_SKILL_REF = r"^[a-z][a-z0-9_]*(@[0-9A-Za-z][0-9A-Za-z.+_-]*)?$"

TypeName = Literal["str", "int", "float", "bool"]
#: The Python type of each job field type name.
PY_TYPES: dict[str, type] = {"str": str, "int": int, "float": float, "bool": bool}


class Binding(BaseModel):
    """Where a value comes from: ``source`` is ``input`` or a step id, ``field`` a field of it."""

    model_config = ConfigDict(frozen=True)

    source: str
    field: str

    @classmethod
    def parse(cls, text: str) -> Binding:
        match = _BINDING.match(text.strip()) if isinstance(text, str) else None
        if match is None:
            raise ValueError(
                f"binding {text!r} must look like 'input.<field>' or '<step_id>.<field>'"
            )
        return cls(source=match.group(1), field=match.group(2))

    @property
    def key(self) -> str:
        """The column name this binding reads from the job state."""
        return f"{self.source}.{self.field}"

    def __str__(self) -> str:
        return self.key


def _parse_binding_map(value: Any) -> Any:
    """Bindings may be written as strings (``input.utterance``); parse them before validation."""
    if isinstance(value, dict):
        return {k: Binding.parse(v) if isinstance(v, str) else v for k, v in value.items()}
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class InputField(_Strict):
    """One field of the job's items. Written in full or as a bare type name (``utterance: str``)."""

    type: TypeName = Field(default="str", description="str, int, float or bool")
    required: bool = Field(default=True, description="an item without it gets a per-item error")
    description: str = Field(default="", description="what the field holds, for people and planner")
    kind: Kind | None = Field(
        default=None,
        description="what the value means (orchestrator.ports): a str field is 'text' and any "
        "other a plain 'value' unless set here",
    )
    labels: str | None = Field(
        default=None,
        pattern=r"^[a-z][a-z0-9_.]*$",
        description="the named label set the field's values come from (e.g. clinc150_intent), so "
        "it may feed inputs that take those labels",
    )

    @property
    def python_type(self) -> builtins.type:  # the field `type` shadows the builtin here
        """The Python type of the field's values."""
        return PY_TYPES[self.type]

    @property
    def meaning(self) -> Meaning:
        """What the field's values mean to the skills it feeds."""
        return job_meaning(self.type, self.kind, self.labels)


class Escalation(_Strict):
    """Per-step escalation policy: the cascade for items the step's skill is unsure of.

    Items whose confidence is under ``threshold`` are flagged ``escalate: true`` and go up the
    cascade: each skill of ``chain`` in turn (cheapest first; an answer at or above the threshold
    is kept), then, when the job runs with a big model, the big model — in batches of
    ``items_per_call``, at most ``max_concurrency`` calls at once. An item the big model cannot
    answer in time keeps the best small answer and is marked ``degraded``. Items under
    ``review_below`` additionally wait for a person (:mod:`orchestrator.review.desk`).

    A provider measured worse than the skill on its unsure items (``orchestrator providers
    eval``) gets none of them: they keep the small answer, flagged, with ``escalation_held`` set.
    ``force: true`` sends them anyway.
    """

    threshold: float | Literal["calibrated"] = Field(
        default=0.0,
        description="minimum confidence kept, or 'calibrated': the threshold `orchestrator skills "
        "calibrate` stored with the skill version",
    )
    chain: list[str] = Field(
        default_factory=list, description="skills to try before the big model, cheapest first"
    )
    to_llm: bool = Field(default=True, description="end the cascade at the big model")
    items_per_call: int = Field(default=10, ge=1, le=200, description="items per big-model call")
    max_concurrency: int = Field(default=4, ge=1, le=64, description="big-model calls at once")
    timeout_s: float = Field(default=60.0, gt=0, le=3600, description="bound on one call")
    force: bool = Field(
        default=False,
        description="escalate even to providers measured worse than the skill on its unsure "
        "items (`orchestrator providers eval`); default: those items keep the small answer",
    )
    review_below: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="second, lower threshold: items the skill answered with less confidence are "
        "held for a human reviewer (the cascade's answer is the proposal); their dependent steps "
        "wait for the answer (`orchestrator review`)",
    )

    @field_validator("threshold")
    @classmethod
    def _in_range(cls, value: float | str) -> float | str:
        if isinstance(value, float | int) and not 0.0 <= value <= 1.0:
            raise ValueError("threshold must be between 0 and 1, or 'calibrated'")
        return value


class Step(_Strict):
    """One step: a skill, and where each of its inputs comes from."""

    id: str = Field(pattern=rf"^{_IDENT}$", description="unique within the graph; not 'input'")
    skill: str = Field(pattern=_SKILL_REF, description="'name', 'name@alias' or 'name@version'")
    inputs: dict[str, Binding] = Field(
        default_factory=dict, description="skill input field -> 'input.<field>' or '<step>.<field>'"
    )
    escalation: Escalation | None = None
    description: str = ""

    _parse_bindings = field_validator("inputs", mode="before")(
        classmethod(lambda cls, value: _parse_binding_map(value))
    )


class Evaluation(_Strict):
    """How to score a run when items carry a gold label: compare ``output`` with ``label_field``."""

    output: str
    label_field: str = "label"


class GraphSpec(_Strict):
    """A whole graph: inputs, steps, outputs. Build it from YAML with :func:`load_graph`."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    version: str = "1"
    description: str = ""
    inputs: dict[str, InputField] = Field(min_length=1)
    steps: list[Step] = Field(min_length=1)
    outputs: dict[str, Binding] = Field(min_length=1)
    evaluate: Evaluation | None = None
    known_pii: dict[str, Literal["name", "phone", "email", "address", "other"]] = Field(
        default_factory=dict,
        description="input fields holding what the job knows about the customer (field -> kind): "
        "their values are redacted as exact matches from anything an item sends to a big model",
    )

    @field_validator("inputs", mode="before")
    @classmethod
    def _shorthand_inputs(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: {"type": v} if isinstance(v, str) else v for k, v in value.items()}
        return value

    _parse_outputs = field_validator("outputs", mode="before")(
        classmethod(lambda cls, value: _parse_binding_map(value))
    )

    @model_validator(mode="after")
    def _check_names(self) -> GraphSpec:
        for name in self.inputs:
            if not re.match(rf"^{_IDENT}$", name) or name in {"id", "label"}:
                raise ValueError(
                    f"input field {name!r} must be snake_case and not 'id' or 'label' "
                    "(those are the item's identity and gold label)"
                )
        for name in self.outputs:
            if not re.match(rf"^{_IDENT}$", name) or name in {"id", "error", "escalate"}:
                raise ValueError(
                    f"output {name!r} must be snake_case and not 'id', 'error' or 'escalate' "
                    "(the runtime writes those on every result line)"
                )
        return self

    def step(self, step_id: str) -> Step | None:
        """The step with this id, or None."""
        return next((s for s in self.steps if s.id == step_id), None)

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "<graph>") -> GraphSpec:
        """Validate raw data (parsed YAML/JSON, or a planner's answer) into a spec.

        Structural problems raise GraphValidationError with one issue per problem, located at the
        step (by id where the step has one).
        """
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            issues = [_issue_from_error(err, data) for err in exc.errors()]
            raise GraphValidationError(_graph_name(data, source), issues) from None

    def to_yaml(self) -> str:
        """The spec as YAML, bindings written back as strings (round-trips through load)."""
        data = self.model_dump(mode="json", exclude_defaults=True)
        data["inputs"] = {
            k: v.model_dump(exclude_defaults=True) or "str" for k, v in self.inputs.items()
        }
        for raw, step in zip(data["steps"], self.steps, strict=True):
            raw["inputs"] = {k: str(b) for k, b in step.inputs.items()}
        data["outputs"] = {k: str(b) for k, b in self.outputs.items()}
        return yaml.safe_dump(data, sort_keys=False, width=100)


def load_graph(path: Path | str) -> GraphSpec:
    """Read a graph spec from a YAML (or JSON) file; GraphValidationError names what to fix."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise GraphValidationError(str(path), [GraphIssue("file", "no such file")]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise GraphValidationError(
            str(path), [GraphIssue("file", f"not valid YAML: {exc}")]
        ) from None
    if not isinstance(data, dict):
        raise GraphValidationError(str(path), [GraphIssue("file", "must hold a mapping")])
    return GraphSpec.from_dict(data, source=str(path))


def _graph_name(data: Any, source: str) -> str:
    if isinstance(data, dict) and isinstance(data.get("name"), str):
        return data["name"]
    return source


def _issue_from_error(err: Any, data: Any) -> GraphIssue:
    loc = list(err.get("loc", ()))
    where = "graph"
    if len(loc) >= 2 and loc[0] == "steps" and isinstance(loc[1], int):
        where = f"step #{loc[1] + 1}"
        steps = data.get("steps") if isinstance(data, dict) else None
        if isinstance(steps, list) and loc[1] < len(steps) and isinstance(steps[loc[1]], dict):
            step_id = steps[loc[1]].get("id")
            if isinstance(step_id, str):
                where = f"step {step_id!r}"
        loc = loc[2:]
    elif loc:
        where = str(loc[0])
        loc = loc[1:]
    field = ".".join(str(part) for part in loc)
    message = err.get("msg", "invalid")
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    return GraphIssue(where, f"{field}: {message}" if field else message)
