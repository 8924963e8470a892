"""The job store: jobs, their items, per-chunk results and chunk runs, in SQLite or Postgres.

A job's items are written once when it is submitted and read back chunk by chunk while it runs,
so a job of any size never sits in memory. A chunk's results, its completion record and the job's
counters and ledger commit in **one transaction** keyed by ``(job_id, chunk_index)``: after a
crash, a chunk is either wholly committed (and never run again) or not at all (and run again), so
every item ends with exactly one result. ``chunk_runs`` records every start of a chunk, which is
how tests (and operators) see that finished chunks were not re-run, and how :meth:`Store.recover`
spots a chunk that crashes the service every time (a crash loop).

Replicas share the store: a running job or an upload in progress is held under a lease
(:mod:`orchestrator.store.leases`), taken over only once it expired (:mod:`.recovery`). The tables
come from versioned migrations (:mod:`orchestrator.store.jobs_schema`).

Example::

    >>> import tempfile, pathlib
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     store = Store(pathlib.Path(tmp) / "jobs.db")
    ...     job, created = store.create_job(JobDraft(owner="me", graph="g", chunk_size=2))
    ...     store.add_items(job.id, [Item(0, {"id": 1})])
    ...     store.open_job(job.id, items_total=1).status
    ...     store.close()
    'pending'

Storage: stdlib ``sqlite3`` in WAL mode (readers never block the writer), one connection per
thread, write transactions taken with ``BEGIN IMMEDIATE`` so concurrent writers queue on the busy
timeout instead of failing. ``synchronous=NORMAL``: a committed chunk survives the process being
killed (SIGKILL); a power cut may lose the last commits, which then simply run again. The default
file is ``<data dir>/orchestrator.db``, next to the plan cache and the audit log. A
``postgresql://`` URL gives the same store on Postgres (:mod:`orchestrator.store.postgres`), for
services whose replicas share one database.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol

from orchestrator.accounting.ledger import Ledger
from orchestrator.accounting.result import ItemResult
from orchestrator.errors import LeaseLost
from orchestrator.store.item import Item
from orchestrator.store.jobs_schema import JOBS_SCHEMA
from orchestrator.store.leases import Lease
from orchestrator.store.migrations import Dialect, Run, migrate
from orchestrator.store.private_file import create_private
from orchestrator.store.recovery import Recovery, recover_in

__all__ = [
    "ACTIVE_STATUSES",
    "TERMINAL_STATUSES",
    "ChunkOutcome",
    "JobDraft",
    "JobRecord",
    "Recovery",
    "Store",
    "ledger_from_raw",
    "ledger_to_raw",
    "replace_result_in",
    "JOBS_SCHEMA",
]

#: ``receiving`` is internal: the job's items are still being written (an upload in progress).
ACTIVE_STATUSES = ("receiving", "pending", "running", "interrupted")
TERMINAL_STATUSES = ("succeeded", "failed", "cancelled")


_JOB_COLUMNS = (
    "id, owner, idempotency_key, request_sha256, graph, spec_yaml, task, fields, status, "
    "chunk_size, items_total, items_done, chunks_done, ledger, score, error, webhook_url, "
    "cancel_requested, created_at, started_at, finished_at"
)


@dataclass(frozen=True, kw_only=True)
class JobDraft:
    """What a submission says about a job before its items are stored."""

    owner: str
    graph: str
    chunk_size: int
    spec_yaml: str | None = None
    task: str | None = None
    fields: dict[str, str] | None = None
    idempotency_key: str | None = None
    #: sha256 of the request (graph/task, fields, items): a reused key must carry the same request
    request_sha256: str = ""
    webhook_url: str | None = None


@dataclass(frozen=True, kw_only=True)
class JobRecord:
    """One row of ``jobs``, decoded."""

    id: str
    owner: str
    idempotency_key: str | None
    request_sha256: str
    graph: str
    spec_yaml: str | None
    task: str | None
    fields: dict[str, str] | None
    status: str
    chunk_size: int
    items_total: int
    items_done: int
    chunks_done: int
    ledger: dict[str, Any] | None
    score: dict[str, int]
    error: dict[str, str] | None
    webhook_url: str | None
    cancel_requested: bool
    created_at: float
    started_at: float | None
    finished_at: float | None

    @property
    def chunks_total(self) -> int:
        return -(-self.items_total // self.chunk_size)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


@dataclass(frozen=True, kw_only=True)
class ChunkOutcome:
    """What one chunk run produced, committed atomically by :meth:`Store.commit_chunk`."""

    chunk_index: int
    first_idx: int
    results: Sequence[ItemResult]
    ledger: Ledger
    score: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    #: the job's processing time so far (this run's elapsed time plus earlier runs')
    wall_s: float | None = None


class Connection(Protocol):
    """What the store's queries need from a connection (``sqlite3`` or the Postgres adapter)."""

    def execute(self, sql: str, params: Sequence[Any] = ..., /) -> Any: ...

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]], /) -> Any: ...


