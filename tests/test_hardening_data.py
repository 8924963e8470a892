"""Data at rest: examples and review tickets keep redacted text, a job can be deleted with all it
left behind, finished jobs expire, store files are private. Issue #16, "Data at rest and PII"."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import stat
import time

import numpy as np
import pytest
import yaml
from api_server import make_keys, wait_for
from hardening_support import bearer, toy_app, toy_settings, write_graphs
from starlette.testclient import TestClient
from toy_skills import toy_registry

from orchestrator import Runtime
from orchestrator.accounting.ledger import Ledger
from orchestrator.config import Settings
from orchestrator.graph.cascade import Escalator
from orchestrator.graph.spec import GraphSpec
from orchestrator.llm.pii import KnownValues
from orchestrator.review.desk import HeldItem
from orchestrator.store.examples import ExampleStore
from orchestrator.store.jobs import Store
from orchestrator.store.sqlite_file import SQLiteFile

SECRET = "call Ana Sousa at ana.sousa@example.com"


def _runtime(tmp_path, **settings):
    config = Settings(executor="local", data_dir=tmp_path, **settings)
    return Runtime(registry=toy_registry(), executor="local", settings=config)


def _graph(runtime, tmp_path, name="toy_review"):
    folder = write_graphs(tmp_path / "graphs")
    return runtime.compile(
        GraphSpec.from_dict(yaml.safe_load((folder / f"{name}.yaml").read_text()))
    )


def test_learned_examples_keep_what_left_the_process_redacted(tmp_path):
    """Escalator.learn stored the raw inputs, although examples said "after redaction"."""
    with _runtime(tmp_path) as runtime, ExampleStore(tmp_path / "ex.db") as examples:
        step = _graph(runtime, tmp_path).resolved.steps[0]  # len: the length skill
        escalator = Escalator(
            gateway=None, ledger=Ledger(job_id="j", graph="g"), job_id="j", examples=examples
        )  # type: ignore[arg-type]
        batch = {"text": [SECRET, "fine"]}
        known = [KnownValues(name="Ana Sousa"), KnownValues()]
        escalator.learn(step, batch, {0: {"length": 7}}, "remote", np.array([0.1, 0.9]), known)
        [kept] = examples.for_skill("length")
    assert kept.inputs == {"text": "call <PERSON_1> at <EMAIL_1>"} and kept.outputs == {"length": 7}
    assert "Ana" not in str(kept) and "example.com" not in str(kept)


@pytest.mark.parametrize("policy", ["redacted", "raw"])
def test_review_tickets_show_the_text_the_policy_allows(tmp_path, policy):
    with _runtime(tmp_path, review_inputs=policy) as runtime:
        graph = _graph(runtime, tmp_path)
        columns = {
            "input.utterance": [SECRET],
            "len.length": [2],
            "len.confidence": [0.1],
            "len.escalate": [True],
            "len.answered_by": ["length@1.0.0"],
            "len.degraded": [False],
            "sh.verdict": ["calm"],
        }
        asyncio.run(runtime.reviews.hold("job1", graph, [HeldItem(0, "a", "len", columns)]))
        [ticket] = runtime.reviews.queue.list(job_id="job1")
        if policy == "raw":
            assert ticket.inputs == {"text": SECRET}
        else:
            assert "<EMAIL_1>" in ticket.inputs["text"] and "example.com" not in str(ticket)
        done = runtime.answer_review(ticket.id, {"length": 3}, reviewer="ana")
        assert done.status == "answered"
        [example] = runtime.examples.for_skill("length")
    assert "example.com" not in example.inputs["text"]  # examples are redacted whatever the policy


def test_delete_a_job_removes_everything_it_left(tmp_path):
    keys = make_keys()
    settings = toy_settings(tmp_path, keys)
    items = [{"id": f"t{i}", "utterance": u} for i, u in enumerate(["hello there", "hi", "yo"])]
    with toy_app(settings) as app, TestClient(app, base_url="http://127.0.0.1") as http:
        service = app.state.service
        writer, admin = bearer(keys.writer), bearer(keys.admin)
        job = http.post(
            "/v1/jobs", json={"graph": "toy_review", "items": items}, headers=writer
        ).json()
        assert wait_for(f"/v1/jobs/{job['id']}", _Http(http, writer))["status"] == "succeeded"
        tickets = service.runtime.reviews.queue.list(job_id=job["id"])
        assert len(tickets) == 2
        answered = http.post(
            f"/v1/reviews/{tickets[0].id}/answer", json={"answer": {"length": 2}}, headers=admin
        )
        assert answered.status_code == 200, answered.text
        assert service.runtime.examples.for_skill("length")  # the answer became an example

        assert http.delete(f"/v1/jobs/{job['id']}", headers=bearer(keys.other)).status_code == 404
        assert http.delete(f"/v1/jobs/{job['id']}", headers=writer).status_code == 204
        assert http.get(f"/v1/jobs/{job['id']}", headers=writer).status_code == 404
        assert service.runtime.reviews.queue.list(status=None, job_id=job["id"]) == []
        assert service.runtime.examples.for_skill("length") == []
        db = sqlite3.connect(service.store.location)
        for table in ("job_items", "job_results", "job_chunks", "chunk_runs"):
            assert db.execute(
                f"SELECT COUNT(*) FROM {table} WHERE job_id = ?", (job["id"],)
            ).fetchone() == (0,)
        review_db = sqlite3.connect(settings.runtime.data_dir / "review_checkpoints.db")
        threads = review_db.execute(
            "SELECT COUNT(*) FROM checkpoints WHERE thread_id LIKE ?", (f"review-{job['id']}-%",)
        )
        assert threads.fetchone() == (0,)

        service.jobs.stop()  # no runner: the next job stays waiting, and cannot be deleted yet
        waiting, _ = service.jobs.submit(owner="writer", graph="toy", items=iter(_one()))
        refused = http.delete(f"/v1/jobs/{waiting.id}", headers=writer)
        assert refused.status_code == 409 and refused.json()["code"] == "job_active"


def _one():
    from orchestrator.store.item import Item

    return [Item(0, {"id": 1, "utterance": "hello"})]


class _Http:
    """``wait_for`` takes an httpx-like client with the key already set."""

    def __init__(self, http, headers):
        self.http, self.headers = http, headers

    def get(self, url):
        return self.http.get(url, headers=self.headers)


def test_retention_purges_jobs_that_ended_long_enough_ago(tmp_path):
    from orchestrator.service.erasure import purge_expired

    keys = make_keys()
    settings = toy_settings(tmp_path, keys)
    with toy_app(settings) as app, TestClient(app, base_url="http://127.0.0.1") as http:
        service = app.state.service
        writer = bearer(keys.writer)
        body = {"graph": "toy", "items": [{"id": 1, "utterance": "hello"}]}
        old = http.post("/v1/jobs", json=body, headers=writer).json()
        wait_for(f"/v1/jobs/{old['id']}", _Http(http, writer))
        time.sleep(0.05)
        cutoff_days = 0.03 / 86400  # anything that ended more than 30 ms ago
        erased = asyncio.run(
            purge_expired(service.store, service.runtime, retention_days=cutoff_days)
        )
        assert erased == 1 and service.store.get(old["id"]) is None
        fresh = http.post("/v1/jobs", json=body, headers=writer).json()
        wait_for(f"/v1/jobs/{fresh['id']}", _Http(http, writer))
        assert asyncio.run(purge_expired(service.store, service.runtime, retention_days=1.0)) == 0
        assert service.store.get(fresh["id"]) is not None


def test_store_files_are_created_private(tmp_path):
    previous = os.umask(0o022)  # the usual umask: files readable by everyone
    try:
        with Store(tmp_path / "jobs.db") as store:
            store.ping()
        SQLiteFile(tmp_path / "audit.db", "CREATE TABLE IF NOT EXISTS t (x)").close()
        with _runtime(tmp_path) as runtime:
            asyncio.run(_touch_checkpoints(runtime.settings))
    finally:
        os.umask(previous)
    for name in ("jobs.db", "jobs.db-wal", "audit.db", "step_checkpoints.db"):
        path = tmp_path / name
        if path.exists():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, name
    assert (tmp_path / "jobs.db").exists() and (tmp_path / "step_checkpoints.db").exists()


async def _touch_checkpoints(settings):
    from orchestrator.store.checkpoints import open_step_checkpoints

    async with open_step_checkpoints(settings) as saver:
        await saver.adelete_thread("nothing")
