"""Human review: the items a step is least sure of wait for a person, then finish.

A step with ``escalation.review_below`` holds the rows its skill answered with less confidence
(compiler): the steps that read from it skip those rows, everything else in the chunk finishes.
Then, per held item, the :class:`ReviewDesk`

1. files a ticket in the :class:`~orchestrator.review.queue.ReviewQueue` (inputs, the cascade's
   proposed answer, confidence) — idempotent per (job, item, step); the inputs go through the
   PII guard unless ``Settings.review_inputs`` is ``raw`` (docs/operators.md);
2. starts a LangGraph thread for the item — ``ask`` (``interrupt()`` with the question) then
   ``finish`` (the held step's dependent steps, on that one item) — which runs up to the
   interrupt and pauses there, checkpointed in SQLite (``langgraph-checkpoint-sqlite``), so any
   process can resume it later.

When a person answers (``orchestrator review answer``, ``POST /v1/reviews/{id}/answer``) the
answer is checked against the skill's output contract (every output field, closed label sets),
the ticket is claimed (of two concurrent answers only one resumes the item), the thread resumes
with ``Command(resume=...)`` and finishes the item; the result is stored with the ticket (with the
job store's copy, in the same transaction, when the caller passes ``also``), and the answer
becomes a labelled example (source ``human:<reviewer>``, inputs redacted) for the next
distillation round.

When a provider had answered the held item, the ticket carries its answer and the small tiers'
(the one it replaced), and the person's answer scores both: who had the person's labels is kept
with the ticket, and the queue's tallies (:meth:`~orchestrator.review.queue.ReviewQueue.measured`)
measure the provider for the skill's escalation, beside the bake-off
(:mod:`orchestrator.runtime.escalation_routes`).

Dependent steps run on an in-process executor: one item costs microseconds of
small-model work, not worth a trip to the cluster. Their calls are not added to the job's ledger.

Example::

    desk = ReviewDesk(settings, compile_graph=runtime.compile, examples=runtime.examples)
    ticket = desk.queue.list()[0]
    done = await desk.answer(ticket.id, {"intent": "balance"}, reviewer="ana")
    done.result  # the finished item's result line
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

import yaml

from orchestrator.accounting.ledger import Ledger
from orchestrator.config import Settings
from orchestrator.errors import ReviewError
from orchestrator.executors.local import LocalExecutor
from orchestrator.graph.aggregate import Scorecard, collect_chunk
from orchestrator.graph.cascade import redacted_inputs
from orchestrator.graph.compiler import CompiledGraph, RunContext, step_nodes
from orchestrator.graph.intake import Chunk
from orchestrator.graph.spec import GraphSpec
from orchestrator.graph.tiers_key import step_fingerprint
from orchestrator.graph.validation import ResolvedStep
from orchestrator.review.queue import ReviewQueue, Ticket, TicketDraft, review_thread
from orchestrator.store.examples import Example, ExampleStore
from orchestrator.store.sqlite_file import Run
from orchestrator.telemetry.logs import get_logger

__all__ = ["HeldItem", "ReviewDesk"]

log = get_logger(__name__)


@dataclass(frozen=True)
class HeldItem:
    """One held row of a finished chunk, as the runtime hands it over."""

    item_idx: int
    item_id: Any
    step: str
    #: every column of the chunk state, sliced to this row (one value each)
    columns: dict[str, list[Any]]


class _ThreadState(TypedDict, total=False):
    item_id: Any
    step: str
    columns: dict[str, list[Any]]
    decision: dict[str, Any]
    result: dict[str, Any]
    held: dict[str, Any]


class ReviewDesk:
    """Files held items, and finishes them when a person answers."""

    def __init__(
        self,
        settings: Settings,
        *,
        compile_graph: Callable[[GraphSpec], CompiledGraph],
        examples: ExampleStore | None = None,
    ) -> None:
        self.queue = ReviewQueue(settings.store_location)
        self._settings = settings
        self._compile = compile_graph
        self._examples = examples
        self._executor = LocalExecutor()

    async def hold(self, job_id: str, graph: CompiledGraph, items: Sequence[HeldItem]) -> list[int]:
        """File each held item and pause its thread at the question; returns the ticket ids."""
        tickets: list[int] = []
        spec_yaml = graph.spec.to_yaml()
        async with self._threads(graph) as threads:
            for item in items:
                step = _step(graph, item.step)
                ticket = self.queue.find(job_id, item.item_idx, item.step)
                if ticket is None:
                    # the paused thread first, then the ticket: a crash in between leaves no
                    # ticket without a thread (the chunk runs again and pauses the same thread)
                    start: _ThreadState = {
                        "item_id": item.item_id,
                        "step": item.step,
                        "columns": item.columns,
                    }
                    thread = review_thread(job_id, item.item_idx, item.step)
                    await threads.ainvoke(start, {"configurable": {"thread_id": thread}})
                    draft = _draft(
                        job_id, graph, spec_yaml, step, item, self._settings.review_inputs
                    )
                    ticket, _ = self.queue.file(draft)
                tickets.append(ticket.id)
        log.info("review_filed", job_id=job_id, tickets=len(tickets))
        return tickets

    async def answer(
        self,
        ticket_id: int,
        answer: dict[str, Any],
        *,
        reviewer: str,
        also: Callable[[Run, Ticket, dict[str, Any]], object] | None = None,
    ) -> Ticket:
        """Check the answer, resume the item's thread to finish it, keep the example.

        The ticket is claimed first, so of two concurrent answers only one resumes the item (the
        other gets ``review_already_answered``). ``also(run, ticket, result)`` adds statements to
        the transaction that closes the ticket (the job store's copy of the result). The
        queue's calls run on worker threads: this runs on the API's loop, with real-time turns."""
        queue = self.queue
        ticket = await asyncio.to_thread(queue.get, ticket_id)
        if ticket is None:
            raise ReviewError(f"no review ticket {ticket_id}", code="review_not_found")
        if ticket.status != "waiting" or not await asyncio.to_thread(
            queue.claim, ticket_id, reviewer
        ):
            raise ReviewError(
                f"review ticket {ticket_id} was already answered (or is being answered) by "
                f"{ticket.reviewer or 'another reviewer'}",
                code="review_already_answered",
            )
        try:
            graph, checked, out = await self._resume(ticket, answer, reviewer)
            result: dict[str, Any] = out["result"]
            paired = _paired(_step(graph, ticket.step), ticket, checked)
            record = (lambda run: also(run, ticket, result)) if also is not None else None
            closed = await asyncio.to_thread(
                functools.partial(
                    queue.close_ticket,
                    ticket_id,
                    answer=checked,
                    reviewer=reviewer,
                    result=result,
                    paired=paired,
                    also=record,
                )
            )
        except BaseException:
            queue.unclaim(ticket_id)  # also when cancelled: not awaited, so it always runs
            raise
        if not closed:  # pragma: no cover - the claim keeps other answers out
            raise ReviewError(
                f"review ticket {ticket_id} was answered meanwhile", code="review_already_answered"
            )
        if self._examples is not None:
            await asyncio.to_thread(self._examples.add, [_example(ticket, checked, reviewer)])
        if out.get("held"):  # a later step holds the item in turn: a new ticket for it
            held = HeldItem(ticket.item_idx, ticket.item_id, **out["held"])
            await self.hold(ticket.job_id, graph, [held])
        log.info("review_answered", ticket=ticket_id, reviewer=reviewer, step=ticket.step)
        done = await asyncio.to_thread(queue.get, ticket_id)
        assert done is not None
        return done

    async def _resume(
        self, ticket: Ticket, answer: dict[str, Any], reviewer: str
    ) -> tuple[CompiledGraph, dict[str, Any], dict[str, Any]]:
        """Check the answer and resume the item's paused thread with it: the graph, the checked
        answer and the thread's output."""
        from langgraph.types import Command

        graph = self._compile(GraphSpec.from_dict(yaml.safe_load(ticket.spec_yaml)))
        checked = check_answer(_step(graph, ticket.step), answer)
        await self._executor.start(graph.resolved.skills)
        decision = {"answer": checked, "reviewer": reviewer}
        async with self._threads(graph) as threads:
            context = RunContext(executor=self._executor)
            out = await threads.ainvoke(Command(resume=decision), _config(ticket), context=context)
        return graph, checked, out

    async def forget_job(self, job_id: str) -> int:
        """Delete one job's tickets and their paused threads; how many tickets."""
        tickets = await asyncio.to_thread(self.queue.delete_job, job_id)
        if tickets:
            from orchestrator.store.checkpoints import open_checkpointer

            async with open_checkpointer(self._settings, "review_checkpoints.db") as saver:
                for ticket in tickets:
                    await saver.adelete_thread(ticket.thread_id)
        return len(tickets)

    def close(self) -> None:
        self.queue.close()

    @contextlib.asynccontextmanager
    async def _threads(self, graph: CompiledGraph) -> AsyncIterator[Any]:
        """The review graph for ``graph`` over the SQLite checkpointer (one connection per use:
        the desk is called from the job runner's loop and the API's loop alike)."""
        from orchestrator.store.checkpoints import open_checkpointer

        async with open_checkpointer(self._settings, "review_checkpoints.db") as saver:
            yield _review_graph(graph, saver)


def check_answer(step: ResolvedStep, answer: dict[str, Any]) -> dict[str, Any]:
    """The answer as the skill's outputs, or ReviewError naming each field to fix."""
    from pydantic import ValidationError

    skill = step.skill.skill_cls
    fields = list(skill.Output.model_fields)
    labels = skill.output_labels()
    problems = [
        f"unknown field {k!r} (answer {', '.join(fields)})" for k in answer if k not in fields
    ]
    problems += [f"missing field {f!r}" for f in fields if f not in answer]
    for name, allowed in labels.items():
        if name in answer and answer[name] not in allowed:
            near = [a for a in allowed if str(answer[name]).lower() in str(a).lower()][:5]
            hint = f"; close: {', '.join(map(str, near))}" if near else ""
            problems.append(f"{name} {answer[name]!r} is not one of the skill's labels{hint}")
    if not problems:
        try:
            checked: dict[str, Any] = skill.Output.model_validate(answer).model_dump()
            return checked
        except ValidationError as exc:
            problems += [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
    raise ReviewError(
        f"answer for step {step.id!r} ({step.skill.key}) rejected: " + "; ".join(problems)
    )


def _review_graph(graph: CompiledGraph, checkpointer: Any) -> Any:
    """``ask`` (interrupt: wait for a person) -> ``finish`` (the held step's dependents)."""
    from langgraph.graph import END, START, StateGraph
    from langgraph.runtime import Runtime
    from langgraph.types import interrupt

    nodes = step_nodes(graph)

    async def ask(state: _ThreadState) -> dict[str, Any]:
        decision = interrupt({"step": state["step"], "item_id": state["item_id"]})
        return {"decision": decision}

    async def finish(state: _ThreadState, runtime: Runtime[RunContext]) -> dict[str, Any]:
        step_id, decision = state["step"], state["decision"]
        columns = dict(state["columns"])
        for name, value in decision["answer"].items():
            columns[f"{step_id}.{name}"] = [value]
        columns[f"{step_id}.confidence"] = [1.0]
        columns[f"{step_id}.escalate"] = [False]
        columns[f"{step_id}.answered_by"] = [f"human:{decision['reviewer']}"]
        columns[f"{step_id}.degraded"] = [False]
        columns[f"{step_id}.escalation"] = [None]
        run: dict[str, Any] = {"size": 1, "columns": columns, "errors": {}, "held": {}}
        stats: list[Any] = []
        for step in graph.resolved.steps:
            if step_id not in step.ancestors or run["errors"] or run["held"]:
                continue
            update = await nodes[step.id](run, runtime)
            run["columns"] = {**run["columns"], **update["columns"]}
            run["errors"] = {**update["errors"], **run["errors"]}
            run["held"] = dict(update.get("held") or {})
            stats += update["stats"]
        chunk = Chunk(ids=[state["item_id"]], labels=[None], rows=[0], columns={})
        scratch = Ledger(job_id="review", graph=graph.name)
        item = collect_chunk(
            graph.resolved, chunk, {**run, "stats": stats}, scratch, Scorecard(None)
        )
        out: dict[str, Any] = {"result": {**item[0].to_dict(), "review": _closed(decision)}}
        if run["held"]:
            out["held"] = {"step": run["held"][0], "columns": run["columns"]}
            out["result"]["review"] = {**out["result"]["review"], "next": run["held"][0]}
        return out

    builder = StateGraph(_ThreadState, context_schema=RunContext)
    builder.add_node("ask", ask)
    builder.add_node("finish", finish)
    builder.add_edge(START, "ask")
    builder.add_edge("ask", "finish")
    builder.add_edge("finish", END)
    return builder.compile(checkpointer=checkpointer, name=f"review:{graph.name}")


def _closed(decision: dict[str, Any]) -> dict[str, Any]:
    return {"status": "answered", "reviewer": decision["reviewer"]}


def _step(graph: CompiledGraph, step_id: str) -> ResolvedStep:
    for step in graph.resolved.steps:
        if step.id == step_id:
            return step
    raise ReviewError(f"graph {graph.name!r} has no step {step_id!r} any more")


def _draft(
    job_id: str,
    graph: CompiledGraph,
    spec_yaml: str,
    step: ResolvedStep,
    item: HeldItem,
    review_inputs: str = "redacted",
) -> TicketDraft:
    prefix = f"{step.id}."
    inputs = {name: item.columns[b.key][0] for name, b in step.spec.inputs.items()}
    if review_inputs == "redacted":
        inputs = redacted_inputs(inputs)
    proposed = {
        name: item.columns[prefix + name][0] for name in step.skill.skill_cls.Output.model_fields
    }
    # (a chunk state saved before steps had this column lacks it)
    escalation = (item.columns.get(prefix + "escalation") or [None])[0]
    return TicketDraft(
        job_id=job_id,
        item_idx=item.item_idx,
        item_id=item.item_id,
        graph=graph.name,
        spec_yaml=spec_yaml,
        step=step.id,
        skill=step.skill.key,
        inputs=inputs,
        proposed=proposed,
        confidence=float(item.columns[prefix + "confidence"][0]),
        answered_by=str(item.columns[prefix + "answered_by"][0]),
        small=escalation["small"] if escalation else None,
        model=escalation["model"] if escalation else None,
        fingerprint=step_fingerprint(step) if escalation else None,
    )


def _paired(step: ResolvedStep, ticket: Ticket, answer: dict[str, Any]) -> tuple[bool, bool] | None:
    """(small tiers right, provider right) by a person's checked answer, on the skill's labelled
    outputs; None when no provider answered the item, or the skill has no closed label set
    (free text is not right or wrong by equality)."""
    labels = list(step.skill.skill_cls.output_labels())
    if not ticket.paired or not labels or ticket.small is None:
        return None

    def right(given: dict[str, Any]) -> bool:
        return all(given.get(name) == answer[name] for name in labels)

    return right(ticket.small), right(ticket.proposed)


def _config(ticket: Ticket) -> dict[str, Any]:
    return {"configurable": {"thread_id": ticket.thread_id}}


def _example(ticket: Ticket, answer: dict[str, Any], reviewer: str) -> Example:
    """The answer as a labelled example; its inputs redacted (already, unless tickets are raw)."""
    return Example(
        skill=ticket.skill,
        inputs=redacted_inputs(ticket.inputs),
        outputs=answer,
        source=f"human:{reviewer}",
        small_confidence=ticket.confidence,
        job_id=ticket.job_id,
    )
