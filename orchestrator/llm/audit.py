"""The audit log of big-model calls: what left the machine, to whom, when, and what came back.

Every HTTP attempt the LLM gateway makes, answered or not, becomes one row of the ``llm_audit``
table in a SQLite file (stdlib ``sqlite3``, WAL mode, so readers never block the writer). A row
holds no message content and no key: the SHA-256 of the exact request body identifies what was
sent, and the provider, model and host say to whom::

    >>> import tempfile, pathlib
    >>> from orchestrator.llm.audit import AuditLog, AuditRecord
    >>> with tempfile.TemporaryDirectory() as tmp, AuditLog(pathlib.Path(tmp) / "a.db") as log:
    ...     log.record(AuditRecord(job_id="job-1", purpose="plan", provider="local",
    ...                            model="m", base_url_host="127.0.0.1:8000",
    ...                            request_sha256="ab" * 32, outcome="ok"))
    ...     [(r.provider, r.outcome) for r in log.records(job_id="job-1")]
    [('local', 'ok')]

The default file is ``<data dir>/orchestrator.db``; the data dir is ``$ORCHESTRATOR_DATA_DIR``,
else ``$XDG_DATA_HOME/orchestrator`` (``~/.local/share/orchestrator``).
"""

from __future__ import annotations

from dataclasses import astuple, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Self

from orchestrator.config.locations import db_location
from orchestrator.store.location import open_db
from orchestrator.store.migrations import Schema

__all__ = ["AuditLog", "AuditRecord"]

_COLUMNS = """
    ts                TEXT NOT NULL,
    job_id            TEXT,
    purpose           TEXT NOT NULL,
    provider          TEXT NOT NULL,
    model             TEXT NOT NULL,
    base_url_host     TEXT NOT NULL,
    request_sha256    TEXT NOT NULL,
    attempt           INTEGER NOT NULL,
    prompt_tokens     INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cost_usd          REAL NOT NULL,
    latency_s         REAL NOT NULL,
    outcome           TEXT NOT NULL,
    error_code        TEXT
"""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True, kw_only=True)
class AuditRecord:
    """One HTTP attempt to a big model.

    ``outcome`` is ``ok`` (answered, usable), ``output_invalid`` (answered, failed validation),
    ``malformed_response`` (a 200 whose body is not a chat completion), ``rejected`` (the
    provider refused the request: 400/413/422) or ``error`` (HTTP error, timeout, connection
    failure); ``error_code`` says which (``http_500``, ``timeout``, ``connection_error``...).
    """

    job_id: str | None
    purpose: str
    provider: str
    model: str
    base_url_host: str
    request_sha256: str
    outcome: str
    attempt: int = 1
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    latency_s: float = 0.0
    error_code: str | None = None
    ts: str = field(default_factory=_now)


_FIELDS = [f.name for f in fields(AuditRecord)]

#: version 1: the table as it stood before versions (see orchestrator.store.migrations)
_SCHEMA = Schema(
    "llm_audit",
    [
        f"CREATE TABLE IF NOT EXISTS llm_audit (id INTEGER PRIMARY KEY, {_COLUMNS});"
        "CREATE INDEX IF NOT EXISTS llm_audit_job ON llm_audit (job_id);"
    ],
)


class AuditLog:
    """The ``llm_audit`` table in a SQLite file; safe to share between threads.

    One connection guarded by a lock: an insert is well under a millisecond, so writers queue
    briefly rather than contend for SQLite's file lock.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        #: a SQLite file, or the ``postgresql://`` store it shares
        self.path: Path | str = db_location(path)
        self._db = open_db(self.path, _SCHEMA)

    def record(self, record: AuditRecord) -> None:
        """Append one row (committed before returning)."""
        placeholders = ", ".join("?" for _ in _FIELDS)
        sql = f"INSERT INTO llm_audit ({', '.join(_FIELDS)}) VALUES ({placeholders})"
        self._db.execute(sql, astuple(record))

    def records(self, job_id: str | None = None) -> list[AuditRecord]:
        """Every row in insertion order, or only one job's rows."""
        sql = f"SELECT {', '.join(_FIELDS)} FROM llm_audit"
        params: tuple[str, ...] = ()
        if job_id is not None:
            sql += " WHERE job_id = ?"
            params = (job_id,)
        rows = self._db.execute(sql + " ORDER BY id", params)
        return [AuditRecord(**dict(zip(_FIELDS, row, strict=True))) for row in rows]

    def close(self) -> None:
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
