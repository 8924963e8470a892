"""What a job could return: the registry's outputs as *deliverables*, each with the step that makes it.

The planner asks the model what the job must return, not which skills to run: a deliverable is one
meaning a skill can produce (a label set such as ``clinc150_intent``, a flag such as
``opted_out``, a probability...), and the skills that produce it are found here, not guessed.

* **Tiers are one step.** Skills that produce the same label set from the same inputs are tiers
  of one task: the cheapest answers and the others form its escalation chain, in the order a chain
  calibration recorded (``orchestrator skills calibrate B --after A``), with ``threshold:
  calibrated``. A tier without a calibration for its current artifacts is left out of the chain,
  since a chain step needs one.
* **Only what can be fed.** A deliverable is offered only when its producer's required inputs can
  be fed from the job's fields or from other deliverables' producers (closed under producers).
  What cannot be fed, and why, is kept for the ``plan_impossible`` message.

Notes (a reason written for people) and the step's own columns are never deliverables: they come
with their step.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from orchestrator.graph.meanings import input_meaning, output_ports, skill_output_meanings
from orchestrator.graph.spec import InputField
from orchestrator.graph.validation import assignable
from orchestrator.ports import STEP_EXTRAS, Meaning, mismatch
from orchestrator.registry.calibrations import stored_chain_thresholds, stored_threshold
from orchestrator.registry.registry import Registry, SkillVersion

__all__ = ["Catalog", "Deliverable", "Producer", "fits", "fitting_outputs"]


@dataclass(frozen=True)
class Producer:
    """One planned step: the skill that answers, its escalation chain, and whether it escalates."""

    skill: SkillVersion
    chain: tuple[SkillVersion, ...] = ()
    #: the skill (and chain) carry a calibration: the step escalates at ``threshold: calibrated``
    calibrated: bool = False

    @property
    def name(self) -> str:
        return self.skill.name


@dataclass(frozen=True)
class Deliverable:
    """One thing a job can return: its id (the meaning's name), what it is, and who makes it."""

    id: str
    meaning: Meaning
    field: str
    description: str
    producer: Producer


@dataclass
class Catalog:
    """The deliverables the registry can produce for items with ``fields``."""

    fields: Mapping[str, InputField]
    deliverables: dict[str, Deliverable]
    #: producer skill -> why it cannot be fed from these fields (for plan_impossible)
    unfed: dict[str, str] = field(default_factory=dict)

    @classmethod
    def build(cls, registry: Registry, fields: Mapping[str, InputField]) -> Catalog:
        """Every deliverable whose producer can be fed, tiers folded into one producer each."""
        versions = [registry.resolve(name) for name in registry.names()]
        problems = {v.name: v.problem() for v in versions}
        unbuilt = {name: problem for name, problem in problems.items() if problem}
        runnable = [v for v in versions if v.name not in unbuilt]
        steps = _fold_tiers(runnable)
        fed = _feedable(steps, fields)
        deliverables: dict[str, Deliverable] = {}
        for producer in fed:
            for name, meaning in skill_output_meanings(producer.skill).items():
                if name in STEP_EXTRAS or meaning.kind == "note":
                    continue
                key = _deliverable_id(producer.name, name, meaning)
                if key in deliverables:  # another producer makes it too: name both apart
                    key = f"{key}.{producer.name}"
                info = producer.skill.skill_cls.Output.model_fields[name]
                described = info.description or producer.skill.skill_cls.description
                deliverables[key] = Deliverable(key, meaning, name, described, producer)
        unfed = {p.name: _why_unfed(p, fields) for p in steps if p not in fed}
        return cls(fields, deliverables, {**unbuilt, **unfed})

    def producers(self) -> list[Producer]:
        """Each producing step once, in catalog order."""
        return list({d.producer.name: d.producer for d in self.deliverables.values()}.values())

    def sources_for(self, info: object) -> list[tuple[Producer, str]]:
        """(producer, output field) pairs whose output a skill input (pydantic field) can read."""
        return fitting_outputs(self.producers(), info)


def fitting_outputs(producers: Iterable[Producer], info: object) -> list[tuple[Producer, str]]:
    """(producer, output field) pairs of ``producers`` whose output a skill input can read (the
    step's own columns, such as ``confidence``, aside)."""
    return [
        (producer, name)
        for producer in producers
        for name, (meaning, annotation) in output_ports(producer.skill).items()
        if name not in STEP_EXTRAS and fits(meaning, annotation, info)
    ]


def fits(meaning: Meaning, annotation: object, info: object) -> bool:
    """Whether a value (its meaning and Python type) can feed a skill input (pydantic field)."""
    target = getattr(info, "annotation", None)
    return assignable(annotation, target) and mismatch(meaning, input_meaning(info)) is None


def _deliverable_id(skill: str, field: str, meaning: Meaning) -> str:
    if meaning.kind in ("label", "flag", "probability") and meaning.name:
        return meaning.name
    return f"{skill}.{field}"


def _fold_tiers(versions: list[SkillVersion]) -> list[Producer]:
    """One producer per task: skills with the same label outputs and the same required inputs are
    tiers; the cheapest answers, calibrated stronger ones follow in its chain."""
    groups: dict[tuple[object, ...], list[SkillVersion]] = {}
    for version in versions:
        groups.setdefault(_task_signature(version), []).append(version)
    producers = []
    for group in groups.values():
        group.sort(key=lambda v: (v.skill_cls.relative_cost, v.name))
        first = group[0]
        chain = tuple(v for v in group[1:] if _chainable(v, first))
        calibrated = stored_threshold(first) is not None or bool(chain)
        producers.append(Producer(first, chain, calibrated))
    return producers


def _chainable(version: SkillVersion, first: SkillVersion) -> bool:
    """A tier joins the chain when calibrated after ``first``, or on its own with ``first`` too."""
    if stored_chain_thresholds(version, first) is not None:
        return True
    return stored_threshold(version) is not None and stored_threshold(first) is not None


def _task_signature(version: SkillVersion) -> tuple[object, ...]:
    """What makes two skills tiers of one task: the same named label outputs and the same
    required inputs. A skill without a named label output is a task of its own."""
    outputs = skill_output_meanings(version)
    labels = tuple(
        sorted(
            (n, m.name or "")
            for n, m in outputs.items()
            if m.kind == "label" and m.name and not m.name.startswith(f"{version.name}.")
        )
    )
    if not labels:
        return ("skill", version.name)
    inputs = tuple(
        sorted(
            (n, repr(input_meaning(f)))
            for n, f in version.skill_cls.Input.model_fields.items()
            if f.is_required()
        )
    )
    return ("tiers", labels, inputs)


def _feedable(steps: list[Producer], fields: Mapping[str, InputField]) -> list[Producer]:
    """The producers whose required inputs the job's fields, or other feedable producers' outputs,
    can fill (a fixpoint: a producer fed only by another comes after it)."""
    available: list[tuple[Meaning, object]] = [(f.meaning, f.python_type) for f in fields.values()]
    fed: list[Producer] = []
    remaining = list(steps)
    while True:
        ready = [p for p in remaining if _can_feed(p, available)]
        if not ready:
            return fed
        for producer in ready:
            fed.append(producer)
            remaining.remove(producer)
            available += output_ports(producer.skill).values()


def _can_feed(producer: Producer, available: list[tuple[Meaning, object]]) -> bool:
    return all(
        any(fits(meaning, annotation, info) for meaning, annotation in available)
        for info in producer.skill.skill_cls.Input.model_fields.values()
        if info.is_required()
    )


def _why_unfed(producer: Producer, fields: Mapping[str, InputField]) -> str:
    needs = [
        name
        for name, info in producer.skill.skill_cls.Input.model_fields.items()
        if info.is_required()
    ]
    shown = ", ".join(needs[:6]) + (f" and {len(needs) - 6} more" if len(needs) > 6 else "")
    return f"needs {shown}; the job's fields ({', '.join(fields)}) cannot feed it"
