"""Schema versions and migrations (issue #16, "Schema migrations"), on SQLite and on Postgres.

A store written by the release before versions existed is upgraded in place (data kept, versions
recorded, the lease columns added); steps run once, in order, one transaction each; a failing step
leaves the version before it; a store newer than the code is refused. Queries keep a ``?`` or a
``%`` that sits inside a string literal (the old ``sql.replace("?", "%s")`` did not).
"""

from __future__ import annotations

import itertools
import sqlite3
import threading
import time

import pytest
from postgres_server import postgres_bin, postgres_server
from store_previous_release import PREVIOUS_RELEASE

from orchestrator.errors import ConfigError
from orchestrator.llm.audit import AuditLog
from orchestrator.planning.cache import PlanCache
from orchestrator.review.queue import ReviewQueue
from orchestrator.store.examples import ExampleStore
from orchestrator.store.leases import Lease
from orchestrator.store.location import open_db, open_store
from orchestrator.store.migrations import Schema, postgres_types
from orchestrator.store.sql_text import split_statements, to_pyformat

_databases = itertools.count()


@pytest.fixture(scope="module")
def postgres_url():
    if postgres_bin() is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    with postgres_server() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def location(request, tmp_path):
    """An empty store: a SQLite file, or a fresh database on the test server."""
    if request.param == "sqlite":
        return str(tmp_path / "orchestrator.db")
    import psycopg

    server = request.getfixturevalue("postgres_url")
    name = f"migrations_{next(_databases)}"
    with psycopg.connect(server, autocommit=True) as db:
        db.execute(f"CREATE DATABASE {name}")
    return server.rsplit("/", 1)[0] + f"/{name}"


def _raw(location: str):
    """A plain DB-API connection to the store, in autocommit, with ``?`` placeholders."""
    if location.startswith("postgresql://"):
        import psycopg

        conn = psycopg.connect(location, autocommit=True)
        return lambda sql, params=(): _fetch(conn.execute(to_pyformat(sql), params)), conn.close
    conn = sqlite3.connect(location, isolation_level=None)
    return lambda sql, params=(): conn.execute(sql, params).fetchall(), conn.close


def _fetch(cursor) -> list[tuple]:
    return [tuple(r) for r in cursor.fetchall()] if cursor.description else []


def _write_previous_release(location: str) -> None:
    """Tables and rows the way the release before schema versions left them."""
    run, close = _raw(location)
    postgres = location.startswith("postgresql://")
    for schema in PREVIOUS_RELEASE:
        for statement in split_statements(postgres_types(schema) if postgres else schema):
            run(statement)
    now = time.time()
    run(
        "INSERT INTO jobs (id, owner, request_sha256, graph, status, chunk_size, items_total,"
        " created_at) VALUES ('old-job', 'ana', '', 'toy', 'running', 2, 1, ?)",
        (now,),
    )
    run("INSERT INTO job_items (job_id, idx, body) VALUES ('old-job', 0, '{\"text\": \"hi\"}')")
    run(
        "INSERT INTO plans (key, task, fields, spec_yaml, created_at, hits)"
        " VALUES ('k', 'a task', '{}', 'name: x', ?, 4)",
        (now,),
    )
    run(
        "INSERT INTO reviews (job_id, item_idx, item_id, graph, spec_yaml, step, skill, inputs,"
        " proposed, confidence, answered_by, created_at) VALUES ('old-job', 0, '\"t0\"', 'toy',"
        " 'name: toy', 'intent', 'length@1.0.0', '{}', '{}', 0.2, 'length@1.0.0', ?)",
        (now,),
    )
    run(
        "INSERT INTO examples (skill, inputs, outputs, source, job_id, created_at)"
        " VALUES ('length@1.0.0', '{}', '{\"length\": 2}', 'human:ana', 'old-job', ?)",
        (now,),
    )
    run(
        "INSERT INTO llm_audit (ts, job_id, purpose, provider, model, base_url_host,"
        " request_sha256, attempt, prompt_tokens, completion_tokens, cost_usd, latency_s,"
        " outcome) VALUES ('2026-12-01T00:00:00', 'old-job', 'plan', 'p', 'm', 'h', 'ab', 1, 10,"
        " 2, 0.5, 0.1, 'ok')"
    )
    close()


def test_a_store_written_by_the_previous_release_upgrades_in_place(location):
    _write_previous_release(location)
    store = open_store(location)
    plans, reviews = PlanCache(location), ReviewQueue(location)
    examples, audit = ExampleStore(location), AuditLog(location)
    try:
        run, close = _raw(location)
        versions = run("SELECT component, version FROM schema_migrations ORDER BY 1, 2")
        assert versions == [
            ("examples", 1),
            ("jobs", 1),
            ("jobs", 2),
            ("llm_audit", 1),
            ("plan_cache", 1),
            ("review_queue", 1),
            ("review_queue", 2),
        ]
        assert run("SELECT hits FROM plans WHERE key = 'k'") == [(4,)]
        close()
        job = store.get("old-job")
        assert job is not None and job.status == "running" and job.items_total == 1
        assert [i.value for i in store.items("old-job", 0, 1)] == [{"text": "hi"}]
        (old,) = reviews.list(job_id="old-job")
        assert old.item_id == "t0" and old.small is None and not old.paired
        assert examples.counts() == {"length@1.0.0": 1}
        assert [r.prompt_tokens for r in audit.records(job_id="old-job")] == [10]
        # a job the old release left running holds no lease: it is taken over as before
        assert store.recover().interrupted == 1
        lease = Lease(owner="replica-a", seconds=30)
        assert store.mark_running("old-job", lease)
        assert store.renew(lease, ["old-job"]) == {"old-job"}  # the new columns are there
    finally:
        for part in (store, plans, reviews, examples, audit):
            part.close()


