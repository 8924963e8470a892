"""The job store's contract on both backends: SQLite (a file) and Postgres (a real server on
loopback, Debian's binaries). The same calls, the same answers; then a whole service job on
Postgres, with chunks committing concurrently."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
from api_server import ROOT, make_keys, serve_app
from postgres_server import postgres_bin, postgres_server

from orchestrator.accounting.ledger import Ledger
from orchestrator.accounting.result import ItemResult
from orchestrator.config import Settings
from orchestrator.errors import ConfigError
from orchestrator.store.item import Item
from orchestrator.store.jobs import ChunkOutcome, JobDraft
from orchestrator.store.location import open_store

pytestmark = pytest.mark.skipif(
    postgres_bin() is None, reason="PostgreSQL is not installed (apt-get install postgresql)"
)


@pytest.fixture(scope="module")
def postgres_url():
    with postgres_server() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path):
    if request.param == "sqlite":
        opened = open_store(f"sqlite:///{tmp_path / 'jobs.db'}")
    else:
        opened = open_store(request.getfixturevalue("postgres_url"))
        with opened._write() as db:  # each test starts from empty tables
            for table in ("job_items", "job_results", "job_chunks", "chunk_runs", "jobs"):
                db.execute(f"DELETE FROM {table}")
    with opened:
        yield opened


def _outcome(index: int, first: int, ids: list[str]) -> ChunkOutcome:
    ledger = Ledger(job_id="j", graph="g", items=len(ids), succeeded=len(ids), llm_calls=1)
    ledger.skill_items["s@1"] = len(ids)
    return ChunkOutcome(
        chunk_index=index,
        first_idx=first,
        results=[ItemResult(i, outputs={"x": 1}) for i in ids],
        ledger=ledger,
        score={"labelled": len(ids), "correct": 1},
        seconds=0.5,
    )


def test_a_job_from_submission_to_results(store):
    draft = JobDraft(owner="ana", graph="g", chunk_size=2, idempotency_key="k1")
    job, created = store.create_job(draft)
    again, created_again = store.create_job(draft)
    assert created and not created_again and again.id == job.id  # the key is unique per owner
    store.add_items(job.id, [Item(i, {"id": f"t{i}"}) for i in range(3)])
    store.add_items(job.id, [Item(3, None, parse_error="not JSON", line=4)])
    assert store.open_job(job.id, items_total=4).status == "pending"
    assert store.load() == (1, 4)
    assert [j.id for j in store.runnable(5)] == [job.id]
    assert store.mark_running(job.id) and not store.mark_running(job.id)
    items = store.items(job.id, 2, 4)
    assert [(i.index, i.value, i.parse_error, i.where) for i in items] == [
        (2, {"id": "t2"}, None, "item 3"),
        (3, None, "not JSON", "line 4"),
    ]
    store.record_chunk_start(job.id, 0, pid=1)
    store.record_chunk_start(job.id, 0, pid=2)
    store.commit_chunk(job.id, _outcome(0, 0, ["t0", "t1"]))
    with pytest.raises(store.integrity_errors):  # a chunk never commits twice
        store.commit_chunk(job.id, _outcome(0, 0, ["t0", "t1"]))
    store.commit_chunk(job.id, _outcome(1, 2, ["t2", "t3"]))
    assert store.completed_chunks(job.id) == {0, 1} and store.chunk_runs(job.id) == {0: 2}
    assert [idx for idx, _ in store.results(job.id, after=-1, limit=10)] == [0, 1, 2, 3]
    assert store.results(job.id, after=1, limit=1) == [(2, {"id": "t2", "x": 1, "escalate": False})]
    assert store.replace_result(job.id, 3, {"id": "t3", "x": 2})
    assert not store.replace_result(job.id, 9, {"id": "nope"})
    done = store.finish(job.id, "succeeded")
    assert done.status == "succeeded" and done.items_done == 4 and done.chunks_done == 2
    assert done.ledger["items"] == 4 and done.ledger["llm_calls"] == 2
    assert done.ledger["skill_items"] == {"s@1": 4} and done.score == {"labelled": 4, "correct": 2}
    assert isinstance(done.finished_at, float) and done.finished_at > 1.7e9  # not float4-rounded
    assert [j.id for j in store.recent_jobs(owner="ana", limit=5)] == [job.id]
    assert store.recent_jobs(owner="bo", limit=5) == []
    assert [
        ledger["items"] for _, ledger in store.finished_ledgers(owner=None, since=0, limit=5)
    ] == [4]


def test_recovery_after_a_crash(store):
    job, _ = store.create_job(JobDraft(owner="ana", graph="g", chunk_size=2))
    store.add_items(job.id, [Item(0, {})])
    store.open_job(job.id, items_total=1)
    store.mark_running(job.id)
    upload, _ = store.create_job(JobDraft(owner="ana", graph="g", chunk_size=2))  # half-received
    assert store.recover() == (1, 1, ())  # no lease taken: expired at once
    assert store.get(job.id).status == "interrupted" and store.get(upload.id) is None
    assert store.request_cancel(job.id).status == "cancelled"


def test_a_bad_store_url_says_what_to_write(tmp_path):
    with pytest.raises(ConfigError, match="postgresql://USER@HOST:PORT/DB"):
        open_store("mysql://x@y/z")
    with pytest.raises(
        ConfigError, match=r"cannot reach the Postgres store at postgresql://127\.0\.0\.1:9/db"
    ):
        open_store("postgresql://user:secret@127.0.0.1:9/db")


def test_a_service_job_on_postgres(postgres_url, tmp_path, builtin_registry):
    from orchestrator.client import Client
    from orchestrator.service.app import create_app
    from orchestrator.service.settings import ServiceSettings

    keys = make_keys()
    settings = ServiceSettings(
        runtime=Settings(
            executor="local",
            data_dir=tmp_path,
            skills_dir=ROOT / "skills",
            chunk_size=4,
            max_inflight_chunks=2,  # two chunks commit at once: the ledger merge must hold
        ),
        graphs_dir=ROOT / "graphs",
        api_keys=keys.configs,
        store_url=postgres_url,
    )
    items = [{"id": f"t{i}", "utterance": "what is my balance"} for i in range(30)]
    with serve_app(create_app(settings)) as url, Client(url, api_key=keys.writer) as api:
        job = api.submit("outbound_call_turn", items)
        final = api.wait(job["id"], timeout=60, poll=0.05)
        lines = list(api.results(job["id"]))
        health = httpx.get(f"{url}/readyz").json()
    assert final["status"] == "succeeded" and final["progress"]["items_done"] == 30
    assert final["ledger"]["items"] == 30 and final["ledger"]["chunks"] == 8
    assert [line["id"] for line in lines] == [f"t{i}" for i in range(30)]
    assert health["checks"]["store"] == "ok"


def test_the_whole_store_on_postgres(postgres_url, tmp_path, builtin_registry):
    """With a postgresql:// store, everything the service keeps lives there: jobs and results,
    the audit of big-model calls, examples, the review queue (and the providers' tallies from
    its answers) and the LangGraph checkpoints."""
    import psycopg
    import yaml

    from orchestrator import Runtime
    from orchestrator.llm.audit import AuditLog
    from orchestrator.llm.gateway import LLMGateway, Provider
    from orchestrator.service.app import create_app
    from orchestrator.service.settings import ServiceSettings
    from orchestrator.testing import StubLLMServer

    def answer(request):
        items = json.loads(request["messages"][-1]["content"].split("Items:\n", 1)[1])
        return {"answers": {str(i["index"]): {"intent": "balance"} for i in items}}

    graph = yaml.safe_load((ROOT / "graphs" / "outbound_call_turn.yaml").read_text())
    for step in graph["steps"]:
        if step["id"] == "intent":
            step["escalation"] = {"threshold": "calibrated", "review_below": 0.3}
    graph["name"] = "turn_review"
    graphs = tmp_path / "graphs"
    graphs.mkdir()
    (graphs / "turn_review.yaml").write_text(yaml.safe_dump(graph))
    keys = make_keys()
    data = tmp_path / "data"
    settings = ServiceSettings(
        runtime=Settings(
            executor="local", data_dir=data, skills_dir=ROOT / "skills", escalate=True
        ),
        graphs_dir=graphs,
        api_keys=keys.configs,
        store_url=postgres_url,
    )
    assert settings.runtime.store_location == postgres_url  # one store for everything
    texts = ["what is my account balance", "hmm maybe the thing with the stuff", "blorf quux zzz"]
    items = [{"id": f"t{i}", "utterance": t} for i, t in enumerate(texts)]
    with StubLLMServer(default=answer) as stub:
        provider = Provider(name="stub", base_url=stub.base_url, model="m", max_attempts=1)
        audit = AuditLog(settings.runtime.store_location)  # what Runtime.gateway does by default
        gateway = LLMGateway([provider], audit=audit)
        runtime = Runtime(registry=builtin_registry, settings=settings.runtime, gateway=gateway)
        with runtime, serve_app(create_app(settings, runtime=runtime)) as url:
            admin = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {keys.admin}"})
            job = admin.post("/v1/jobs", json={"graph": "turn_review", "items": items}).json()
            deadline = time.monotonic() + 60
            while admin.get(f"/v1/jobs/{job['id']}").json()["status"] != "succeeded":
                assert time.monotonic() < deadline
                time.sleep(0.05)
            waiting = admin.get("/v1/reviews", params={"job_id": job["id"]}).json()
            assert [t["item_id"] for t in waiting] == ["t1", "t2"]
            done = admin.post(
                f"/v1/reviews/{waiting[0]['id']}/answer", json={"answer": {"intent": "balance"}}
            )
            assert done.status_code == 200, done.text
            # the provider had answered it: the reviewer's answer scored it against the small one
            assert waiting[0]["answered_by"] == "llm:stub" and waiting[0]["small"] is not None
            shown = admin.get("/v1/dashboard/providers").json()["measurements"]
            assert [(m["source"], m["provider"], m["items"]) for m in shown] == [
                ("review", "stub", 1)
            ]
            assert shown[0]["provider_accuracy"] == 1.0 and shown[0]["verdict"] == "unproven"
            admin.close()
        audit.close()
    with psycopg.connect(postgres_url) as db:
        count = {
            table: db.execute(
                f"SELECT COUNT(*) FROM {table} WHERE job_id = %s", (job["id"],)
            ).fetchone()[0]
            for table in ("job_results", "reviews", "llm_audit", "examples")
        }
        count["checkpoints"] = db.execute("SELECT COUNT(*) FROM checkpoints").fetchone()[0]
        answered = db.execute(
            "SELECT status FROM reviews WHERE job_id = %s ORDER BY id", (job["id"],)
        ).fetchall()
    assert count["job_results"] == 3 and count["reviews"] == 2 and count["llm_audit"] >= 1
    assert count["examples"] >= 2  # the big model's answers and the reviewer's
    assert [a[0] for a in answered] == ["answered", "waiting"]
    assert count["checkpoints"] >= 1  # the review threads (step threads go once committed)
    assert not (data / "orchestrator.db").exists()  # nothing went to the SQLite default


def test_a_sqlite_url_names_the_file(tmp_path):
    """``sqlite:///PATH`` is the file PATH for every table, never a folder called ``sqlite:``."""
    from orchestrator.llm.audit import AuditLog
    from orchestrator.review.queue import ReviewQueue

    url = f"sqlite:///{tmp_path / 'store.db'}"
    for table in (AuditLog(url), ReviewQueue(url)):
        assert table.path == tmp_path / "store.db"
        table.close()
    assert (tmp_path / "store.db").exists() and not Path("sqlite:").exists()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_skill_name_is_matched_whole_not_as_a_pattern(backend, request, tmp_path):
    """``a_b`` means that skill's versions: not ``aXb`` (``_`` is a LIKE wildcard), not
    ``a_b_minilm``; ``name@version`` means that version only (on both backends)."""
    import uuid

    from orchestrator.store.examples import Example, ExampleStore

    location = (
        tmp_path / "examples.db" if backend == "sqlite" else request.getfixturevalue("postgres_url")
    )
    name = f"t{uuid.uuid4().hex[:8]}_intent"  # the Postgres database is shared by the module
    skills = [
        f"{name}@1.0.0",
        f"{name.replace('_', 'X')}@1.0.0",
        f"{name}_minilm@1.0.0",
        f"{name}@2",
    ]
    with ExampleStore(location) as examples:
        examples.add(Example(s, {"text": s}, {"intent": "x"}, "human:ana") for s in skills)
        assert [e.skill for e in examples.for_skill(name)] == [f"{name}@1.0.0", f"{name}@2"]
        assert [e.skill for e in examples.for_skill(f"{name}@2")] == [f"{name}@2"]
