"""Wiring by construction: the steps a set of deliverables needs, and each input's source.

Two passes over the chosen producers (:class:`~orchestrator.planning.catalog.Producer`):

1. **closure**: a required input that neither a job field nor a planned step can feed pulls in the
   one producer that can (``next_action`` brings ``turn_intent`` for its intent and ``opt_out``
   for its flag). Nothing else goes in: the plan is the smallest set that makes the deliverables.
2. **binding**: an input with exactly one source whose meaning fits is bound without asking. Only
   real choices (two fitting sources, or two producers of a missing input) become questions for
   the model, each answerable only with the sources that fit. A confidence input that names
   another input reads the confidence of that input's step.

A required input with no source at all makes the plan impossible, and the message says what is
missing.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from orchestrator.errors import PlanImpossible
from orchestrator.graph.meanings import input_meaning, skill_output_meanings
from orchestrator.graph.spec import INPUT_SOURCE, InputField
from orchestrator.planning.catalog import Catalog, Producer, fits, fitting_outputs
from orchestrator.ports import Meaning

__all__ = ["Wiring", "wire"]


@dataclass
class Wiring:
    """Steps (by skill name, in planning order), their bindings, and the questions left open."""

    steps: dict[str, Producer]
    bindings: dict[str, dict[str, str]] = field(default_factory=dict)
    #: "<step>.<input>" -> the sources (``input.x`` or ``<step>.<field>``) that fit it
    questions: dict[str, list[str]] = field(default_factory=dict)


def wire(
    task: str,
    catalog: Catalog,
    chosen: list[Producer],
    answers: Mapping[str, str] | None = None,
) -> Wiring:
    """The steps and bindings for ``chosen`` producers; ``answers`` settle earlier questions."""
    answers = dict(answers or {})
    steps = {p.name: p for p in chosen}
    questions: dict[str, list[str]] = {}
    _close(task, catalog, steps, answers, questions)
    wiring = Wiring(steps)
    taken = _named_fields(steps, catalog.fields)
    for name, producer in steps.items():
        wiring.bindings[name] = _bind_step(
            producer, catalog.fields, steps, answers, questions, taken
        )
    wiring.questions = {k: v for k, v in questions.items() if k not in answers}
    return wiring


def _close(
    task: str,
    catalog: Catalog,
    steps: dict[str, Producer],
    answers: Mapping[str, str],
    questions: dict[str, list[str]],
) -> None:
    """Add the producers required inputs cannot do without, until nothing is missing."""
    changed = True
    while changed:
        changed = False
        for producer in list(steps.values()):
            for name, info in producer.skill.skill_cls.Input.model_fields.items():
                meaning = input_meaning(info)
                if not info.is_required() or (meaning and meaning.kind == "confidence"):
                    continue
                key = f"{producer.name}.{name}"
                have = _sources(info, catalog.fields, steps, exclude=producer.name)
                if have and (not meaning or _claimed(name, meaning, have, catalog.fields, steps)):
                    continue
                sources = [(p, f) for p, f in catalog.sources_for(info) if p.name != producer.name]
                offered = {p.name: p for p, _ in sources}
                if have and not offered:
                    continue  # only plain job values fit, and nothing makes better: the job vouches
                if not offered:
                    want = meaning.describe() if meaning else "a value of its type"
                    raise PlanImpossible(
                        task,
                        [
                            f"{producer.name} needs {name!r} ({want}) and neither the job's "
                            f"fields ({', '.join(catalog.fields)}) nor any registered skill "
                            "gives it"
                        ],
                    )
                pick = answers.get(key, "").partition(".")[0]
                if pick not in offered:
                    if len(offered) > 1:
                        questions[key] = [f"{p.name}.{f}" for p, f in sources]
                        continue
                    pick = next(iter(offered))
                steps[pick] = offered[pick]
                changed = True


def _sources(
    info: object, fields: Mapping[str, InputField], steps: Mapping[str, Producer], *, exclude: str
) -> list[str]:
    """The job fields and planned steps' outputs that fit a skill input."""
    found = [
        f"{INPUT_SOURCE}.{n}" for n, f in fields.items() if fits(f.meaning, f.python_type, info)
    ]
    others = [p for step, p in steps.items() if step != exclude]
    return found + [f"{p.name}.{field}" for p, field in fitting_outputs(others, info)]


