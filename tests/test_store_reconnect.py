"""The Postgres store survives its connections being cut (issue #16, "Reconnects"): a failover or
a database restart ends every session, which ``pg_terminate_backend`` does here on a real server.

Before, each thread kept its dead connection: every later call on that thread failed, until the
process restarted. Now a dead connection is replaced, and the call is tried once more when that
is safe (a read, or a transaction whose ``BEGIN`` failed); a transaction cut in the middle fails,
whole, and the next one runs on a fresh connection.
"""

from __future__ import annotations

import time

import psycopg
import pytest
from postgres_server import postgres_bin, postgres_server

from orchestrator.errors import StoreUnavailable
from orchestrator.llm.audit import AuditLog, AuditRecord
from orchestrator.store.item import Item
from orchestrator.store.jobs import JobDraft
from orchestrator.store.location import open_store

pytestmark = pytest.mark.skipif(
    postgres_bin() is None, reason="PostgreSQL is not installed (apt-get install postgresql)"
)


@pytest.fixture(scope="module")
def postgres_url():
    with postgres_server() as url:
        yield url


def _cut_every_session(url: str) -> int:
    """End every other session on the server, the way a failover does; how many."""
    with psycopg.connect(url, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'"
        ).fetchall()
    return len(rows)


def _record(job_id: str) -> AuditRecord:
    return AuditRecord(
        job_id=job_id,
        purpose="plan",
        provider="p",
        model="m",
        base_url_host="h",
        request_sha256="ab",
        outcome="ok",
    )


def test_the_job_store_reconnects_after_its_sessions_are_cut(postgres_url):
    with open_store(postgres_url) as store:
        job, _ = store.create_job(JobDraft(owner="ana", graph="g", chunk_size=2))
        assert store.ping()
        assert _cut_every_session(postgres_url) >= 1
        assert store.get(job.id).status == "receiving"  # a read: tried again on a new session
        assert _cut_every_session(postgres_url) >= 1
        store.add_items(job.id, [Item(0, {"x": 1})])  # a write: its BEGIN failed, so again
        assert store.open_job(job.id, items_total=1).status == "pending"
        _cut_every_session(postgres_url)
        assert store.ping()  # /readyz recovers by itself


def test_a_transaction_cut_in_the_middle_fails_whole_and_the_next_one_runs(postgres_url):
    with open_store(postgres_url) as store:
        job, _ = store.create_job(JobDraft(owner="ana", graph="g", chunk_size=2))
        with pytest.raises(StoreUnavailable, match="dropped the connection"), store._write() as db:
            db.execute("UPDATE jobs SET items_total = 99 WHERE id = ?", (job.id,))
            _cut_every_session(postgres_url)
            db.execute("UPDATE jobs SET status = 'pending' WHERE id = ?", (job.id,))
        after = store.get(job.id)
        assert (after.items_total, after.status) == (0, "receiving")  # nothing of it applied
        assert store.open_job(job.id, items_total=1).status == "pending"


def test_the_shared_tables_reconnect_too(postgres_url):
    """The audit log, plan cache, examples and review queue share one connection per table
    set: cut, it is replaced on the next call."""
    with AuditLog(postgres_url) as audit:
        audit.record(_record("before"))
        _cut_every_session(postgres_url)
        audit.record(_record("after"))  # a write: in its own transaction, started again
        _cut_every_session(postgres_url)
        assert [r.job_id for r in audit.records()][-2:] == ["before", "after"]


def test_a_stalled_database_does_not_stall_the_api_loop(postgres_url, tmp_path):
    """Every session of the service's store is frozen (SIGSTOP: a database mid-failover that
    neither answers nor hangs up). ``/readyz`` waits for the store on a worker thread; the loop
    that also answers real-time turns goes on answering (``/healthz`` here). Before, the store's
    ping ran on the loop, and every request waited with it."""
    import os
    import signal
    import threading

    import httpx
    from api_server import serve_app
    from hardening_support import toy_app, toy_settings

    settings = toy_settings(tmp_path, store_url=postgres_url)
    with toy_app(settings) as app, serve_app(app) as url:
        assert httpx.get(f"{url}/readyz").json()["checks"]["store"] == "ok"
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            frozen = [
                pid
                for (pid,) in admin.execute(
                    "SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend'"
                    " AND pid <> pg_backend_pid()"
                ).fetchall()
            ]
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        try:
            ready = threading.Thread(target=httpx.get, args=(f"{url}/readyz",), daemon=True)
            ready.start()
            time.sleep(0.2)  # /readyz is in flight now
            started = time.monotonic()
            assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200
            assert time.monotonic() - started < 1.0
        finally:
            for pid in frozen:
                os.kill(pid, signal.SIGCONT)
        ready.join(10)
