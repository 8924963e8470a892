"""Which store a location names: a SQLite file (a path or ``sqlite:///PATH``) or Postgres.

:func:`open_store` opens the job store there; :func:`open_db` the tables of the audit log, plan
cache, examples and review queue.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from orchestrator.config.locations import is_postgres, sqlite_path
from orchestrator.errors import ConfigError
from orchestrator.store.jobs import Store
from orchestrator.store.migrations import Schema
from orchestrator.store.sqlite_file import SQLiteFile

__all__ = ["open_db", "open_store"]


def open_store(url_or_path: str | Path) -> Store:
    """A store for ``sqlite:///path``, a plain path, or ``postgresql://user@host:port/db``."""
    text = str(url_or_path)
    if is_postgres(text):
        from orchestrator.store.postgres import PostgresStore

        return PostgresStore(text)
    if "://" in text and not text.startswith("sqlite:///"):
        raise ConfigError(
            f"store URL {text.split('://')[0]}://... is neither sqlite:///PATH nor "
            "postgresql://USER@HOST:PORT/DB"
        )
    return Store(sqlite_path(text))


def open_db(location: Path | str, schema: Schema | str) -> Any:
    """The tables of ``schema`` in a SQLite file (a path or ``sqlite:///path``) or, for a
    ``postgresql://`` URL, in that database (:class:`~orchestrator.store.postgres.PostgresFile`),
    migrated to its latest version (:mod:`orchestrator.store.migrations`). Both answer
    ``execute`` / ``executemany`` / ``transaction`` / ``close`` alike; the SQL must be portable."""
    if is_postgres(location):
        from orchestrator.store.postgres import PostgresFile

        return PostgresFile(str(location), schema)
    return SQLiteFile(sqlite_path(location), schema)
