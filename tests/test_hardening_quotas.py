"""One key's share: uploads count while they stream, jobs in flight and items per minute per key
(429 with Retry-After), event streams capped per key with a lifetime and polled off the loop.
Issue #16, "Bounded inputs"."""

from __future__ import annotations

import threading

import httpx
import pytest
from api_server import make_keys, serve_app
from hardening_support import bearer, toy_app, toy_settings, write_graphs
from starlette.testclient import TestClient
from toy_skills import toy_registry

from orchestrator import Runtime
from orchestrator.config import Settings
from orchestrator.service.jobs import JobManager, inline_items
from orchestrator.service.limits import Limits
from orchestrator.store.jobs import Store


@pytest.fixture
def manager(tmp_path):
    """A job manager whose runner is not started: submitted jobs stay waiting."""

    def make(**limits: int) -> JobManager:
        settings = Settings(executor="local", data_dir=tmp_path)
        runtime = Runtime(registry=toy_registry(), executor="local", settings=settings)
        store = Store(tmp_path / "jobs.db")
        graphs = write_graphs(tmp_path / "graphs")
        return JobManager(store, runtime, graphs_dir=graphs, limits=Limits(**limits))

    return make


def _items(n: int) -> list[dict]:
    return [{"id": i, "utterance": "hello"} for i in range(n)]


def test_an_upload_counts_against_the_backlog_while_it_streams(manager):
    """Uploads counted 0 until done, so two concurrent ones each got the whole allowance."""
    from orchestrator.errors import Overloaded

    jobs = manager(max_active_items=2500)
    seen: list[tuple[int, int]] = []
    second: list[BaseException] = []

    def first_upload():
        for n, item in enumerate(inline_items(_items(3000))):
            if n == 2001:  # one batch of 2,000 is stored: a second upload arrives now
                seen.append(jobs.store.load())
                try:
                    jobs.submit(owner="b", graph="toy", items=inline_items(_items(1000)))
                except Overloaded as exc:
                    second.append(exc)
            yield item

    with pytest.raises(Overloaded):  # 3,000 > 2,500 on its own
        jobs.submit(owner="a", graph="toy", items=first_upload())
    assert seen == [(1, 2000)]  # the upload's first batch already counted
    assert len(second) == 1 and "backlog" in str(second[0])
    assert jobs.store.load() == (0, 0)  # both rejected submissions were discarded


def test_one_key_cannot_fill_the_service(manager):
    from orchestrator.errors import QuotaExceeded

    jobs = manager(max_active_jobs=32, max_active_jobs_per_key=2)
    for _ in range(2):
        jobs.submit(owner="a", graph="toy", items=inline_items(_items(1)))
    with pytest.raises(QuotaExceeded) as caught:
        jobs.submit(owner="a", graph="toy", items=inline_items(_items(1)))
    assert caught.value.retry_after >= 1 and "max_active_jobs_per_key" in str(caught.value)
    jobs.submit(owner="b", graph="toy", items=inline_items(_items(1)))  # another key has room


def test_items_per_minute_per_key_answer_429_with_retry_after(tmp_path):
    keys = make_keys()
    settings = toy_settings(tmp_path, keys, max_items_per_minute_per_key=10)
    with toy_app(settings) as app, TestClient(app, base_url="http://127.0.0.1") as http:
        body = {"graph": "toy", "items": _items(8)}
        assert http.post("/v1/jobs", json=body, headers=bearer(keys.writer)).status_code == 202
        again = http.post("/v1/jobs", json=body, headers=bearer(keys.writer))
        assert again.status_code == 429 and again.json()["code"] == "quota_exceeded"
        assert 1 <= int(again.headers["retry-after"]) <= 60
        assert "max_items_per_minute_per_key" in again.json()["detail"]
        other = http.post("/v1/jobs", json=body, headers=bearer(keys.other))
        assert other.status_code == 202  # the quota is per key


def test_item_rate_refills_and_lets_one_large_batch_through():
    from orchestrator.service.item_rate import ItemRate

    now = [0.0]
    rate = ItemRate(per_minute=60, clock=lambda: now[0])
    assert rate.take("k", 50) == 0.0
    assert rate.take("k", 20) == pytest.approx(10.0)  # 10 left: 10 more take 10 s
    now[0] = 10.0
    assert rate.take("k", 20) == 0.0
    now[0] = 100.0
    assert rate.take("k", 500) == 0.0  # a full bucket lets a batch larger than it through...
    assert rate.take("k", 1) > 400  # ...and the key pays for it afterwards


def test_event_streams_are_capped_per_key_expire_and_poll_off_the_loop(tmp_path):
    keys = make_keys()
    settings = toy_settings(
        tmp_path, keys, max_event_streams_per_key=1, event_stream_max_s=0.6, max_running_jobs=1
    )
    with toy_app(settings) as app:
        service = app.state.service
        store_threads: set[str] = set()
        get = service.store.get

        def spy(job_id):  # records where the store is read, then reads it
            store_threads.add(threading.current_thread().name)
            return get(job_id)

        service.store.get = spy
        with serve_app(app) as url:
            service.jobs.stop()  # no runner: the job stays pending while its stream is open
            job, _ = service.jobs.submit(owner="writer", graph="toy", items=inline_items(_items(1)))
            http = httpx.Client(base_url=url, headers=bearer(keys.writer), timeout=10)
            with http.stream("GET", f"/v1/jobs/{job.id}/events") as first:
                assert first.status_code == 200
                lines = first.iter_lines()
                assert "event: progress" in (next(lines), next(lines))
                second = http.get(f"/v1/jobs/{job.id}/events")
                assert second.status_code == 429 and "max_event_streams_per_key" in second.text
                assert second.headers["retry-after"]
                rest = list(lines)  # the stream ends by itself after its lifetime
            assert "event: expired" in rest
            again = http.get(f"/v1/jobs/{job.id}/events")  # the closed stream gave its slot back
            assert again.status_code == 200 and "event: expired" in again.text
    assert store_threads and "test-uvicorn" not in store_threads  # never on the event loop
