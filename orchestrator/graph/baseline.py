"""The all-big-model baseline: what a job would have cost with the big model doing the work.

Every ledger carries it next to what the job really spent (``baseline_*`` next to ``llm_*``), so
the saving shows on every job, API and CLI alike. It is **counted**, chunk by chunk, in one place
(:func:`count_chunk`, called by :func:`orchestrator.graph.aggregate.collect_chunk`):

- **calls**: one per item per *baseline step*. A baseline step is one whose work the big model
  would do in an all-big-model deployment: its skill is a learned model (any backend but plain
  ``python`` rules), or its escalation policy can send items to the big model. Rules stay rules
  in both worlds and count nothing. Each item is its own call: a real-time turn cannot wait for
  others to fill a batch, and a per-item LLM integration is written that way. (A batch pipeline
  could pack ``items_per_call`` items per call, as the cascade does: fewer calls, and the shared
  prompt header paid once per call instead of once per item.) A **gated** step counts only the
  items its gate let in: its skill answers only items whose ``when`` input is one of its
  ``answer_on`` labels (a knowledge base built with ``--answer-on``, e.g. the FAQ step that
  replies only when the next action is ``answer_question``), and the others get an empty answer
  without any work. The gate's outcome in this run (the ``when`` column the graph computed) stands
  for what an all-big-model deployment would have decided; counting every item would overstate
  the saving.
- **prompt tokens**: the characters of the messages the cascade would send for that item alone —
  its system prompt and the skill-contract prompt of :mod:`orchestrator.graph.cascade` (description,
  outputs, the closed label set) with the item's inputs — divided by :data:`CHARS_PER_TOKEN`
  (4, the usual rule of thumb for English with GPT-style tokenizers: no tokenizer is installed,
  and counting must stay cheap). The JSON schema sent as ``response_format`` is not counted.
- **completion tokens**: the characters of a typical answer in the cascade's answer schema (a
  label of mean length for closed sets, see :func:`example_answer`) divided by 4.
- **cost**: those tokens at the reference price named in the ledger's ``baseline_price_model``
  (default ``ORCHESTRATOR_REPORT_PRICE_MODEL``, see :mod:`orchestrator.config.prices`).

The per-step constants (prompt header, answer size) are worked out once per graph; per chunk the
count is one ``json.dumps`` of the baseline steps' input columns (~1 ms per 2,048 items).

:func:`measure_baseline` checks the estimate: it sends a sample of items to the configured big
model exactly that way (``orchestrator report --measure-sample N``) and returns measured tokens and
seconds per call, to extrapolate to the job.
"""

from __future__ import annotations

import json
import math
import time
import types
import typing
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from orchestrator.accounting.ledger import Ledger
from orchestrator.config.prices import default_price, price_of
from orchestrator.graph.spec import INPUT_SOURCE
from orchestrator.graph.validation import ResolvedGraph, ResolvedStep

if TYPE_CHECKING:
    from orchestrator.graph.compiler import CompiledGraph
    from orchestrator.llm.gateway import Budget

__all__ = [
    "CHARS_PER_TOKEN",
    "GATE_INPUT",
    "Gate",
    "Measurement",
    "add_baseline_calls",
    "baseline_messages",
    "baseline_steps",
    "count_chunk",
    "example_answer",
    "gate_of",
    "measure_baseline",
    "message_chars",
    "tokens_of",
]

#: Characters per token of the estimate (English text, GPT-style BPE tokenizers).
CHARS_PER_TOKEN = 4
#: Skill backends that are rules: the big model would not replace them.
RULE_BACKENDS = frozenset({"python"})


def baseline_steps(graph: ResolvedGraph) -> list[ResolvedStep]:
    """The steps the big model would do in an all-big-model deployment (see the module doc)."""
    return [
        s
        for s in graph.steps
        if s.skill.skill_cls.backend not in RULE_BACKENDS
        or (s.spec.escalation is not None and s.spec.escalation.to_llm)
    ]


def baseline_messages(
    step: ResolvedStep, row: int, values: Mapping[str, Any]
) -> list[dict[str, str]]:
    """The chat the cascade would send for one item (``values``: the step's skill inputs)."""
    from orchestrator.graph.cascade import escalation_messages

    fields = [f for f in step.skill.skill_cls.Input.model_fields if f in values]
    return escalation_messages(step, [{"index": row, **{f: values[f] for f in fields}}])


