"""The job store on Postgres: the same tables, queries and guarantees as the SQLite store.

Selected by a ``postgresql://`` store URL (``orchestrator serve --store-url`` or the service
settings' ``store_url``), for services whose replicas share one database. Needs the ``postgres``
extra (``pip install 'orchestrator[postgres]'``: psycopg 3).

The queries are the SQLite store's, written with ``?`` placeholders and portable SQL;
:func:`~orchestrator.store.sql_text.to_pyformat` converts them for psycopg (never inside a string
literal or a comment). The tables come from the same migrations as on SQLite
(:mod:`orchestrator.store.migrations`), with Postgres' types: timestamps are ``DOUBLE PRECISION``
(Postgres' ``REAL`` is 4 bytes), row ids ``BIGSERIAL``. Write transactions take one
transaction-scoped advisory lock first, the counterpart of SQLite's ``BEGIN IMMEDIATE``: the
read-modify-write of a job's ledger when two of its chunks commit at once is serialised, never
lost.

Connections survive a failover or a restart of the database: a connection found dead is dropped
and replaced, and the statement is tried once more on the fresh one when that is safe — a read
outside a transaction, or a transaction whose ``BEGIN`` failed (nothing of it ran). A connection
that dies in the middle of a transaction is replaced too, but that transaction fails: it may or
may not have committed, and only its caller knows whether running it again is right.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from orchestrator.errors import ConfigError, StoreUnavailable
from orchestrator.store.jobs import JOBS_SCHEMA, Connection, Store
from orchestrator.store.migrations import Run, Schema, migrate, postgres_types
from orchestrator.store.sql_text import to_pyformat

__all__ = ["PostgresConnection", "PostgresFile", "PostgresStore"]

#: any constant: the store's writers queue on this advisory lock (within one database)
_WRITE_LOCK = 0x0C4E57


def public_location(url: str) -> str:
    """The URL without its user and password, for messages and logs."""
    return "postgresql://" + url.split("@")[-1]


def _connect(url: str) -> Any:
    import psycopg

    return psycopg.connect(url, autocommit=True, connect_timeout=10)


class PostgresConnection:
    """One autocommit psycopg connection that takes ``?`` placeholders and replaces itself when
    the server dropped it (see the module docstring for what is retried). Not thread-safe: one
    per thread, or one behind a lock."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._conn: Any = _connect(url)

    @property
    def conn(self) -> Any:
        """The live psycopg connection (a fresh one if the last one broke)."""
        import psycopg

        if self._conn is None or self._conn.closed or self._conn.broken:
            self.drop()
            try:
                self._conn = _connect(self.url)
            except psycopg.OperationalError as exc:
                raise self._unavailable(exc) from exc
        return self._conn

    def _unavailable(self, exc: Exception) -> StoreUnavailable:
        return StoreUnavailable(
            f"the Postgres store at {public_location(self.url)} dropped the connection and did "
            f"not answer again ({type(exc).__name__}: {str(exc).strip()}); a failover or a "
            "restart? The next call reconnects; check the database if it goes on"
        )

    def _lost(self, conn: Any) -> bool:
        return bool(conn.broken or conn.closed)

    def drop(self) -> None:
        """Close the connection (it is dead, or the store closes); the next use opens another."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def execute(self, sql: str, params: Sequence[Any] = (), /) -> Any:
        """Run one statement; its cursor. A read outside a transaction is tried twice."""
        import psycopg

        conn = self.conn
        idle = conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        try:
            return conn.execute(to_pyformat(sql), tuple(params))
        except psycopg.OperationalError as exc:
            if not self._lost(conn):
                raise  # the server answered (a lock timeout, a cancel): not ours to retry
            if not (idle and _is_read(sql)):
                raise self._unavailable(exc) from exc  # transaction() replaces the connection
        self.drop()  # the server went away between two statements: once more, on a new one
        try:
            return self.conn.execute(to_pyformat(sql), tuple(params))
        except psycopg.OperationalError as exc:
            raise self._unavailable(exc) from exc

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]], /) -> Any:
        cursor = self.conn.cursor()
        cursor.executemany(to_pyformat(sql), [tuple(r) for r in rows])
        return cursor

    @contextlib.contextmanager
    def transaction(self, lock: int | None = None) -> Iterator[PostgresConnection]:
        """One transaction (after the advisory ``lock``, if given). When its ``BEGIN`` (or the
        lock) fails on a dead connection, it starts again once on a fresh one."""
        import psycopg

        for attempt in (1, 2):
            stack = contextlib.ExitStack()
            try:
                stack.enter_context(self.conn.transaction())
                if lock is not None:
                    self.execute("SELECT pg_advisory_xact_lock(?)", (lock,))
                break
            except (psycopg.OperationalError, StoreUnavailable) as exc:
                with contextlib.suppress(Exception):
                    stack.close()
                self.drop()
                if attempt == 2:
                    if isinstance(exc, StoreUnavailable):
                        raise
                    raise self._unavailable(exc) from exc
        conn = self._conn
        try:
            with stack:
                yield self
        except StoreUnavailable:
            self.drop()  # died mid-transaction: the caller decides about running it again
            raise
        except psycopg.OperationalError as exc:  # in executemany, or at COMMIT
            if conn is None or not self._lost(conn):
                raise
            self.drop()
            raise self._unavailable(exc) from exc

    def run(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """One statement's rows (none for a write without RETURNING)."""
        cursor = self.execute(sql, params)
        return [tuple(r) for r in cursor.fetchall()] if cursor.description else []


