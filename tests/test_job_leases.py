"""Several replicas on one database (issue #16): leases on running jobs and uploads, takeover of
expired leases only, fenced writes, the crash-loop cap. On SQLite (two stores on one file) and on
Postgres (a real server on loopback); lease times are tenths of a second.

Before leases, every start turned every ``running`` job into ``interrupted`` and dropped every
upload still arriving: a second replica stole live jobs, and the loser's chunk commit failed the
job with an IntegrityError.
"""

from __future__ import annotations

import threading
import time

import pytest
from postgres_server import postgres_bin, postgres_server
from toy_skills import toy_registry

from orchestrator import Runtime
from orchestrator.accounting.ledger import Ledger
from orchestrator.accounting.result import ItemResult
from orchestrator.config import Settings
from orchestrator.errors import LeaseLost
from orchestrator.service.jobs import JobManager, inline_items
from orchestrator.store.item import Item
from orchestrator.store.jobs import ChunkOutcome, JobDraft, Store
from orchestrator.store.leases import Lease, LeaseKeeper
from orchestrator.store.location import open_store

SHORT = 0.3  # seconds a lease lasts in these tests


@pytest.fixture(scope="module")
def postgres_url():
    if postgres_bin() is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    with postgres_server() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def replicas(request, tmp_path):
    """Two stores on one database, as two replicas see it."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'jobs.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    a, b = open_store(url), open_store(url)
    with a._write() as db:  # each test starts from empty tables (Postgres is shared)
        for table in ("job_items", "job_results", "job_chunks", "chunk_runs", "jobs"):
            db.execute(f"DELETE FROM {table}")
    yield a, b
    a.close()
    b.close()


def _job(store: Store, items: int = 4, chunk_size: int = 2) -> str:
    job, _ = store.create_job(JobDraft(owner="ana", graph="g", chunk_size=chunk_size))
    store.add_items(job.id, [Item(i, {"utterance": f"t{i}"}) for i in range(items)])
    store.open_job(job.id, items_total=items)
    return job.id


def _outcome(index: int) -> ChunkOutcome:
    ids = [f"t{2 * index}", f"t{2 * index + 1}"]
    return ChunkOutcome(
        chunk_index=index,
        first_idx=2 * index,
        results=[ItemResult(i, outputs={"x": 1}) for i in ids],
        ledger=Ledger(job_id="j", graph="g", items=2, succeeded=2),
    )


def _expire(store: Store, lease: Lease, job_id: str) -> None:
    """Renew ``job_id`` for a hundredth of a second, then let it lapse: the holder stopped."""
    assert store.renew(Lease(owner=lease.owner, seconds=0.01), [job_id]) == {job_id}
    time.sleep(0.03)


def test_a_live_lease_is_not_taken_and_an_expired_one_is(replicas):
    a, b = replicas
    lease_a = Lease(owner="replica-a", seconds=0.01)
    job_id = _job(a)
    assert a.mark_running(job_id, lease_a)
    a.record_chunk_start(job_id, 0, pid=1)
    live = Lease(owner="replica-a", seconds=30)
    a.commit_chunk(job_id, _outcome(0), live)  # a commit renews the lease too
    time.sleep(0.03)  # past the first expiry: renewed meanwhile, so still live

    assert b.recover() == (0, 0, ())  # replica b starts: a's job is live, b leaves it
    assert b.get(job_id).status == "running"

    _expire(a, live, job_id)  # a stops renewing (it died, or stalled)
    assert b.recover() == (1, 0, ())
    assert b.get(job_id).status == "interrupted"
    assert b.recover() == (0, 0, ())  # taken once

    # a wakes up: every write only the holder may make is refused, nothing half-applied
    with pytest.raises(LeaseLost, match="another replica took it over"):
        a.commit_chunk(job_id, _outcome(1), live)
    assert a.completed_chunks(job_id) == {0}
    assert a.renew(live, [job_id]) == set()
    lease_b = Lease(owner="replica-b", seconds=30)
    assert b.mark_running(job_id, lease_b)
    with pytest.raises(LeaseLost):
        a.finish(job_id, "failed", {"code": "x", "message": "late"}, live)
    b.commit_chunk(job_id, _outcome(1), lease_b)
    done = b.finish(job_id, "succeeded", lease=lease_b)
    assert (done.status, done.items_done, done.error) == ("succeeded", 4, None)


def test_an_upload_still_arriving_is_kept_while_its_lease_lives(replicas):
    a, b = replicas
    lease_a = Lease(owner="replica-a", seconds=0.01)
    job, _ = a.create_job(JobDraft(owner="ana", graph="g", chunk_size=2), lease_a)
    live = Lease(owner="replica-a", seconds=30)
    a.add_items(job.id, [Item(0, {"utterance": "t0"})], live)  # each batch renews
    time.sleep(0.03)
    assert b.recover() == (0, 0, ()) and b.get(job.id).items_total == 1

    _expire(a, live, job.id)  # the client's replica died mid-upload
    assert b.recover() == (0, 1, ())
    assert b.get(job.id) is None and b.items(job.id, 0, 10) == []
    with pytest.raises(LeaseLost):  # a late batch is refused, never stored for a dropped job
        a.add_items(job.id, [Item(1, {"utterance": "t1"})], live)
    assert b.items(job.id, 0, 10) == []


def test_a_replica_restarting_under_its_id_reclaims_its_own_jobs_at_once(replicas):
    a, b = replicas
    job_id = _job(a)
    assert a.mark_running(job_id, Lease(owner="pod-0", seconds=30))
    assert b.recover(reclaim="pod-1") == (0, 0, ())  # another replica's live lease
    assert b.recover(reclaim="pod-0") == (1, 0, ())  # pod-0 restarted: its old run is dead


def test_a_chunk_that_crashed_the_service_three_times_fails_the_job(replicas):
    a, b = replicas
    lease = Lease(owner="replica-a", seconds=0.01)
    job_id = _job(a, items=6)
    for pid in (1, 2, 3):  # a chunk that committed in the end never counts, however often
        a.record_chunk_start(job_id, 0, pid=pid)
    a.commit_chunk(job_id, _outcome(0))
    for attempt in (1, 2, 3):
        assert a.mark_running(job_id, lease)
        a.record_chunk_start(job_id, 2, pid=attempt)  # ...and the process dies in chunk 2
        time.sleep(0.02)
        recovered = b.recover(max_chunk_starts=3)
        if attempt < 3:  # resumed, until chunk 2 has been started three times
            assert recovered == (1, 0, ()) and b.get(job_id).status == "interrupted"
    assert recovered == (0, 0, (job_id,))
    job = b.get(job_id)
    assert job.status == "failed" and job.finished_at is not None
    assert job.error["code"] == "crash_loop"
    assert "chunk 2 (items 4 to 5)" in job.error["message"]
    assert "max_chunk_starts" in job.error["message"]
    assert b.runnable(5) == []  # not run a fourth time


def test_the_lease_keeper_keeps_a_lease_alive_and_reports_a_lost_one(tmp_path):
    a, b = Store(tmp_path / "jobs.db"), Store(tmp_path / "jobs.db")
    lost: list[str] = []
    lease = Lease(owner="replica-a", seconds=SHORT)
    keeper = LeaseKeeper(a, lease, every_s=SHORT / 4, on_lost=lost.append)
    job_id = _job(a)
    a.mark_running(job_id, lease)
    keeper.hold(job_id)
    keeper.start()
    try:
        time.sleep(SHORT * 2.5)  # well past one lease: renewed meanwhile
        assert b.recover() == (0, 0, ()) and not lost
        with b._write() as db:  # as if a stalled past its lease and b took the job over
            db.execute("UPDATE jobs SET lease_expires_at = 0 WHERE id = ?", (job_id,))
            db.execute("UPDATE jobs SET status = 'interrupted' WHERE id = ?", (job_id,))
        deadline = time.monotonic() + 2
        while not lost and time.monotonic() < deadline:
            time.sleep(0.02)
        assert lost == [job_id] and keeper.held == frozenset()
    finally:
        keeper.stop()
        a.close()
        b.close()
    with pytest.raises(ValueError, match="more often than they last"):
        LeaseKeeper(a, lease, every_s=SHORT, on_lost=lost.append)


def test_a_second_replica_leaves_a_live_job_and_resumes_it_when_its_replica_dies(tmp_path):
    """Two job services on one SQLite file. Replica a holds a running job (a store and a lease
    keeper: all of a replica that matters here); replica b starts, leaves it alone while a
    renews, and runs it to the end once a stops renewing."""
    settings = Settings(executor="local", data_dir=tmp_path, chunk_size=2)
    runtime = Runtime(registry=toy_registry(), executor="local", settings=settings)
    graphs = tmp_path / "graphs"
    graphs.mkdir()
    from hardening_support import write_graphs

    write_graphs(graphs)
    store_a, store_b = Store(tmp_path / "jobs.db"), Store(tmp_path / "jobs.db")
    replica_b = JobManager(
        store_b, runtime, graphs_dir=graphs, lease_s=SHORT, lease_renew_s=SHORT / 4
    )
    items = inline_items([{"id": i, "utterance": f"turn {i}"} for i in range(5)])
    job, _ = replica_b.submit(owner="ana", graph="toy", items=items)
    lease_a = Lease(owner="replica-a", seconds=SHORT)
    assert store_a.mark_running(job.id, lease_a)
    keeper_a = LeaseKeeper(store_a, lease_a, every_s=SHORT / 4, on_lost=lambda _: None)
    keeper_a.hold(job.id)
    keeper_a.start()
    try:
        replica_b.start()
        time.sleep(SHORT * 3)  # b's start and its recovery rounds since: a's job stays a's
        assert store_b.get(job.id).status == "running" and store_b.chunk_runs(job.id) == {}
        keeper_a.stop()  # replica a dies
        deadline = time.monotonic() + 10
        while (final := store_b.get(job.id)).status != "succeeded":
            assert time.monotonic() < deadline, final
            time.sleep(0.02)
    finally:
        keeper_a.stop()
        replica_b.stop()
        runtime.close()
    assert final.items_done == 5 and store_b.chunk_runs(job.id) == {0: 1, 1: 1, 2: 1}
    assert [idx for idx, _ in store_b.results(job.id, after=-1, limit=10)] == list(range(5))
    store_a.close()
    store_b.close()


def test_concurrent_recoveries_take_each_job_once(replicas):
    a, b = replicas
    ids = [_job(a) for _ in range(6)]
    for job_id in ids:
        a.mark_running(job_id)  # no lease: a run of the release before leases, now dead
    results: list[int] = []

    def recover(store: Store) -> None:
        results.append(store.recover().interrupted)

    threads = [threading.Thread(target=recover, args=(s,)) for s in (a, b, a, b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sum(results) == 6