def message_chars(messages: Iterable[Mapping[str, Any]]) -> int:
    """Characters of a chat's text contents (what the token estimate divides)."""
    return sum(len(m["content"]) for m in messages if isinstance(m.get("content"), str))


def tokens_of(chars: int) -> int:
    """The token estimate for ``chars`` characters."""
    return math.ceil(chars / CHARS_PER_TOKEN)


# --- counting ------------------------------------------------------------------------------------


#: The input a gated skill reads its gate from (see :func:`gate_of`).
GATE_INPUT = "when"


@dataclass(frozen=True)
class Gate:
    """A step that answers only some items: those whose ``column`` value is in ``labels``."""

    column: str
    labels: frozenset[str]

    def rows(self, columns: Mapping[str, Sequence[Any]], size: int) -> list[int]:
        """The rows among the first ``size`` that the gate lets in (none when ``when`` is
        unbound: the skill then answers nothing)."""
        values = columns.get(self.column)
        if values is None:
            return []
        return [row for row in range(size) if values[row] in self.labels]


def gate_of(step: ResolvedStep) -> Gate | None:
    """The step's gate, when its skill answers only on some labels of its ``when`` input.

    A skill class declares it with a non-empty ``answer_on`` (the knowledge base's retrieval
    skill, built with ``--answer-on``; read by name, since the graph layer sits below ``kb``);
    a step that leaves ``when`` unbound lets nothing in, as the skill does.
    """
    labels = getattr(step.skill.skill_cls, "answer_on", ())
    if not labels:
        return None
    binding = step.spec.inputs.get(GATE_INPUT)
    return Gate(binding.key if binding else "", frozenset(str(label) for label in labels))


@dataclass(frozen=True)
class _StepCount:
    """What one baseline step's per-item call costs, apart from the item itself."""

    step: ResolvedStep
    #: (skill input, column key) in the order the cascade writes them
    inputs: tuple[tuple[str, str], ...]
    #: characters of one call's messages but the item's values and index digits
    fixed_chars: int
    completion_chars: int
    #: the step answers only the rows its gate lets in (None: every row)
    gate: Gate | None = None

    def rows(self, columns: Mapping[str, Sequence[Any]], size: int) -> Sequence[int]:
        """The rows among the first ``size`` the big model would be asked about."""
        return range(size) if self.gate is None else self.gate.rows(columns, size)

    def prompt_chars(
        self, columns: Mapping[str, Sequence[Any]], size: int, rows: Sequence[int] | None = None
    ) -> int:
        """Prompt characters of one-item calls for ``rows`` (default: the first ``size``), from
        the chunk's columns.

        Exactly ``sum(message_chars(baseline_messages(...)))`` over the rows, without building a
        dict per item: the JSON of ``{"index": i, "k": v, ...}`` is its keys' fixed characters,
        the digits of ``i`` and each value's JSON, and one ``json.dumps`` per column gives the
        sum of its values' JSON lengths (minus the list's brackets and ", " separators).
        """
        if rows is None or (isinstance(rows, range) and rows == range(size)):
            chars = size * self.fixed_chars + _digits_up_to(size)
            picked = {key: list(columns[key][:size]) for _, key in self.inputs}
        else:
            size = len(rows)
            chars = size * self.fixed_chars + sum(len(str(row)) for row in rows)
            picked = {key: [columns[key][row] for row in rows] for _, key in self.inputs}
        if not size:
            return 0
        for values in picked.values():
            text = json.dumps(values, ensure_ascii=False, default=str)
            chars += len(text) - 2 - 2 * (size - 1)
        return chars


def _digits_up_to(n: int) -> int:
    """Characters of ``str(i)`` summed over ``0 <= i < n``."""
    total, low, digits = 0, 0, 1
    while low < n:
        high = min(n, 10**digits)
        total += (high - low) * digits
        low, digits = high, digits + 1
    return total


def _step_count(step: ResolvedStep) -> _StepCount:
    from orchestrator.graph.cascade import answer_schema

    fields = list(step.skill.skill_cls.Input.model_fields)
    bound = {name: binding.key for name, binding in step.spec.inputs.items()}
    inputs = tuple((f, bound[f]) for f in fields if f in bound)
    empty = baseline_messages(step, 0, {})
    keys = ("index", *(name for name, _ in inputs))
    # the item's JSON without its values: '{' + '"index": ' + ', "k": ' per other key + '}'
    item_keys = 2 + sum(len(json.dumps(k)) + 2 for k in keys) + 2 * (len(keys) - 1)
    fixed = message_chars(empty) - len('{"index": 0}') + item_keys
    completion = len(json.dumps(example_answer(answer_schema(step, [0])), ensure_ascii=False))
    return _StepCount(step, inputs, fixed, completion, gate_of(step))