def _is_read(sql: str) -> bool:
    return sql.lstrip().upper().startswith("SELECT")


def _unreachable(url: str, exc: Exception) -> ConfigError:
    return ConfigError(f"cannot reach the Postgres store at {public_location(url)}: {exc}")


class PostgresFile:
    """:class:`~orchestrator.store.sqlite_file.SQLiteFile`'s interface on a Postgres database: the
    audit log, plan cache, examples and review queue live next to the job store when it is on
    Postgres. One connection behind a lock, like the SQLite file."""

    dialect = "postgres"

    def __init__(self, url: str, schema: Schema | str) -> None:
        import psycopg

        self.url = url
        self._lock = threading.Lock()
        try:
            self._db = PostgresConnection(url)
            if isinstance(schema, Schema):
                migrate(self._transaction, "postgres", schema)
            else:  # an unversioned script of CREATE ... IF NOT EXISTS (prefer a Schema)
                with self._transaction() as run:
                    for statement in postgres_types(schema).split(";"):
                        if statement.strip():
                            run(statement)
        except psycopg.OperationalError as exc:
            raise _unreachable(url, exc) from None

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement; its rows (empty for writes without RETURNING). A write runs as its
        own transaction, so a dead connection found at its start is replaced and it runs once."""
        with self._lock:
            if _is_read(sql):
                return self._db.run(sql, params)
            with self._db.transaction() as db:
                return db.run(sql, params)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run one statement per row, in one transaction."""
        with self._lock, self._db.transaction() as db:
            db.executemany(sql, rows)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Run]:
        """Several statements in one transaction (see ``SQLiteFile.transaction``)."""
        with self._lock, self._db.transaction() as db:
            yield db.run

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Run]:
        with self._db.transaction() as db:
            yield db.run

    def close(self) -> None:
        with self._lock:
            self._db.drop()


class PostgresStore(Store):
    """Jobs and results in a Postgres database; safe to use from any thread (one connection per
    thread, each replaced when the server drops it)."""

    dialect = "postgres"

    def __init__(self, url: str) -> None:
        try:
            import psycopg
        except ImportError:
            raise ConfigError(
                "a postgresql:// store needs psycopg: pip install 'orchestrator[postgres]'"
            ) from None
        self.url = url
        self.path = None  # type: ignore[assignment]  # no file: the store is the database
        self.integrity_errors = (psycopg.errors.IntegrityError,)
        self._local = threading.local()
        self._all: list[Any] = []
        self._all_lock = threading.Lock()
        try:
            migrate(self._transaction, "postgres", JOBS_SCHEMA)
        except psycopg.OperationalError as exc:
            raise _unreachable(url, exc) from None

    def _db(self) -> Connection:
        db: PostgresConnection | None = getattr(self._local, "db", None)
        if db is None:
            db = PostgresConnection(self.url)
            self._local.db = db
            with self._all_lock:
                self._all.append(db)
        return db

    @contextlib.contextmanager
    def _write(self) -> Iterator[Connection]:
        """One write transaction, serialised with the store's other writers."""
        db = self._db()
        assert isinstance(db, PostgresConnection)
        with db.transaction(lock=_WRITE_LOCK):
            yield db

    @property
    def location(self) -> str:
        return public_location(self.url)

    def ping(self) -> bool:
        return tuple(self._db().execute("SELECT 1").fetchone()) == (1,)

    def close(self) -> None:
        with self._all_lock:
            for db in self._all:
                db.drop()
            self._all.clear()
        self._local = threading.local()
