"""The scripted wrong planner of the benchmark: answers every planning question wrongly on purpose.

It answers whatever the planner asks from the JSON schema of the question (``response_format``),
so it keeps working while the planner's questions change: a generic walker builds an answer of
that schema, and the *fault* decides each choice. It knows the task's expected plan, so its wrong
choices are wrong for sure, and of the kinds that schemas, validation and the dry run must catch:

=================  ================================================================  ============
fault              what it answers                                                   its schema
=================  ================================================================  ============
``prose``          chatty text, no JSON                                              broken
``off_schema``     names that do not exist (``shell_exec``, ``shell_exec.output``)   broken
``incomplete``     every object misses its first key (a choice, an input, a list)   broken
``crossed_wires``  what the task asks for, but every open choice of a source wrong   valid
=================  ================================================================  ============

``crossed_wires`` is the real test: it binds a source the input must not read wherever the
question lets it choose (e.g. the utterance or another skill's labels into next_action's intent).
Meaning-typed ports keep such sources out of the question (then the plan is right by
construction); what is still offered, validation or the dry run must refuse. For an impossible
task it claims a deliverable the task did not ask for: only the planner's own reading of the task
can catch that.

A schema-valid answer that picks the *wrong outputs* (returns an intent when the task asked for an
opt-out flag) is not a fault here: no validation can tell it from a different task.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from typing import Any

from planner_scoring import PlannerTask

__all__ = ["FAULTS", "wrong_answer", "wrong_responder"]

FAULTS = ("prose", "off_schema", "incomplete", "crossed_wires")

UNKNOWN = "shell_exec"
_SOURCE = re.compile(r"^[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*$")


def wrong_responder(
    task: PlannerTask,
    fault: str,
    skill_names: Collection[str],
    meanings: Mapping[str, Collection[str]] | None = None,
) -> Callable[[dict[str, Any]], Any]:
    """A :class:`~orchestrator.testing.StubLLMServer` responder answering ``task`` with ``fault``.

    ``meanings``: deliverable names (label sets, flags, probabilities) -> the ``<skill>.<output>``
    sources that produce them, so the stub can tell which offered outputs the task asks for.
    """
    if fault not in FAULTS:
        raise ValueError(f"unknown fault {fault!r}; choose from {FAULTS}")

    def respond(request: dict[str, Any]) -> Any:
        if fault == "prose":
            return "Sure! First run the intent model, then decide what to do. Hope this helps."
        schema = _schema_of(request)
        if schema is None:
            return {}
        return wrong_answer(schema, task, fault, skill_names, meanings)

    return respond


def wrong_answer(
    schema: dict[str, Any],
    task: PlannerTask,
    fault: str,
    skill_names: Collection[str],
    meanings: Mapping[str, Collection[str]] | None = None,
) -> Any:
    """An answer to the question ``schema`` asks, wrong for ``task`` in the way ``fault`` says."""
    walker = _Walker(schema, task, fault, set(skill_names), meanings or {})
    return walker.value(schema, ())


def _schema_of(request: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON schema of the answer, wherever the provider's wire format put it."""
    fmt = request.get("response_format") or {}
    schema = (fmt.get("json_schema") or {}).get("schema") or fmt.get("schema")
    return schema if isinstance(schema, dict) else None