#: id(graph) -> (graph, its steps' counts); the graph is kept so an id is never reused under us
_PLANS: OrderedDict[int, tuple[ResolvedGraph, tuple[_StepCount, ...]]] = OrderedDict()


def _plan(graph: ResolvedGraph) -> tuple[_StepCount, ...]:
    found = _PLANS.get(id(graph))
    if found is not None and found[0] is graph:
        return found[1]
    counts = tuple(_step_count(s) for s in baseline_steps(graph))
    _PLANS[id(graph)] = (graph, counts)
    while len(_PLANS) > 256:
        _PLANS.popitem(last=False)
    return counts


def count_chunk(
    graph: ResolvedGraph, columns: Mapping[str, Sequence[Any]], size: int, ledger: Ledger
) -> None:
    """Add the baseline of one chunk's ``size`` graph rows (their ``columns``, the final state's:
    a gated step's gate column holds this run's outcome) to ``ledger``."""
    if size <= 0:
        return
    counts = _plan(graph)
    if not counts:
        return
    calls = prompt_chars = completion_chars = 0
    for count in counts:
        rows = count.rows(columns, size)
        calls += len(rows)
        prompt_chars += count.prompt_chars(columns, size, rows)
        completion_chars += len(rows) * count.completion_chars
    add_baseline_calls(
        ledger, calls=calls, prompt_chars=prompt_chars, completion_chars=completion_chars
    )


def add_baseline_calls(
    ledger: Ledger, *, calls: int, prompt_chars: int, completion_chars: int
) -> None:
    """Add ``calls`` baseline calls of that many characters in all to ``ledger``, priced.

    :func:`count_chunk` uses it for graph steps; work outside a graph that the big model would
    also do (e.g. a post-call summary for every call) adds itself the same way.
    """
    price = default_price()
    if not ledger.baseline_price_model:
        ledger.baseline_price_model = price.model
    elif ledger.baseline_price_model != price.model:
        price = price_of(ledger.baseline_price_model)
    prompt, completion = tokens_of(prompt_chars), tokens_of(completion_chars)
    ledger.baseline_llm_calls += calls
    ledger.baseline_prompt_tokens += prompt
    ledger.baseline_completion_tokens += completion
    ledger.baseline_cost_usd += price.cost_usd(prompt, completion)


# --- a typical answer -----------------------------------------------------------------------------


def example_answer(model: type[BaseModel]) -> dict[str, Any]:
    """A typical value of ``model``, to size an answer: a label of mean length from each closed
    set, one element per list (or its ``min_length``), half of a bounded string's ``max_length``
    (else 24 characters), ``0.75`` for floats."""
    return {
        name: _example(info.annotation, info.metadata) for name, info in model.model_fields.items()
    }


def _example(annotation: Any, metadata: Sequence[Any] = ()) -> Any:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Literal:
        strings = [a for a in args if isinstance(a, str)]
        if not strings:
            return args[0]
        mean = sum(map(len, strings)) / len(strings)
        return min(strings, key=lambda s: abs(len(s) - mean))
    if origin in (list, tuple, set, frozenset):
        size = max([getattr(m, "min_length", 0) or 0 for m in metadata] + [1])
        return [_example(args[0] if args else str)] * size
    if origin in (typing.Union, types.UnionType):
        return _example(next((a for a in args if a is not type(None)), str), metadata)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return example_answer(annotation)
    if annotation is bool:
        return False
    if annotation is int:
        return 0
    if annotation is float:
        return 0.75
    longest = [getattr(m, "max_length", None) for m in metadata]
    bound = next((n for n in longest if n), None)
    return "x" * (bound // 2 if bound else 24)


# --- measuring on a sample ------------------------------------------------------------------------

#: ``complete(messages, schema=..., budget=..., purpose=..., job_id=..., ledger=...)``
Complete = Callable[..., Awaitable[Any]]


@dataclass(frozen=True)
class Measurement:
    """Big-model calls made the baseline's way on a sample: what they really took.

    ``counted_*`` is the estimate for the same calls, so the two can be compared; ``scale_to``
    is the number of baseline calls of the job the per-call figures extrapolate to.
    """

    label: str
    calls: int
    failed: int
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    counted_prompt_tokens: int
    counted_completion_tokens: int
    scale_to: int
    provider: str = ""
    model: str = ""
    note: str = ""

    def per_call(self, value: float) -> float:
        return value / self.calls if self.calls else 0.0

    @property
    def extrapolated_prompt_tokens(self) -> int:
        return round(self.per_call(self.prompt_tokens) * self.scale_to)

    @property
    def extrapolated_completion_tokens(self) -> int:
        return round(self.per_call(self.completion_tokens) * self.scale_to)

    @property
    def extrapolated_seconds(self) -> float:
        """One call after the other, as measured (concurrent calls would divide it)."""
        return self.per_call(self.seconds) * self.scale_to

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "calls": self.calls,
            "failed": self.failed,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "seconds": round(self.seconds, 4),
            "counted_prompt_tokens": self.counted_prompt_tokens,
            "counted_completion_tokens": self.counted_completion_tokens,
            "scale_to": self.scale_to,
            "extrapolated_prompt_tokens": self.extrapolated_prompt_tokens,
            "extrapolated_completion_tokens": self.extrapolated_completion_tokens,
            "extrapolated_seconds": round(self.extrapolated_seconds, 2),
            "provider": self.provider,
            "model": self.model,
            "note": self.note,
        }


