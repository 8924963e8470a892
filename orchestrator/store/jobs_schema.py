"""The job store's tables and their migrations (see :mod:`orchestrator.store.migrations`).

Version 1 is the schema as it stood before versions existed (so a store written by that release is
adopted as it is). Version 2 adds the lease of a running job or an upload in progress: the replica
that holds it (``lease_owner``) and until when (``lease_expires_at``, epoch seconds); another
replica takes the job over only once the lease has expired
(:meth:`orchestrator.store.jobs.Store.recover`).
"""

from __future__ import annotations

from orchestrator.store.migrations import Schema

__all__ = ["JOBS_SCHEMA"]

_V1 = """
CREATE TABLE IF NOT EXISTS jobs (
    id               TEXT PRIMARY KEY,
    owner            TEXT NOT NULL,
    idempotency_key  TEXT,
    request_sha256   TEXT NOT NULL,
    graph            TEXT NOT NULL,
    spec_yaml        TEXT,
    task             TEXT,
    fields           TEXT,
    status           TEXT NOT NULL,
    chunk_size       INTEGER NOT NULL,
    items_total      INTEGER NOT NULL DEFAULT 0,
    items_done       INTEGER NOT NULL DEFAULT 0,
    chunks_done      INTEGER NOT NULL DEFAULT 0,
    ledger           TEXT,
    score            TEXT,
    error            TEXT,
    webhook_url      TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    created_at       REAL NOT NULL,
    started_at       REAL,
    finished_at      REAL,
    UNIQUE (owner, idempotency_key)
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, created_at);
CREATE INDEX IF NOT EXISTS jobs_finished ON jobs (finished_at);
CREATE TABLE IF NOT EXISTS job_items (
    job_id      TEXT NOT NULL,
    idx         INTEGER NOT NULL,
    body        TEXT,
    parse_error TEXT,
    line        INTEGER,
    PRIMARY KEY (job_id, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS job_results (
    job_id      TEXT NOT NULL,
    idx         INTEGER NOT NULL,
    chunk_index INTEGER NOT NULL,
    ok          INTEGER NOT NULL,
    result      TEXT NOT NULL,
    PRIMARY KEY (job_id, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS job_chunks (
    job_id      TEXT NOT NULL,
    chunk_index INTEGER NOT NULL,
    items       INTEGER NOT NULL,
    succeeded   INTEGER NOT NULL,
    seconds     REAL NOT NULL,
    finished_at REAL NOT NULL,
    PRIMARY KEY (job_id, chunk_index)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS chunk_runs (
    id          INTEGER PRIMARY KEY,
    job_id      TEXT NOT NULL,
    chunk_index INTEGER NOT NULL,
    started_at  REAL NOT NULL,
    pid         INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS chunk_runs_job ON chunk_runs (job_id, chunk_index);
"""

_V2 = """
ALTER TABLE jobs ADD COLUMN lease_owner TEXT;
ALTER TABLE jobs ADD COLUMN lease_expires_at REAL;
"""

JOBS_SCHEMA = Schema("jobs", [_V1, _V2])
