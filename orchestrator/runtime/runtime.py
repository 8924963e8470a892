"""The runtime: runs compiled graphs over a job's items, chunk by chunk, on an executor.

Items stream in, are cut into chunks (``chunk_size`` items: one batch per step per chunk), and a
bounded number of chunks run at once, so a job of any size holds only a few chunks in memory.
Results come back in input order. Workers start once per runtime and stay warm across jobs.

Example::

    with Runtime(executor="local") as runtime:
        result = runtime.run("graphs/outbound_call_turn.yaml", [{"id": 1, "utterance": "hi"}])
        result.results[0].outputs["intent"]
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import itertools
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from orchestrator.accounting.ledger import Ledger
from orchestrator.accounting.result import HeldForReview, ItemError, ItemResult, JobResult
from orchestrator.config import Settings
from orchestrator.errors import OrchestratorError, RunError
from orchestrator.executors import Executor, make_executor
from orchestrator.graph.aggregate import Scorecard, collect_chunk, failed_chunk
from orchestrator.graph.cascade import Escalator
from orchestrator.graph.compiler import CompiledGraph, RunContext, compile_graph
from orchestrator.graph.intake import Chunk, prepare_chunk
from orchestrator.graph.spec import GraphSpec, load_graph
from orchestrator.llm.gateway import Budget
from orchestrator.llm.privacy import guarded_complete
from orchestrator.registry.registry import Registry
from orchestrator.store.item import Item
from orchestrator.telemetry.logs import get_logger

if TYPE_CHECKING:
    from orchestrator.llm.gateway import LLMGateway
    from orchestrator.planning.planner import Plan, Planner
    from orchestrator.review.desk import ReviewDesk
    from orchestrator.review.queue import Ticket
    from orchestrator.runtime.escalation_routes import EscalationRoutes
    from orchestrator.store.examples import ExampleStore
    from orchestrator.store.measurements import MeasurementStore, ProviderMeasurement
    from orchestrator.store.sqlite_file import Run

__all__ = ["Job", "Runtime"]

log = get_logger(__name__)

GraphLike = CompiledGraph | GraphSpec | str | Path


class Runtime:
    """Compiles graphs against a registry and runs jobs on one executor. Close it when done."""

    def __init__(
        self,
        *,
        registry: Registry | None = None,
        executor: Executor | str | None = None,
        settings: Settings | None = None,
        planner: Planner | None = None,
        gateway: LLMGateway | None = None,
    ) -> None:
        self.settings = settings or Settings()
        self._gateway = gateway
        self._examples: ExampleStore | None = None
        self._measurements: MeasurementStore | None = None
        self._reviews: ReviewDesk | None = None
        self._registry = registry
        if executor is None or isinstance(executor, str):
            executor = make_executor(
                executor or self.settings.executor,
                address=self.settings.ray_address,
                num_cpus=self.settings.num_cpus,
                max_restarts=self.settings.actor_max_restarts,
                settings=self.settings,
            )
        self.executor = executor
        self._planner = planner
        self._stack = contextlib.ExitStack()  # things the runtime started (the embedded model)
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def registry(self) -> Registry:
        """The registry graphs are checked against (the skills folder, loaded on first use)."""
        if self._registry is None:
            self._registry = Registry.from_folder(self.settings.skills_dir)
        return self._registry

    def reload_registry(self) -> Registry:
        """Re-read the skills folder (aliases moved by promote/rollback); graphs compiled from now
        on resolve against it. Workers of older versions stay up for jobs still using them."""
        self._registry = Registry.from_folder(self.settings.skills_dir)
        return self._registry

    def compile(self, graph: GraphLike) -> CompiledGraph:
        """Load and validate a graph (path, spec or compiled graph). Starts no worker."""
        if isinstance(graph, CompiledGraph):
            return graph
        spec = graph if isinstance(graph, GraphSpec) else load_graph(graph)
        return compile_graph(spec, self.registry)

    @property
    def gateway(self) -> LLMGateway:
        """The big model: configured providers, else the embedded model (started on first use).

        Every call is audited in the store (``settings.store_location``).
        """
        if self._gateway is None:
            from orchestrator.llm.audit import AuditLog
            from orchestrator.llm.embedded import default_gateway

            audit = AuditLog(self.settings.store_location)
            self._stack.callback(audit.close)
            self._gateway = default_gateway(stack=self._stack, audit=audit)
        return self._gateway

    @property
    def examples(self) -> ExampleStore:
        """Labelled examples learned from escalations (for distillation), in the store."""
        if self._examples is None:
            from orchestrator.store.examples import ExampleStore

            self._examples = ExampleStore(self.settings.store_location)
            self._stack.callback(self._examples.close)
        return self._examples

    @property
    def measurements(self) -> MeasurementStore:
        """What escalating each skill to each provider is worth (``orchestrator providers eval``)."""
        if self._measurements is None:
            from orchestrator.store.measurements import MeasurementStore

            self._measurements = MeasurementStore(self.settings.store_location)
            self._stack.callback(self._measurements.close)
        return self._measurements

    def escalation_routes(self, graph: GraphLike) -> EscalationRoutes:
        """Where each escalating step of ``graph`` may send its unsure items: the gateway's
        providers minus those measured worse than the small model (all of them, with
        ``settings.force_escalation``). Starts the embedded model when no provider is configured."""
        from orchestrator.runtime.escalation_routes import escalation_routes

        return escalation_routes(
            self.compile(graph).resolved,
            self.gateway.providers,
            self.measurements,
            force=self.settings.force_escalation,
            reviews=self.reviews.queue,
        )

    def provider_measurements(
        self, limit: int = 100, skill: str | None = None
    ) -> list[ProviderMeasurement]:
        """The newest measurements (``name`` or ``name@version``), newest first: bake-offs, and
        one row per provider of what reviewers' answers say (source ``review``)."""
        found = [*self.measurements.recent(limit, skill), *self.reviews.queue.measured(skill)]
        return sorted(found, key=lambda m: m.created_at, reverse=True)[:limit]

    @property
    def reviews(self) -> ReviewDesk:
        """The review desk: items held for a person, and their answers (``orchestrator review``)."""
        if self._reviews is None:
            from orchestrator.review.desk import ReviewDesk

            self._reviews = ReviewDesk(
                self.settings, compile_graph=self.compile, examples=self.examples
            )
            self._stack.callback(self._reviews.close)
        return self._reviews

    def answer_review(
        self,
        ticket: int,
        answer: dict[str, Any],
        *,
        reviewer: str,
        also: Callable[[Run, Ticket, dict[str, Any]], object] | None = None,
    ) -> Ticket:
        """Answer a review ticket: the held item finishes with ``answer`` (sync wrapper of
        :meth:`ReviewDesk.answer`; ``also`` joins the transaction that closes the ticket)."""
        loop = self._sync_loop()
        answering = self.reviews.answer(ticket, answer, reviewer=reviewer, also=also)
        return loop.run_until_complete(answering)

    @property
    def planner(self) -> Planner:
        """The planner over :attr:`gateway`, with the plan cache in the store."""
        if self._planner is None:
            from orchestrator.planning.cache import PlanCache
            from orchestrator.planning.planner import Planner

            cache = PlanCache(self.settings.store_location)
            self._stack.callback(cache.close)
            self._planner = Planner(
                self.gateway, self.registry, cache=cache, skills_dir=self.settings.skills_dir
            )
        return self._planner

    def plan(
        self,
        task: str,
        fields: dict[str, Any],
        *,
        ledger: Ledger | None = None,
        sample: Sequence[Mapping[str, Any]] | None = None,
    ) -> Plan:
        """A validated plan for ``task``, dry-run on ``sample`` items (made up from the fields
        when None); from the plan cache when this workflow was planned."""
        planned = self.planner.plan(task, fields, ledger=ledger, sample=sample)
        return self._sync_loop().run_until_complete(planned)

    def submit_task(
        self,
        task: str,
        items: Iterable[Any],
        *,
        fields: dict[str, str],
        job_id: str | None = None,
        on_progress: Callable[[int], None] | None = None,
    ) -> Job:
        """A job that names a task instead of a graph: planned once per workflow, then cached.

        The planner's big-model calls (none on a cache hit) are in the job's ledger.
        """
        job_id = job_id or uuid.uuid4().hex[:16]
        ledger = Ledger(job_id=job_id, graph="planned")
        # the job's own first items are the dry run's samples (they stay in this process)
        sample = (
            [i for i in items[:20] if isinstance(i, Mapping)] if isinstance(items, list) else None
        )
        plan = self.plan(task, fields, ledger=ledger, sample=sample or None)
        graph = self.compile(plan.spec)
        ledger.graph = graph.name
        return Job(self, graph, items, job_id=job_id, on_progress=on_progress, ledger=ledger)

    def submit(
        self,
        graph: GraphLike,
        items: Iterable[Any],
        *,
        job_id: str | None = None,
        on_progress: Callable[[int], None] | None = None,
        budget: Budget | None = None,
        checkpoints: Any = None,
    ) -> Job:
        """A job over ``items`` (dicts, or :class:`~orchestrator.store.item.Item`); iterate it to run it.

        The graph is compiled here, so a bad graph raises before any worker starts. ``budget``:
        the big-model allowance to draw from (share one across the parts of a larger job); default
        a fresh one from the settings. ``checkpoints``: a LangGraph checkpointer; each chunk then
        runs as its own thread (:mod:`orchestrator.store.checkpoints`) and resumes from it.
        """
        compiled = self.compile(graph)
        return Job(
            self,
            compiled,
            items,
            job_id=job_id,
            on_progress=on_progress,
            budget=budget,
            checkpoints=checkpoints,
        )

    def new_budget(self) -> Budget:
        """A job's big-model allowance from the settings (``llm_max_calls``/``llm_max_tokens``)."""
        return Budget(
            max_calls=self.settings.llm_max_calls, max_tokens=self.settings.llm_max_tokens
        )

    def run(
        self, graph: GraphLike, items: Iterable[Any], *, job_id: str | None = None
    ) -> JobResult:
        """Run a whole job and return every result (for jobs that fit in memory)."""
        job = self.submit(graph, items, job_id=job_id)
        results = list(job)
        return job.result(results)

    async def arun(
        self, graph: GraphLike, items: Iterable[Any], *, job_id: str | None = None
    ) -> JobResult:
        """:meth:`run` for callers already inside an event loop."""
        job = self.submit(graph, items, job_id=job_id)
        results = [r async for chunk in job.achunks() for r in chunk]
        return job.result(results)

    def close(self) -> None:
        """Stop the executor's workers and this runtime's event loop."""
        loop = self._sync_loop()
        try:
            for gateway in {id(g): g for g in self._gateways()}.values():
                loop.run_until_complete(gateway.aclose())
            loop.run_until_complete(self.executor.close())
        finally:
            loop.close()
            self._loop = None
            self._stack.close()

    def _gateways(self) -> list[LLMGateway]:
        found = [self._gateway] if self._gateway is not None else []
        return found + ([self._planner.gateway] if self._planner is not None else [])

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _sync_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None or self._loop.is_closed():
            self._loop = asyncio.new_event_loop()
        return self._loop


