"""The job store on Postgres: the same tables, queries and guarantees as the SQLite store.

Selected by a ``postgresql://`` store URL (``orchestrator serve --store-url`` or the service
settings' ``store_url``), for services whose replicas share one database. Needs the ``postgres``
extra (``pip install 'orchestrator[postgres]'``: psycopg 3).

The queries are the SQLite store's, written with ``?`` placeholders and portable SQL; the adapter
below rewrites placeholders for psycopg. Write transactions take one transaction-scoped advisory
lock first, the counterpart of SQLite's ``BEGIN IMMEDIATE``: the read-modify-write of a job's
ledger when two of its chunks commit at once is serialised, never lost. Types differ where SQLite
is lax: timestamps are ``DOUBLE PRECISION`` (Postgres' ``REAL`` is 4 bytes), the chunk-run id a
``BIGSERIAL``.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from orchestrator.errors import ConfigError
from orchestrator.store.jobs import JOBS_SCHEMA, Connection, Store

__all__ = ["PostgresStore"]

#: any constant: the store's writers queue on this advisory lock (within one database)
_WRITE_LOCK = 0x0C4E57
_TYPES = (
    (" WITHOUT ROWID", ""),
    ("INTEGER PRIMARY KEY AUTOINCREMENT", "BIGSERIAL PRIMARY KEY"),
    ("INTEGER PRIMARY KEY,", "BIGSERIAL PRIMARY KEY,"),
    (" REAL", " DOUBLE PRECISION"),
)


def public_location(url: str) -> str:
    """The URL without its user and password, for messages and logs."""
    return "postgresql://" + url.split("@")[-1]


def postgres_schema(schema: str = JOBS_SCHEMA) -> str:
    """A SQLite schema (the job store's by default) with Postgres' types."""
    for sqlite_type, postgres_type in _TYPES:
        schema = schema.replace(sqlite_type, postgres_type)
    return schema


class PostgresFile:
    """:class:`~orchestrator.store.sqlite_file.SQLiteFile`'s interface on a Postgres database: the
    audit log, plan cache, examples and review queue live next to the job store when it is on
    Postgres. One autocommit connection behind a lock, like the SQLite file."""

    def __init__(self, url: str, schema: str) -> None:
        import psycopg

        self.url = url
        try:
            self._conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
        except psycopg.OperationalError as exc:
            raise ConfigError(
                f"cannot reach the Postgres store at {public_location(url)}: {exc}"
            ) from None
        self._db = _Adapter(self._conn)
        self._lock = threading.Lock()
        with self._lock, self._conn.transaction():
            for statement in postgres_schema(schema).split(";"):
                if statement.strip():
                    self._db.execute(statement)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement; its rows (empty for writes without RETURNING)."""
        with self._lock:
            cursor = self._db.execute(sql, params)
            return [tuple(r) for r in cursor.fetchall()] if cursor.description else []

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run one statement per row, in one transaction."""
        with self._lock, self._conn.transaction():
            self._db.executemany(sql, rows)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Any]:
        """Several statements in one transaction (see ``SQLiteFile.transaction``)."""
        with self._lock, self._conn.transaction():

            def run(sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
                cursor = self._db.execute(sql, params)
                return [tuple(r) for r in cursor.fetchall()] if cursor.description else []

            yield run

    def close(self) -> None:
        with self._lock, contextlib.suppress(Exception):
            self._conn.close()


class _Adapter:
    """A psycopg connection behind the ``execute``/``executemany`` the store calls."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Sequence[Any] = (), /) -> Any:
        return self.conn.execute(sql.replace("?", "%s"), tuple(params))

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]], /) -> Any:
        cursor = self.conn.cursor()
        cursor.executemany(sql.replace("?", "%s"), [tuple(r) for r in rows])
        return cursor


class PostgresStore(Store):
    """Jobs and results in a Postgres database; safe to use from any thread."""

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
            with self._write() as tx:
                for statement in postgres_schema().split(";"):
                    if statement.strip():
                        tx.execute(statement)
        except psycopg.OperationalError as exc:
            raise ConfigError(
                f"cannot reach the Postgres store at {self.location}: {exc}"
            ) from None

    def _db(self) -> Connection:
        db: _Adapter | None = getattr(self._local, "db", None)
        if db is None:
            import psycopg

            db = _Adapter(psycopg.connect(self.url, autocommit=True, connect_timeout=10))
            self._local.db = db
            with self._all_lock:
                self._all.append(db.conn)
        return db

    @contextlib.contextmanager
    def _write(self) -> Iterator[Connection]:
        """One write transaction, serialised with the store's other writers."""
        db = self._db()
        assert isinstance(db, _Adapter)
        with db.conn.transaction():
            db.execute("SELECT pg_advisory_xact_lock(?)", (_WRITE_LOCK,))
            yield db

    @property
    def location(self) -> str:
        return public_location(self.url)

    def ping(self) -> bool:
        return tuple(self._db().execute("SELECT 1").fetchone()) == (1,)

    def close(self) -> None:
        with self._all_lock:
            for conn in self._all:
                with contextlib.suppress(Exception):
                    conn.close()
            self._all.clear()
        self._local = threading.local()