async def measure_baseline(
    graph: CompiledGraph,
    items: Sequence[Any],
    *,
    complete: Complete,
    budget: Budget,
    items_in_job: int,
    job_id: str | None = None,
    label: str | None = None,
) -> Measurement:
    """Send ``items`` (job items: dicts with ``id`` and the graph's inputs) to the big model the
    way the baseline counts them — one call per item per baseline step, the cascade's prompt and
    answer schema — one call at a time, and measure tokens and seconds.

    Steps that read another step's output are left out (their inputs would come from the big
    model's own earlier answers); the note says so. A call that fails counts in ``failed``.
    A gated step is asked only about the items its gate lets in (:func:`gate_of`). The per-call
    figures extrapolate to ``items_in_job`` items at the sample's calls per item.
    """
    from orchestrator.errors import RunError
    from orchestrator.graph.cascade import answer_schema
    from orchestrator.graph.intake import prepare_chunk
    from orchestrator.store.item import Item

    resolved = graph.resolved
    chunk = prepare_chunk([Item(i, v) for i, v in enumerate(items)], resolved.item_model)
    size = len(chunk.rows)
    counts = [
        c for c in _plan(resolved) if all(k.startswith(f"{INPUT_SOURCE}.") for _, k in c.inputs)
    ]
    skipped = len(_plan(resolved)) - len(counts)
    calls = failed = prompt = completion = 0
    seconds = 0.0
    provider = model = ""
    for count in counts:
        columns = [chunk.columns[key] for _, key in count.inputs]
        for row in count.rows(chunk.columns, size):
            values = {
                name: column[row] for (name, _), column in zip(count.inputs, columns, strict=True)
            }
            started = time.perf_counter()
            try:
                answer = await complete(
                    baseline_messages(count.step, row, values),
                    schema=answer_schema(count.step, [row]),
                    budget=budget,
                    purpose=f"baseline:{count.step.skill.key}",
                    job_id=job_id,
                    ledger=None,
                )
            except RunError:
                failed += 1
                continue
            seconds += time.perf_counter() - started
            calls += 1
            prompt += answer.prompt_tokens
            completion += answer.completion_tokens
            provider, model = answer.provider, answer.model
    counted = Ledger(job_id="measure", graph=resolved.spec.name)
    sent = 0  # calls asked for: one per item per step, a gated step's gated-in items only
    for count in counts:
        rows = count.rows(chunk.columns, size)
        sent += len(rows)
        add_baseline_calls(
            counted,
            calls=len(rows),
            prompt_chars=count.prompt_chars(chunk.columns, size, rows),
            completion_chars=len(rows) * count.completion_chars,
        )
    # the estimate for the calls that were answered (failed ones have no measurement)
    share = calls / sent if sent else 0.0
    note = f"{skipped} step(s) reading other steps' outputs not measured" if skipped else ""
    return Measurement(
        label=label or resolved.spec.name,
        calls=calls,
        failed=failed,
        prompt_tokens=prompt,
        completion_tokens=completion,
        seconds=seconds,
        counted_prompt_tokens=round(counted.baseline_prompt_tokens * share),
        counted_completion_tokens=round(counted.baseline_completion_tokens * share),
        # the sample's calls per item, over the job's items
        scale_to=round(items_in_job * sent / size) if size else 0,
        provider=provider,
        model=model,
        note=note,
    )