def _bind_step(
    producer: Producer,
    fields: Mapping[str, InputField],
    steps: Mapping[str, Producer],
    answers: Mapping[str, str],
    questions: dict[str, list[str]],
    taken: frozenset[str],
) -> dict[str, str]:
    """One step's bindings: settled sources bound, real choices asked, confidences after their
    partner input."""
    bound: dict[str, str] = {}
    inputs = producer.skill.skill_cls.Input.model_fields
    later = []
    for name, info in inputs.items():
        meaning = input_meaning(info)
        if meaning is not None and meaning.kind == "confidence" and meaning.of:
            later.append((name, meaning.of))
            continue
        options = _sources(info, fields, steps, exclude=producer.name)
        options = _strongest(name, info, options, fields, steps, taken)
        _settle(f"{producer.name}.{name}", name, options, answers, questions, bound)
    for name, partner in later:
        source = bound.get(partner)
        if source is None:
            continue
        step = source.partition(".")[0]
        if step != INPUT_SOURCE:
            bound[name] = f"{step}.confidence"
            continue
        options = _sources(inputs[name], fields, steps, exclude=producer.name)
        options = [o for o in options if o.startswith(f"{INPUT_SOURCE}.")]
        options = _strongest(name, inputs[name], options, fields, steps, taken)
        _settle(f"{producer.name}.{name}", name, options, answers, questions, bound)
    return bound


def _settle(
    key: str,
    name: str,
    options: list[str],
    answers: Mapping[str, str],
    questions: dict[str, list[str]],
    bound: dict[str, str],
) -> None:
    if key in answers and answers[key] in options:
        bound[name] = answers[key]
    elif len(options) == 1:
        bound[name] = options[0]
    elif len(options) > 1:
        questions[key] = options


def _strongest(
    name: str,
    info: Any,
    options: list[str],
    fields: Mapping[str, InputField],
    steps: Mapping[str, Producer],
    taken: frozenset[str] = frozenset(),
) -> list[str]:
    """The sources worth binding, strongest claim first, so the model is asked only real choices:

    1. a job field named like the input (``lead_score.age`` reads ``input.age``);
    2. sources whose meaning is the input's own, not merely admitted: a planned ``opt_out``'s
       ``opted_out`` flag over a plain job bool, a text field over an identifier
       (``customer_id``, ``call_started_at``: a str field, but no one's words), and over a field
       another step reads by its name (``month`` feeding ``lead_score.month`` is a category);
    3. the rest, for a required input. An optional input is not bound to a guess: only to the one
       plain job value of exactly its type (a float ``propensity`` for a float lead score, never
       an int ``turn_index``).
    """
    if f"{INPUT_SOURCE}.{name}" in options:
        return [f"{INPUT_SOURCE}.{name}"]
    target = input_meaning(info)
    if target is not None and target.kind not in ("value", "number"):
        exact = [o for o in options if _owns(o, target, fields, steps)]
        free = [o for o in exact if o.partition(".")[2] not in taken]
        exact = free or exact
        if exact:
            return exact
    if info.is_required():
        return options
    base = {a for a in typing.get_args(info.annotation) if a is not type(None)} or {info.annotation}
    plain = [
        o
        for o in options
        if o.startswith(f"{INPUT_SOURCE}.") and fields[o.partition(".")[2]].python_type in base
    ]
    return plain if len(plain) == 1 else []


#: str job fields whose names say they hold an identifier or a time, not someone's words
_NOT_WORDS = re.compile(
    r"(?:^|_)(?:id|ids|uuid|key|at|ts|time|timestamp|date|index|idx|no|number)$"
)


def _named_fields(
    steps: Mapping[str, Producer], fields: Mapping[str, InputField]
) -> frozenset[str]:
    """Job fields some planned step reads by their own name (``input.month`` → ``month``)."""
    return frozenset(
        name
        for producer in steps.values()
        for name in producer.skill.skill_cls.Input.model_fields
        if name in fields
    )


def _claimed(
    name: str,
    target: Meaning,
    have: list[str],
    fields: Mapping[str, InputField],
    steps: Mapping[str, Producer],
) -> bool:
    """Whether an input is fed by right, not by a plain value that merely fits: a job field of its
    name, or a source that owns its meaning. Otherwise the producer of the meaning joins the plan
    (a job's ``is_test_call`` bool must not stand in for an opt-out flag)."""
    if f"{INPUT_SOURCE}.{name}" in have or target.kind in ("value", "number"):
        return True
    return any(_owns(source, target, fields, steps) for source in have)


def _owns(
    source: str, target: Meaning, fields: Mapping[str, InputField], steps: Mapping[str, Producer]
) -> bool:
    """Whether ``source`` carries the target's meaning itself (kind and name), not as a plain
    value the caller vouches for."""
    step, _, field = source.partition(".")
    if step == INPUT_SOURCE:
        meaning = fields[field].meaning
        if meaning.kind == "text" and _NOT_WORDS.search(field):
            return False
    else:
        meaning = skill_output_meanings(steps[step].skill)[field]
    if meaning.kind != target.kind:
        return False
    return target.name is None or meaning.name == target.name