class Store:
    """Jobs and results in one SQLite file; safe to use from any thread.

    The calls that start or continue work take an optional :class:`Lease` (the job service
    always passes one): the job is then held by that replica, and the writes that only its holder
    may make are refused with :class:`LeaseLost` once another replica took it over."""

    #: what a unique-key clash raises (an idempotency key seen before, a chunk committed twice)
    integrity_errors: tuple[type[Exception], ...] = (sqlite3.IntegrityError,)
    dialect: Dialect = "sqlite"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        create_private(self.path)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        db = self._db()
        db.execute("PRAGMA journal_mode=WAL")
        migrate(self._transaction, self.dialect, JOBS_SCHEMA)

    # -- connections -------------------------------------------------------------------------

    def _db(self) -> Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(
                self.path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA busy_timeout=30000")
            self._local.db = db
            with self._all_lock:
                self._all.append(db)
        return db

    @contextlib.contextmanager
    def _write(self) -> Iterator[Connection]:
        """One write transaction; ``BEGIN IMMEDIATE`` takes the write lock up front."""
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Run]:
        """A write transaction as ``run(sql, params) -> rows`` (what migrations take)."""
        with self._write() as db:
            yield lambda sql, params=(): _rows(db.execute(sql, params))

    @property
    def location(self) -> str:
        """Where the store is, for messages (a path, or a database without its password)."""
        return str(self.path)

    def ping(self) -> bool:
        """True when the file answers a query (``/readyz``)."""
        return self._db().execute("SELECT 1").fetchone() == (1,)

    def close(self) -> None:
        with self._all_lock:
            for db in self._all:
                with contextlib.suppress(sqlite3.Error):
                    db.close()
            self._all.clear()
        self._local = threading.local()

    # -- submission ---------------------------------------------------------------------------

    def create_job(self, draft: JobDraft, lease: Lease | None = None) -> tuple[JobRecord, bool]:
        """Insert a job in ``receiving`` (held by ``lease`` while its items arrive); with a known
        idempotency key, the existing job instead.

        Returns ``(job, created)``.
        """
        job_id = uuid.uuid4().hex[:16]
        try:
            with self._write() as db:
                db.execute(
                    "INSERT INTO jobs (id, owner, idempotency_key, request_sha256, graph, spec_yaml,"
                    " task, fields, status, chunk_size, webhook_url, created_at, lease_owner,"
                    " lease_expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'receiving', ?, ?, ?, ?, ?)",
                    (
                        job_id,
                        draft.owner,
                        draft.idempotency_key,
                        draft.request_sha256,
                        draft.graph,
                        draft.spec_yaml,
                        draft.task,
                        json.dumps(draft.fields) if draft.fields is not None else None,
                        draft.chunk_size,
                        draft.webhook_url,
                        time.time(),
                        *_lease_values(lease),
                    ),
                )
        except self.integrity_errors:
            existing = self.find_by_key(draft.owner, draft.idempotency_key)
            if existing is None:  # pragma: no cover - the row that clashed was discarded since
                raise
            return existing, False
        job = self.get(job_id)
        assert job is not None
        return job, True

    def find_by_key(self, owner: str, key: str | None) -> JobRecord | None:
        if key is None:
            return None
        row = (
            self._db()
            .execute(
                f"SELECT {_JOB_COLUMNS} FROM jobs WHERE owner = ? AND idempotency_key = ?",
                (owner, key),
            )
            .fetchone()
        )
        return _job(row) if row else None

    def add_items(self, job_id: str, items: Iterable[Item], lease: Lease | None = None) -> None:
        """Append items to a job being received (call it per batch of a few thousand). The job's
        ``items_total`` grows with each batch, so :meth:`load` counts an upload while it streams.
        With ``lease``, each batch renews it, and raises :class:`LeaseLost` when the upload was
        dropped meanwhile."""
        rows = [(job_id, i.index, i.body(), i.parse_error, i.line) for i in items]
        with self._write() as db:
            if lease is not None:
                _hold(db, job_id, lease, "receiving")
            db.executemany(
                "INSERT INTO job_items (job_id, idx, body, parse_error, line) VALUES (?, ?, ?, ?, ?)",
                rows,
            )
            db.execute(
                "UPDATE jobs SET items_total = items_total + ? WHERE id = ?", (len(rows), job_id)
            )

    def open_job(self, job_id: str, *, items_total: int) -> JobRecord:
        """The items are all stored: the job becomes ``pending`` and can be scheduled."""
        with self._write() as db:
            db.execute(
                f"UPDATE jobs SET status = 'pending', items_total = ?, {_NO_LEASE} WHERE id = ?",
                (items_total, job_id),
            )
        return self._must(job_id)

    def discard_job(self, job_id: str) -> None:
        """Forget a job whose submission did not complete (rejected or aborted upload)."""
        with self._write() as db:
            _discard(db, job_id)

    def delete_job(self, job_id: str) -> None:
        """Forget a job with its items, results, chunks and chunk runs (``DELETE /v1/jobs/{id}``,
        retention); the same as discarding an aborted submission."""
        self.discard_job(job_id)

    def finished_before(self, cutoff: float, *, limit: int = 1000) -> list[str]:
        """Ids of jobs that ended before ``cutoff`` (epoch seconds), oldest first (retention)."""
        rows = self._db().execute(
            "SELECT id FROM jobs WHERE finished_at < ?"
            f" AND status IN ({_marks(TERMINAL_STATUSES)}) ORDER BY finished_at LIMIT ?",
            (cutoff, *TERMINAL_STATUSES, limit),
        )
        return [r[0] for r in rows]

    def load(self, owner: str | None = None) -> tuple[int, int]:
        """``(active jobs, items not yet done in them)``: what back-pressure is measured on;
        only ``owner``'s jobs when given (a key's share)."""
        mine = " AND owner = ?" if owner is not None else ""
        row = (
            self._db()
            .execute(
                "SELECT COUNT(*), COALESCE(SUM(items_total - items_done), 0) FROM jobs"
                f" WHERE status IN ({_marks(ACTIVE_STATUSES)}){mine}",
                (*ACTIVE_STATUSES, *([owner] if owner is not None else [])),
            )
            .fetchone()
        )
        return int(row[0]), int(row[1])

    # -- running ------------------------------------------------------------------------------

    def recover(
        self, *, reclaim: str | None = None, max_chunk_starts: int | None = None
    ) -> Recovery:
        """Take over the work of replicas that died: jobs ``running`` under an expired lease (or
        none) become ``interrupted`` to resume, or ``failed`` after ``max_chunk_starts`` starts
        of one chunk (a crash loop); uploads ``receiving`` under an expired lease are dropped.
        ``reclaim``: a replica id whose leases count as expired (its own previous run). Live
        leases are left alone. See :mod:`orchestrator.store.recovery`."""
        with self._write() as db:
            recovery, uploads = recover_in(db, reclaim=reclaim, max_chunk_starts=max_chunk_starts)
            for job_id in uploads:
                _discard(db, job_id)
        return recovery

    def renew(self, lease: Lease, job_ids: Collection[str]) -> set[str]:
        """Extend ``lease`` on those of ``job_ids`` it still holds (running or receiving); their
        ids. A job missing from the answer was taken over by another replica (or has ended)."""
        ids = list(job_ids)
        if not ids:
            return set()
        with self._write() as db:
            rows = db.execute(
                "UPDATE jobs SET lease_expires_at = ? WHERE lease_owner = ?"
                f" AND status IN ('running', 'receiving') AND id IN ({_marks(ids)}) RETURNING id",
                (lease.expiry(), lease.owner, *ids),
            ).fetchall()
        return {r[0] for r in rows}

    def runnable(self, limit: int, exclude: Iterable[str] = ()) -> list[JobRecord]:
        """Up to ``limit`` jobs waiting to run (interrupted first, then oldest first)."""
        skip = list(exclude)
        sql = (
            f"SELECT {_JOB_COLUMNS} FROM jobs WHERE status IN ('pending', 'interrupted')"
            + (f" AND id NOT IN ({_marks(skip)})" if skip else "")
            + " ORDER BY status = 'pending', created_at LIMIT ?"
        )
        rows = self._db().execute(sql, (*skip, limit)).fetchall()
        return [_job(r) for r in rows]

    def set_plan(self, job_id: str, graph: str, spec_yaml: str, ledger: Ledger) -> None:
        """Record the graph a task was planned into (and the planner's cost) before it runs."""
        with self._write() as db:
            raw = _read_ledger(db, job_id)
            db.execute(
                "UPDATE jobs SET graph = ?, spec_yaml = ?, ledger = ? WHERE id = ?",
                (graph, spec_yaml, json.dumps(_add_raw(raw, ledger_to_raw(ledger))), job_id),
            )

    def mark_running(self, job_id: str, lease: Lease | None = None) -> bool:
        """``pending``/``interrupted`` -> ``running`` (held by ``lease``); False if the job is no
        longer waiting (another replica started it first)."""
        with self._write() as db:
            changed = db.execute(
                "UPDATE jobs SET status = 'running', started_at = COALESCE(started_at, ?),"
                " lease_owner = ?, lease_expires_at = ?"
                " WHERE id = ? AND status IN ('pending', 'interrupted') AND cancel_requested = 0",
                (time.time(), *_lease_values(lease), job_id),
            ).rowcount
        return bool(changed)

    def completed_chunks(self, job_id: str) -> set[int]:
        rows = self._db().execute("SELECT chunk_index FROM job_chunks WHERE job_id = ?", (job_id,))
        return {r[0] for r in rows}

    def items(self, job_id: str, first: int, stop: int) -> list[Item]:
        """Items ``first <= idx < stop`` of a job, as the runtime reads them."""
        rows = self._db().execute(
            "SELECT idx, body, parse_error, line FROM job_items"
            " WHERE job_id = ? AND idx >= ? AND idx < ? ORDER BY idx",
            (job_id, first, stop),
        )
        found = []
        for idx, body, parse_error, line in rows:
            value = None if parse_error is not None else json.loads(body)
            found.append(Item(idx, value, parse_error=parse_error, line=line))
        return found

    def record_chunk_start(self, job_id: str, chunk_index: int, pid: int) -> None:
        with self._write() as db:
            db.execute(
                "INSERT INTO chunk_runs (job_id, chunk_index, started_at, pid) VALUES (?, ?, ?, ?)",
                (job_id, chunk_index, time.time(), pid),
            )

    def chunk_runs(self, job_id: str) -> dict[int, int]:
        """Chunk index -> how many times it was started."""
        rows = self._db().execute(
            "SELECT chunk_index, COUNT(*) FROM chunk_runs WHERE job_id = ? GROUP BY chunk_index",
            (job_id,),
        )
        return {r[0]: r[1] for r in rows}

    def commit_chunk(self, job_id: str, outcome: ChunkOutcome, lease: Lease | None = None) -> None:
        """Results, completion record, counters and ledger of one chunk, in one transaction.

        A chunk already committed raises IntegrityError (it must never run twice to completion).
        With ``lease``: :class:`LeaseLost` (and nothing written) when another replica took the
        job over; the commit renews the lease otherwise.
        """
        ok = sum(1 for r in outcome.results if r.ok)
        rows = [
            (
                job_id,
                outcome.first_idx + i,
                outcome.chunk_index,
                int(r.ok),
                json.dumps(r.to_dict(), default=str),
            )
            for i, r in enumerate(outcome.results)
        ]
        with self._write() as db:
            if lease is not None:
                _hold(db, job_id, lease, "running")
            db.execute(
                "INSERT INTO job_chunks (job_id, chunk_index, items, succeeded, seconds,"
                " finished_at) VALUES (?, ?, ?, ?, ?, ?)",
                (job_id, outcome.chunk_index, len(rows), ok, outcome.seconds, time.time()),
            )
            db.executemany(
                "INSERT INTO job_results (job_id, idx, chunk_index, ok, result)"
                " VALUES (?, ?, ?, ?, ?)",
                rows,
            )
            raw = _add_raw(_read_ledger(db, job_id), ledger_to_raw(outcome.ledger))
            if outcome.wall_s is not None:
                raw["wall_s"] = outcome.wall_s
            score_row = db.execute("SELECT score FROM jobs WHERE id = ?", (job_id,)).fetchone()
            score = Counter(json.loads(score_row[0]) if score_row and score_row[0] else {})
            score.update(outcome.score)
            db.execute(
                "UPDATE jobs SET items_done = items_done + ?, chunks_done = chunks_done + 1,"
                " ledger = ?, score = ? WHERE id = ?",
                (len(rows), json.dumps(raw), json.dumps(dict(score)), job_id),
            )

    def finish(
        self,
        job_id: str,
        status: str,
        error: dict[str, str] | None = None,
        lease: Lease | None = None,
    ) -> JobRecord:
        """Close a job (``succeeded``, ``failed``, ``cancelled``) or park it (``interrupted``),
        and free its lease. With ``lease``: :class:`LeaseLost` (nothing written) when another
        replica took the job over."""
        finished = time.time() if status in TERMINAL_STATUSES else None
        with self._write() as db:
            if lease is not None:
                _hold(db, job_id, lease, "running")
            db.execute(
                f"UPDATE jobs SET status = ?, error = ?, finished_at = ?, {_NO_LEASE} WHERE id = ?",
                (status, json.dumps(error) if error else None, finished, job_id),
            )
        return self._must(job_id)

    def request_cancel(self, job_id: str) -> JobRecord:
        """A waiting job is cancelled at once; a running one is flagged for its runner."""
        with self._write() as db:
            db.execute(
                "UPDATE jobs SET status = 'cancelled', finished_at = ?, cancel_requested = 1"
                " WHERE id = ? AND status IN ('pending', 'interrupted')",
                (time.time(), job_id),
            )
            db.execute(
                "UPDATE jobs SET cancel_requested = 1 WHERE id = ? AND status = 'running'",
                (job_id,),
            )
        return self._must(job_id)

    def record_finished(
        self,
        job_id: str,
        *,
        owner: str,
        ledger: Ledger,
        status: str,
        started_at: float,
        finished_at: float,
        chunk_size: int,
        spec_yaml: str | None = None,
        task: str | None = None,
        score: dict[str, int] | None = None,
        error: dict[str, str] | None = None,
        items: Iterable[Item] = (),
    ) -> JobRecord:
        """Record a job that ran outside the service (``orchestrator run``, a script) as finished,
        with its ledger and times, so reports, the API and dashboards see it too. ``items`` are
        kept as the job's items (e.g. a sample, for ``orchestrator report --measure-sample``);
        the job never runs here."""
        if status not in TERMINAL_STATUSES:
            raise ValueError(f"a recorded job must be finished ({TERMINAL_STATUSES}), not {status}")
        with self._write() as db:
            db.execute(
                "INSERT INTO jobs (id, owner, request_sha256, graph, spec_yaml, task, status,"
                " chunk_size, items_total, items_done, chunks_done, ledger, score, error,"
                " created_at, started_at, finished_at)"
                " VALUES (?, ?, '', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    job_id,
                    owner,
                    ledger.graph,
                    spec_yaml,
                    task,
                    status,
                    chunk_size,
                    ledger.items,
                    ledger.items,
                    ledger.chunks,
                    json.dumps(ledger_to_raw(ledger)),
                    json.dumps(score or {}),
                    json.dumps(error) if error else None,
                    started_at,
                    started_at,
                    finished_at,
                ),
            )
            db.executemany(
                "INSERT INTO job_items (job_id, idx, body, parse_error, line) VALUES (?, ?, ?, ?, ?)",
                ((job_id, i.index, i.body(), i.parse_error, i.line) for i in items),
            )
        return self._must(job_id)

    # -- reading ------------------------------------------------------------------------------

    def get(self, job_id: str) -> JobRecord | None:
        row = (
            self._db().execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,))
        ).fetchone()
        return _job(row) if row else None

    def results(self, job_id: str, *, after: int, limit: int) -> list[tuple[int, dict[str, Any]]]:
        """Up to ``limit`` results with index > ``after``, in input order: ``(idx, result)``."""
        rows = self._db().execute(
            "SELECT idx, result FROM job_results WHERE job_id = ? AND idx > ? ORDER BY idx LIMIT ?",
            (job_id, after, limit),
        )
        return [(idx, json.loads(text)) for idx, text in rows]

    def replace_result(self, job_id: str, idx: int, result: dict[str, Any]) -> bool:
        """An item held for review finished: its result replaces the held one, and the job's
        ledger counts one item fewer waiting. False when the store has no such result (a job
        run elsewhere, e.g. by ``orchestrator run``)."""
        with self._write() as db:
            return replace_result_in(
                lambda sql, params=(): db.execute(sql, params).fetchall(), job_id, idx, result
            )

    def recent_jobs(self, *, owner: str | None, limit: int) -> list[JobRecord]:
        """The ``limit`` newest jobs (uploads still arriving aside), newest first; only
        ``owner``'s unless it is None (all)."""
        sql = (
            f"SELECT {_JOB_COLUMNS} FROM jobs WHERE status != 'receiving'"
            + (" AND owner = ?" if owner is not None else "")
            + " ORDER BY created_at DESC LIMIT ?"
        )
        args = (owner, limit) if owner is not None else (limit,)
        return [_job(r) for r in self._db().execute(sql, args)]

    def finished_ledgers(
        self, *, owner: str | None, since: float, limit: int
    ) -> list[tuple[float, dict[str, Any]]]:
        """``(finished_at, raw ledger)`` of jobs that ended at or after ``since``, oldest first
        (at most the ``limit`` latest); only ``owner``'s unless it is None (all)."""
        sql = (
            "SELECT finished_at, ledger FROM jobs WHERE finished_at >= ? AND ledger IS NOT NULL"
            + (" AND owner = ?" if owner is not None else "")
            + " ORDER BY finished_at DESC LIMIT ?"
        )
        args = (since, owner, limit) if owner is not None else (since, limit)
        rows = self._db().execute(sql, args).fetchall()
        return [(finished, json.loads(text)) for finished, text in reversed(rows)]

    def _must(self, job_id: str) -> JobRecord:
        job = self.get(job_id)
        if job is None:
            raise KeyError(job_id)
        return job

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- ledgers as JSON --------------------------------------------------------------------------

