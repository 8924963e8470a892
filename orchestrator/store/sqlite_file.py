"""One SQLite file shared by threads: the store behind the audit log, plan cache and examples.

One connection behind a lock, in autocommit mode with WAL: each statement is its own transaction
and is durable when the call returns. A statement takes well under a millisecond, so threads queue
briefly rather than contend for SQLite's file lock.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from orchestrator.store.migrations import Schema, migrate
from orchestrator.store.private_file import create_private

__all__ = ["Run", "SQLiteFile"]

#: one statement inside a transaction: ``run(sql, params)`` -> its rows
Run = Callable[..., list[tuple[Any, ...]]]


class SQLiteFile:
    """A SQLite file with ``schema`` migrated to its latest version
    (:mod:`orchestrator.store.migrations`); a plain string is an unversioned script of
    ``CREATE ... IF NOT EXISTS`` statements, run as it is (prefer a :class:`Schema`)."""

    dialect = "sqlite"

    def __init__(self, path: Path | str, schema: Schema | str) -> None:
        self.path = Path(path)
        create_private(self.path)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            if not isinstance(schema, Schema):
                self._db.executescript(schema)
        if isinstance(schema, Schema):
            migrate(self.transaction, "sqlite", schema)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement; its rows (empty for writes)."""
        with self._lock:
            return self._db.execute(sql, tuple(params)).fetchall()

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run one statement per row, in one transaction."""
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany(sql, rows)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Run]:
        """Several statements in one transaction: ``with db.transaction() as run: run(sql,
        params)`` (each returns its rows); an error inside rolls every one back."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield lambda sql, params=(): self._db.execute(sql, tuple(params)).fetchall()
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