class Job:
    """One job in flight. Iterate it (sync or async) for results in input order; the ledger and
    :meth:`summary` fill in as chunks finish."""

    def __init__(
        self,
        runtime: Runtime,
        graph: CompiledGraph,
        items: Iterable[Any],
        *,
        job_id: str | None = None,
        on_progress: Callable[[int], None] | None = None,
        ledger: Ledger | None = None,
        budget: Budget | None = None,
        checkpoints: Any = None,
    ) -> None:
        self.id = job_id or uuid.uuid4().hex[:16]
        self._checkpoints = checkpoints
        self._checkpointed: Any = None  # the graph compiled with them, on first use
        self.graph = graph
        self.runtime = runtime
        self.ledger = ledger or Ledger(job_id=self.id, graph=graph.name)
        self.score = Scorecard(graph.spec.evaluate or _default_evaluation(graph.spec))
        self.startup_s = 0.0
        self._escalator: Escalator | None = None
        #: where each escalating step may send its unsure items (None: the job does not escalate)
        self.routes: EscalationRoutes | None = None
        if runtime.settings.escalate:
            self._escalator = self._make_escalator(budget or runtime.new_budget())
        self._items = items
        self.on_progress = on_progress
        self._consumed = False

    def _make_escalator(self, budget: Budget) -> Escalator:
        """The job's line to the big model, routed by the stored measurements: steps whose every
        provider was measured worse than the small model are held, others lose those providers."""
        runtime = self.runtime
        gateway, policy = runtime.gateway, runtime.settings.privacy
        self.routes = runtime.escalation_routes(self.graph)
        if (warning := self.routes.warning()) is not None:  # the CLI prints it as a warning
            log.info("escalation_unmeasured", detail=warning)
        by_name = {p.name: p for p in gateway.providers}
        return Escalator(
            gateway=gateway,
            ledger=self.ledger,
            job_id=self.id,
            budget=budget,
            examples=runtime.examples,
            # every escalation goes through the PII guard (remote providers get redacted text)
            complete=functools.partial(guarded_complete, gateway, policy=policy),
            step_complete={
                step: functools.partial(
                    guarded_complete, gateway.only([by_name[n] for n in names]), policy=policy
                )
                for step, names in self.routes.restricted.items()
            },
            held=self.routes.held,
        )

    def __iter__(self) -> Iterator[ItemResult]:
        loop = self.runtime._sync_loop()
        chunks = self.achunks()
        while True:
            try:
                results = loop.run_until_complete(anext(chunks))
            except StopAsyncIteration:
                return
            yield from results

    async def achunks(self) -> AsyncIterator[list[ItemResult]]:
        """The job's results, one list per chunk, in input order."""
        if self._consumed:
            raise RunError(f"job {self.id} was already run; submit a new job")
        self._consumed = True
        settings = self.runtime.settings
        with structlog.contextvars.bound_contextvars(job_id=self.id, graph=self.graph.name):
            started = time.perf_counter()
            await self.runtime.executor.start(self.graph.resolved.skills)
            self.startup_s = time.perf_counter() - started
            log.info("job_started", executor=self.runtime.executor.name, startup_s=self.startup_s)
            started = time.perf_counter()
            pending: deque[asyncio.Task[list[ItemResult]]] = deque()
            for raw in _chunked(self._items, settings.chunk_size):
                pending.append(asyncio.ensure_future(self._run_chunk(raw)))
                if len(pending) >= settings.max_inflight_chunks:
                    yield await self._finish(pending.popleft(), started)
            while pending:
                yield await self._finish(pending.popleft(), started)
            log.info("job_finished", **self.summary())

    def result(self, results: list[ItemResult]) -> JobResult:
        """The finished job as a :class:`JobResult` (pass the results you collected)."""
        return JobResult(
            job_id=self.id,
            graph=self.graph.name,
            results=results,
            ledger=self.ledger,
            accuracy=self.score.accuracy,
            labelled=self.score.labelled,
            kept_accuracy=self.score.kept_accuracy,
            startup_s=self.startup_s,
        )

    def summary(self) -> dict[str, Any]:
        """The one-line JSON summary (items, items/s, escalations, big-model calls, accuracy)."""
        return self.result([]).summary()

    async def _finish(
        self, task: asyncio.Task[list[ItemResult]], started: float
    ) -> list[ItemResult]:
        results = await task
        self.ledger.wall_s = time.perf_counter() - started
        if self.on_progress is not None:
            self.on_progress(len(results))
        return results

    async def _run_chunk(self, raw: list[Item]) -> list[ItemResult]:
        resolved = self.graph.resolved
        chunk = prepare_chunk(raw, resolved.item_model)
        try:
            state = await self._invoke(chunk, raw[0].index)
        except OrchestratorError as exc:
            log.error("chunk_failed", error=str(exc), items=len(raw))
            return failed_chunk(chunk, ItemError(exc.code, str(exc)), self.ledger)
        except Exception as exc:  # a bug must not lose the job's other chunks
            log.exception("chunk_crashed", items=len(raw))
            return failed_chunk(chunk, ItemError("internal_error", repr(exc)), self.ledger)
        results = collect_chunk(resolved, chunk, state, self.ledger, self.score)
        if state.get("held"):
            try:
                await self._file_reviews(raw, chunk, state, results)
            except Exception as exc:  # the queue is unreachable: say so on the held items
                log.exception("review_filing_failed", items=len(state["held"]))
                error = ItemError("review_unavailable", f"could not file for review: {exc!r}")
                for position, result in enumerate(results):
                    if result.review is not None and result.review.ticket is None:
                        results[position] = ItemResult(result.id, error=error)
                        self.ledger.held_for_review -= 1
                        self.ledger.succeeded -= 1
                        self.ledger.failed += 1
        return results

    async def _file_reviews(
        self, raw: list[Item], chunk: Chunk, state: dict[str, Any], results: list[ItemResult]
    ) -> None:
        """File the chunk's held items with the review desk; their results get the ticket."""
        from orchestrator.review.desk import HeldItem

        columns, held = state["columns"], sorted(state["held"].items())
        items = [
            HeldItem(
                item_idx=raw[chunk.rows[row]].index,
                item_id=chunk.ids[chunk.rows[row]],
                step=step,
                columns={key: [column[row]] for key, column in columns.items()},
            )
            for row, step in held
        ]
        tickets = await self.runtime.reviews.hold(self.id, self.graph, items)
        for (row, step), ticket in zip(held, tickets, strict=True):
            position = chunk.rows[row]
            results[position] = dataclasses.replace(
                results[position], review=HeldForReview(step, ticket)
            )

    async def _invoke(self, chunk: Chunk, first_index: int) -> dict[str, Any]:
        if not chunk.rows:
            return {"columns": {}, "errors": {}, "stats": []}
        state = {"size": len(chunk.rows), "columns": chunk.columns, "errors": {}, "stats": []}
        config: dict[str, Any] = {"recursion_limit": len(self.graph.resolved.steps) + 10}
        context = RunContext(executor=self.runtime.executor, escalator=self._escalator)
        if self._checkpoints is None:
            out: dict[str, Any] = await self.graph.langgraph.ainvoke(state, config, context=context)
            return out
        from orchestrator.store.checkpoints import chunk_thread

        if self._checkpointed is None:
            self._checkpointed = self.graph.with_checkpointer(self._checkpoints)
        config["configurable"] = {"thread_id": chunk_thread(self.id, first_index)}
        saved = await self._checkpointed.aget_state(config)
        start: dict[str, Any] | None = state
        if saved.values:
            # The chunk ran before a crash: continue from its checkpoint (``None``). LangGraph
            # applies the writes of steps that finished after the last checkpoint and runs only
            # what is left; a run that had finished just returns its final state. (The snapshot's
            # own ``values`` lack those pending writes: never use them as the result.)
            log.info("chunk_resumed", first_item=first_index, next=list(saved.next))
            start = None
        # "sync": a step's checkpoint is on disk before the next step starts (a crash then
        # loses at most the step in progress)
        out = await self._checkpointed.ainvoke(start, config, context=context, durability="sync")
        return out


def _chunked(items: Iterable[Any], size: int) -> Iterator[list[Item]]:
    counter = itertools.count()
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield [item if isinstance(item, Item) else Item(next(counter), item) for item in batch]


def _default_evaluation(spec: GraphSpec) -> Any:
    from orchestrator.graph.spec import Evaluation

    return Evaluation(output=next(iter(spec.outputs)))