_COUNTERS = ("skill_calls", "skill_items", "skill_escalated", "skill_seconds")


def replace_result_in(
    run: Callable[..., list[Any]], job_id: str, idx: int, result: dict[str, Any]
) -> bool:
    """:meth:`Store.replace_result`'s statements, run by ``run(sql, params) -> rows`` inside a
    transaction the caller holds (the review queue closes a ticket in the same one)."""
    found = run(
        "UPDATE job_results SET result = ?, ok = ? WHERE job_id = ? AND idx = ? RETURNING idx",
        (json.dumps(result, default=str), int("error" not in result), job_id, idx),
    )
    rows = run("SELECT ledger FROM jobs WHERE id = ?", (job_id,)) if found else []
    raw = json.loads(rows[0][0]) if rows and rows[0][0] else None
    if raw is not None and raw.get("held_for_review"):
        raw["held_for_review"] -= 1
        run("UPDATE jobs SET ledger = ? WHERE id = ?", (json.dumps(raw), job_id))
    return bool(found)


def ledger_to_raw(ledger: Ledger) -> dict[str, Any]:
    """A ledger as plain JSON values (counters as dicts), exact: no rounding."""
    raw = {f.name: getattr(ledger, f.name) for f in fields(ledger)}
    for name in _COUNTERS:
        raw[name] = dict(raw[name])
    return raw