def test_reopening_applies_nothing_and_new_steps_run_once_in_order(location):
    first = Schema(
        "notes", ["CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, text TEXT)"]
    )
    db = open_db(location, first)
    db.execute("INSERT INTO notes (text) VALUES (?)", ("kept",))
    db.close()
    open_db(location, first).close()  # again: nothing to apply
    grown = Schema(
        "notes",
        [
            first.steps[0],
            "ALTER TABLE notes ADD COLUMN author TEXT",
            "UPDATE notes SET author = 'legacy'; CREATE INDEX notes_author ON notes (author)",
        ],
    )
    db = open_db(location, grown)
    try:
        assert db.execute("SELECT text, author FROM notes") == [("kept", "legacy")]
        rows = db.execute("SELECT version FROM schema_migrations WHERE component = 'notes'")
        assert sorted(r[0] for r in rows) == [1, 2, 3]
    finally:
        db.close()
    open_db(location, grown).close()  # a third open: no step runs twice (CREATE INDEX would fail)


def test_a_failing_step_leaves_the_version_before_it(location):
    good = "CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, text TEXT)"
    bad = Schema("notes", [good, "CREATE TABLE extra (x TEXT); ALTER TABLE nowhere ADD y TEXT"])
    with pytest.raises(ConfigError, match=r"'notes' tables to schema version 2 failed.*version 1"):
        open_db(location, bad)
    db = open_db(location, Schema("notes", [good]))
    try:  # the step's first statement was rolled back with the one that failed
        assert db.execute("SELECT MAX(version) FROM schema_migrations") == [(1,)]
        with pytest.raises(Exception, match="extra"):
            db.execute("SELECT * FROM extra")
    finally:
        db.close()


def test_a_store_newer_than_this_release_is_refused(location):
    newer = Schema("notes", ["CREATE TABLE notes (x TEXT)", "ALTER TABLE notes ADD y TEXT"])
    open_db(location, newer).close()
    with pytest.raises(ConfigError, match="version 2, newer than this release knows"):
        open_db(location, Schema("notes", ["CREATE TABLE notes (x TEXT)"]))


def test_placeholders_inside_literals_and_comments_stay_as_written(location):
    """``sql.replace("?", "%s")`` made ``'why?'`` a placeholder, and psycopg read ``'50%'``'s
    ``%`` as one: both queries failed on Postgres."""
    db = open_db(location, Schema("notes", ["CREATE TABLE notes (text TEXT)"]))
    try:
        db.execute("INSERT INTO notes (text) VALUES ('why? 50%') -- a comment?")
        rows = db.execute(
            "SELECT text, ? FROM notes WHERE text LIKE '%?%' AND text = 'why? 50%' /* ? */",
            ("param",),
        )
        assert rows == [("why? 50%", "param")]
    finally:
        db.close()


def test_sql_text_is_read_token_by_token():
    assert to_pyformat("SELECT \"a?\", 'it''s ?', x FROM t WHERE y = ? -- ?\n AND z LIKE ?") == (
        "SELECT \"a?\", 'it''s ?', x FROM t WHERE y = %s -- ?\n AND z LIKE %s"
    )
    assert to_pyformat("SELECT '5%' WHERE a = ?") == "SELECT '5%%' WHERE a = %s"
    assert split_statements("CREATE TABLE a (x TEXT DEFAULT ';'); -- done; really\n;SELECT 1") == [
        "CREATE TABLE a (x TEXT DEFAULT ';')",
        "SELECT 1",
    ]


def test_replicas_migrating_one_postgres_at_once_apply_each_step_once(postgres_url):
    """Two replicas started together on a fresh database: both come up, each step ran once."""
    import psycopg

    name = f"migrations_{next(_databases)}"
    with psycopg.connect(postgres_url, autocommit=True) as db:
        db.execute(f"CREATE DATABASE {name}")
    url = postgres_url.rsplit("/", 1)[0] + f"/{name}"
    opened, failed = [], []

    def replica() -> None:
        try:
            opened.append(open_store(url))
        except Exception as exc:  # noqa: BLE001 - collected for the assertion
            failed.append(exc)

    threads = [threading.Thread(target=replica) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    for store in opened:
        store.close()
    assert not failed and len(opened) == 3
    with psycopg.connect(url) as db:
        rows = db.execute("SELECT component, version FROM schema_migrations ORDER BY 2").fetchall()
    assert rows == [("jobs", 1), ("jobs", 2)]
