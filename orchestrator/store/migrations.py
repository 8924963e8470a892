"""Schema migrations: each component's tables carry a version, and ordered steps bring them up.

A component (the job store, the plan cache, the review queue, the audit log, the examples...)
declares its tables as a :class:`Schema`: a name and an ordered list of steps. Step 1 is the
schema as it stood before versions existed, written with ``IF NOT EXISTS`` so that a store written
by that older release is adopted as version 1 as it is; every later step is a plain change
(``ALTER TABLE ... ADD COLUMN ...``) that runs once. :func:`migrate` applies the steps the store
has not seen, **one transaction per step**, and records each in ``schema_migrations``
``(component, version, applied_at)``: a step that fails leaves the store at the version before
it, and the next start tries it again.

Replicas that start together on one Postgres database queue on an advisory lock, so each step
runs once; on SQLite, ``BEGIN IMMEDIATE`` does the same. A store already at a version newer than
this build knows (a newer release upgraded it) is refused with a :class:`ConfigError`, so an old
replica never writes rows the new schema does not expect.

The SQL is written once in SQLite's words; on Postgres, types are translated (``REAL`` ->
``DOUBLE PRECISION``, ``INTEGER PRIMARY KEY`` -> ``BIGSERIAL PRIMARY KEY``) unless a step gives
its own Postgres text (:class:`Step`).

Adopting it in a new module (one call)::

    MEASUREMENTS = Schema("provider_measurements", [
        "CREATE TABLE IF NOT EXISTS measurements (id INTEGER PRIMARY KEY, provider TEXT NOT NULL)",
        "ALTER TABLE measurements ADD COLUMN latency_s REAL",          # version 2, later
    ])
    db = open_db(location, MEASUREMENTS)   # applies what is missing, then returns the handle

Never edit or reorder a step that has shipped: append a new one.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from orchestrator.errors import ConfigError
from orchestrator.store.sql_text import split_statements

__all__ = ["Dialect", "Schema", "Step", "migrate", "postgres_types"]

Dialect = Literal["sqlite", "postgres"]
#: ``run(sql, params) -> rows``, inside a transaction
Run = Callable[..., list[tuple[Any, ...]]]
#: opens one transaction and yields its ``run``
Transaction = Callable[[], contextlib.AbstractContextManager[Run]]

#: any constant: replicas migrating one Postgres database at once queue on this advisory lock
_MIGRATION_LOCK = 0x5C4E3A
_TYPES = (
    (" WITHOUT ROWID", ""),
    ("INTEGER PRIMARY KEY AUTOINCREMENT", "BIGSERIAL PRIMARY KEY"),
    ("INTEGER PRIMARY KEY,", "BIGSERIAL PRIMARY KEY,"),
    (" REAL", " DOUBLE PRECISION"),
)
_LEDGER = """CREATE TABLE IF NOT EXISTS schema_migrations (
    component  TEXT NOT NULL,
    version    INTEGER NOT NULL,
    applied_at REAL NOT NULL,
    PRIMARY KEY (component, version)
)"""


@dataclass(frozen=True)
class Step:
    """One migration step whose Postgres text differs from its SQLite text."""

    sqlite: str
    postgres: str

    def text(self, dialect: Dialect) -> str:
        return self.postgres if dialect == "postgres" else self.sqlite


@dataclass(frozen=True)
class Schema:
    """A component's tables: its name in ``schema_migrations`` and its ordered steps (step ``i``
    brings the component to version ``i + 1``); a step is SQL statements separated by ``;``."""

    component: str
    steps: Sequence[str | Step]

    def __post_init__(self) -> None:
        if not self.component or not self.steps:
            raise ValueError("a Schema needs a component name and at least one step")

    @property
    def version(self) -> int:
        """The version this build brings the component to."""
        return len(self.steps)

    def statements(self, version: int, dialect: Dialect) -> list[str]:
        """The statements of the step that brings the component to ``version``."""
        step = self.steps[version - 1]
        if isinstance(step, Step):
            return split_statements(step.text(dialect))
        text = postgres_types(step) if dialect == "postgres" else step
        return split_statements(text)


def postgres_types(sql: str) -> str:
    """SQLite DDL with Postgres' types (timestamps as 8-byte floats, row ids as BIGSERIAL)."""
    for sqlite_type, postgres_type in _TYPES:
        sql = sql.replace(sqlite_type, postgres_type)
    return sql


def migrate(transaction: Transaction, dialect: Dialect, schema: Schema) -> int:
    """Bring ``schema`` up to date in the store that ``transaction`` opens; its version then.

    Raises :class:`ConfigError` when the store is newer than this build, or when a step fails
    (with the step and what to do; the store stays at the last version that applied)."""
    current = _version(transaction, dialect, schema.component)
    if current > schema.version:
        raise ConfigError(
            f"the store's {schema.component!r} tables are at schema version {current}, newer "
            f"than this release knows ({schema.version}): a newer orchestrator upgraded them. "
            "Run that release (or a newer one) on every replica; never downgrade a store"
        )
    for version in range(current + 1, schema.version + 1):
        _apply(transaction, dialect, schema, version)
    return schema.version


def _version(transaction: Transaction, dialect: Dialect, component: str) -> int:
    with transaction() as run:
        _lock(run, dialect)
        run(postgres_types(_LEDGER) if dialect == "postgres" else _LEDGER)
        return _recorded(run, component)


def _recorded(run: Run, component: str) -> int:
    rows = run(
        "SELECT COALESCE(MAX(version), 0) FROM schema_migrations WHERE component = ?",
        (component,),
    )
    return int(rows[0][0])


def _apply(transaction: Transaction, dialect: Dialect, schema: Schema, version: int) -> None:
    try:
        with transaction() as run:
            _lock(run, dialect)
            if _recorded(run, schema.component) >= version:
                return  # another replica applied it while this one waited for the lock
            for statement in schema.statements(version, dialect):
                run(statement)
            run(
                "INSERT INTO schema_migrations (component, version, applied_at) VALUES (?, ?, ?)",
                (schema.component, version, time.time()),
            )
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(
            f"migrating the store's {schema.component!r} tables to schema version {version} "
            f"failed ({type(exc).__name__}: {exc}); the store stays at version {version - 1}. "
            "Fix the cause (disk space, permissions, a table changed by hand) and start again"
        ) from exc


def _lock(run: Run, dialect: Dialect) -> None:
    if dialect == "postgres":
        run("SELECT pg_advisory_xact_lock(?)", (_MIGRATION_LOCK,))