def ledger_from_raw(raw: dict[str, Any]) -> Ledger:
    """The inverse of :func:`ledger_to_raw`."""
    values = dict(raw)
    for name in ("skill_calls", "skill_items", "skill_escalated"):
        values[name] = Counter(values.get(name) or {})
    values["skill_seconds"] = dict(values.get("skill_seconds") or {})
    known = Ledger.__dataclass_fields__
    return Ledger(**{k: v for k, v in values.items() if k in known})


def _add_raw(base: dict[str, Any] | None, delta: dict[str, Any]) -> dict[str, Any]:
    """Field-wise sum of two raw ledgers (numbers add, per-skill maps add per key)."""
    if not base:
        return dict(delta)
    out = dict(base)
    for key, value in delta.items():
        if key in ("job_id", "graph"):
            out[key] = value or base.get(key)
        elif isinstance(value, dict):
            merged = dict(base.get(key) or {})
            for k, v in value.items():
                merged[k] = merged.get(k, 0) + v
            out[key] = merged
        elif isinstance(value, int | float) and not isinstance(value, bool):
            out[key] = (base.get(key) or 0) + value
        else:
            out[key] = value
    return out


def _read_ledger(db: Connection, job_id: str) -> dict[str, Any] | None:
    row = db.execute("SELECT ledger FROM jobs WHERE id = ?", (job_id,)).fetchone()
    return json.loads(row[0]) if row and row[0] else None


