"""The store tables exactly as the release before schema versions wrote them (commit 329d20c):
what tests/test_store_migrations.py upgrades. Copied, never imported from the code, so that a
change to the current schema cannot change the "previous release" with it."""

from __future__ import annotations

#: the tables exactly as the release before schema versions created them (commit 329d20c)
PREVIOUS_JOBS = """
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
PREVIOUS_PLANS = """
CREATE TABLE IF NOT EXISTS plans (
    key TEXT PRIMARY KEY,
    task TEXT NOT NULL,
    fields TEXT NOT NULL,
    spec_yaml TEXT NOT NULL,
    created_at REAL NOT NULL,
    hits INTEGER NOT NULL DEFAULT 0
)
"""
PREVIOUS_REVIEWS = """
CREATE TABLE IF NOT EXISTS reviews (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id      TEXT NOT NULL,
    item_idx    INTEGER NOT NULL,   -- the item's position in its job
    item_id     TEXT NOT NULL,      -- JSON: the item's own id
    graph       TEXT NOT NULL,      -- graph name
    spec_yaml   TEXT NOT NULL,      -- the graph, to finish the item in any process
    step        TEXT NOT NULL,
    skill       TEXT NOT NULL,      -- name@version that held it
    inputs      TEXT NOT NULL,      -- JSON: the skill's inputs
    proposed    TEXT NOT NULL,      -- JSON: the cascade's answer
    confidence  REAL NOT NULL,
    answered_by TEXT NOT NULL,      -- who proposed: a skill key or llm:<provider>
    status      TEXT NOT NULL DEFAULT 'waiting',
    answer      TEXT,
    reviewer    TEXT,
    result      TEXT,               -- JSON: the finished item's result line
    created_at  REAL NOT NULL,
    answered_at REAL,
    UNIQUE (job_id, item_idx, step)
);
CREATE INDEX IF NOT EXISTS reviews_status ON reviews (status, id);
CREATE INDEX IF NOT EXISTS reviews_job ON reviews (job_id, item_idx);
"""
PREVIOUS_EXAMPLES = """
CREATE TABLE IF NOT EXISTS examples (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    skill TEXT NOT NULL,          -- name@version that was unsure
    inputs TEXT NOT NULL,         -- JSON object: the skill's input fields
    outputs TEXT NOT NULL,        -- JSON object: the accepted answer
    source TEXT NOT NULL,         -- llm:<provider> | human:<reviewer>
    small_confidence REAL,        -- the skill's own confidence on the item
    job_id TEXT,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS examples_skill ON examples (skill);
"""
_AUDIT_COLUMNS = """
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
PREVIOUS_AUDIT = (
    f"CREATE TABLE IF NOT EXISTS llm_audit (id INTEGER PRIMARY KEY, {_AUDIT_COLUMNS});"
    "CREATE INDEX IF NOT EXISTS llm_audit_job ON llm_audit (job_id);"
)

PREVIOUS_RELEASE = [
    PREVIOUS_JOBS,
    PREVIOUS_PLANS,
    PREVIOUS_REVIEWS,
    PREVIOUS_EXAMPLES,
    PREVIOUS_AUDIT,
]