class _Walker:
    """Builds one value of a JSON schema; the fault picks among enums and optional parts."""

    def __init__(
        self,
        root: dict[str, Any],
        task: PlannerTask,
        fault: str,
        skills: set[str],
        meanings: Mapping[str, Collection[str]],
    ) -> None:
        self.root = root
        self.task = task
        self.fault = fault
        self.skills = skills
        self.meanings = meanings

    def value(self, schema: dict[str, Any], path: tuple[str, ...]) -> Any:
        schema = self._resolve(schema)
        if "const" in schema:
            return self._pick(path, [schema["const"]])
        if "enum" in schema:
            return self._pick(path, list(schema["enum"]))
        options = schema.get("anyOf") or schema.get("oneOf")
        if options:
            return self._option([self._resolve(o) for o in options], path)
        kind = schema.get("type")
        if kind == "object" or "properties" in schema:
            return self._object(schema, path)
        if kind == "array":
            return self._array(schema, path)
        return {"string": "n/a", "integer": 0, "number": 0.0, "boolean": False}.get(kind)

    def _resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            node: Any = self.root
            for part in schema["$ref"].lstrip("#/").split("/"):
                node = node[part]
            schema = node
        return schema

    def _object(self, schema: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
        properties: dict[str, Any] = schema.get("properties", {})
        required = set(schema.get("required", []))
        out: dict[str, Any] = {}
        for name, sub in properties.items():
            value = self.value(sub, (*path, name))
            if name in required or value is not None:
                out[name] = value
        if self.fault == "incomplete" and out:
            out.pop(next(iter(out)))
        return out

    def _array(self, schema: dict[str, Any], path: tuple[str, ...]) -> list[Any]:
        items = self._resolve(schema.get("items", {}))
        low, high = schema.get("minItems", 1), schema.get("maxItems", 1_000)
        choices = items.get("enum") or ([items["const"]] if "const" in items else None)
        if choices is None:
            return [self.value(items, (*path, "[]")) for _ in range(max(low, 1))]
        chosen = self._pick_many(list(choices))
        if len(chosen) < low:
            chosen += [c for c in choices if c not in chosen][: low - len(chosen)]
        return chosen[:high]

    def _option(self, options: list[dict[str, Any]], path: tuple[str, ...]) -> Any:
        """An optional value (``anyOf [..., null]``): bound wrongly by ``crossed_wires`` when it
        should stay unbound, else only when the task expects it."""
        real = [o for o in options if o.get("type") != "null"]
        if not real:
            return None
        if len(real) == len(options) or self.fault == "crossed_wires":
            return self.value(real[0], path)
        target = self._target(path)
        if target is not None and target not in self.task.bindings:
            return None
        return self.value(real[0], path)

    # --- choices ------------------------------------------------------------------------------

    def _target(self, path: tuple[str, ...]) -> str | None:
        """``<skill>.<input>`` when ``path`` ends at a skill's input (``...<skill>...<input>`` or
        a key ``<skill>.<input>``), else None."""
        if not path:
            return None
        if _SOURCE.match(path[-1]) and path[-1].partition(".")[0] in self.skills:
            return path[-1]
        skill = next((p for p in reversed(path[:-1]) if p in self.skills), None)
        return f"{skill}.{path[-1]}" if skill else None

    def _pick(self, path: tuple[str, ...], choices: list[Any]) -> Any:
        """One value of an enum: a skill name, a source for an input, or anything else."""
        if all(isinstance(c, str) and c in self.skills for c in choices):
            return self._pick_many(choices)[0]
        if self.fault == "off_schema":
            return f"{UNKNOWN}.output"
        if not all(isinstance(c, str) and _SOURCE.match(c) for c in choices):
            return choices[0]
        want = self.task.bindings.get(self._target(path) or "")
        if self.fault == "crossed_wires":
            return next((c for c in choices if c != want), choices[0])
        return want if want in choices else choices[0]

    def _pick_many(self, choices: list[Any]) -> list[Any]:
        """What the task asks for among ``choices`` (skills, deliverables or sources), else the
        first choice."""
        if self.fault == "off_schema":
            return [UNKNOWN]
        wanted = [c for c in choices if isinstance(c, str) and self._asked(c)]
        if wanted:
            return wanted
        # Nothing offered is asked for: a possible task takes the way out the question gives
        # (e.g. "nothing_fits" in a near-tie), so the fault stays in the wiring; an impossible
        # one claims the first thing the registry makes.
        known = [c for c in choices if isinstance(c, str) and self._known(c)]
        other = [c for c in choices if c not in known]
        if self.task.impossible:
            return (known or choices)[:1]
        return (other or choices)[:1]

    def _asked(self, option: str) -> bool:
        """Whether the task's expected plan has ``option``: a skill, an output, or a deliverable
        (a meaning's name, ``<name>.<producer>`` when two skills make it) one of its outputs
        has."""
        if option in self.task.skills or option in self.task.outputs:
            return True
        name, _, producer = option.rpartition(".")
        if producer not in self.skills:
            name, producer = option, ""
        sources = self.meanings.get(name, ())
        return any(
            s in self.task.outputs and (not producer or s.startswith(f"{producer}."))
            for s in sources
        )

    def _known(self, option: str) -> bool:
        """Whether ``option`` names something registered: a skill, a source, a deliverable."""
        name, _, producer = option.rpartition(".")
        return (
            option in self.skills
            or option in self.meanings
            or (producer in self.skills and name in self.meanings)
            or (bool(_SOURCE.match(option)) and option.partition(".")[0] in self.skills)
        )