_NO_LEASE = "lease_owner = NULL, lease_expires_at = NULL"


def _lease_values(lease: Lease | None) -> tuple[str | None, float | None]:
    return (lease.owner, lease.expiry()) if lease is not None else (None, None)


def _hold(db: Connection, job_id: str, lease: Lease, status: str) -> None:
    """Renew ``lease`` on a job in ``status`` inside the caller's write transaction, or raise
    :class:`LeaseLost`: the fence in front of every write only the holder may make."""
    held = db.execute(
        "UPDATE jobs SET lease_expires_at = ? WHERE id = ? AND lease_owner = ? AND status = ?",
        (lease.expiry(), job_id, lease.owner, status),
    ).rowcount
    if not held:
        raise LeaseLost(
            f"job {job_id} is no longer held by this replica ({lease.owner}): its lease expired "
            "and another replica took it over, so this one stops. If this happens without a "
            "replica dying, the job_lease_s setting is too short for this store's pauses"
        )


def _discard(db: Connection, job_id: str) -> None:
    for table in ("job_items", "job_results", "job_chunks", "chunk_runs"):
        db.execute(f"DELETE FROM {table} WHERE job_id = ?", (job_id,))
    db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))


def _rows(cursor: Any) -> list[tuple[Any, ...]]:
    """A cursor's rows; none for a statement that returns none (psycopg would raise)."""
    return [tuple(r) for r in cursor.fetchall()] if cursor.description is not None else []


def _marks(values: Sequence[Any]) -> str:
    return ", ".join("?" for _ in values)


def _job(row: Sequence[Any]) -> JobRecord:
    (
        job_id,
        owner,
        key,
        request_sha256,
        graph,
        spec_yaml,
        task,
        fields,
        status,
        chunk_size,
        items_total,
        items_done,
        chunks_done,
        ledger,
        score,
        error,
        webhook_url,
        cancel_requested,
        created_at,
        started_at,
        finished_at,
    ) = row
    return JobRecord(
        id=job_id,
        owner=owner,
        idempotency_key=key,
        request_sha256=request_sha256,
        graph=graph,
        spec_yaml=spec_yaml,
        task=task,
        fields=json.loads(fields) if fields else None,
        status=status,
        chunk_size=chunk_size,
        items_total=items_total,
        items_done=items_done,
        chunks_done=chunks_done,
        ledger=json.loads(ledger) if ledger else None,
        score=json.loads(score) if score else {},
        error=json.loads(error) if error else None,
        webhook_url=webhook_url,
        cancel_requested=bool(cancel_requested),
        created_at=created_at,
        started_at=started_at,
        finished_at=finished_at,
    )
