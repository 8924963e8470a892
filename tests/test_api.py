"""The job service end to end: real uvicorn on loopback, real Ray, real SQLite, real skills."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import ClassVar

import httpx
import pytest
from api_server import ROOT, client, make_keys, serve_app, wait_for

from orchestrator.client import Client, ServiceError
from orchestrator.config import Settings
from orchestrator.service.app import create_app
from orchestrator.service.settings import ServiceSettings

UTTERANCES = ["yes", "stop calling me", "what is my balance", "no thanks", "how is the weather"]


def _items(n: int, start: int = 0) -> list[dict]:
    return [{"id": f"t{i}", "utterance": UTTERANCES[i % len(UTTERANCES)]} for i in range(start, n)]


@pytest.fixture(scope="module")
def keys():
    return make_keys()


@pytest.fixture(scope="module")
def ray_service(tmp_path_factory, keys, ray_cluster, builtin_registry):
    """One service on Ray for the module: chunks of 8 so jobs have many chunks."""
    from orchestrator import RayExecutor, Runtime

    settings = ServiceSettings(
        runtime=Settings(
            executor="ray",
            chunk_size=8,
            data_dir=tmp_path_factory.mktemp("svc"),
            skills_dir=ROOT / "skills",
        ),
        graphs_dir=ROOT / "graphs",
        api_keys=keys.configs,
        warm_graphs=["outbound_call_turn"],
    )
    runtime = Runtime(registry=builtin_registry, executor=RayExecutor(), settings=settings.runtime)
    with runtime, serve_app(create_app(settings, runtime=runtime)) as url:
        yield url


def test_submit_stream_results_on_ray(ray_service, keys):
    items = [*_items(45), {"id": "bad", "text": "wrong field"}, "not an object"]
    with Client(ray_service, api_key=keys.writer) as api:
        job = api.submit("outbound_call_turn", items)
        assert job["status"] in ("pending", "running")
        assert job["progress"]["items_total"] == 47 and job["progress"]["chunks_total"] == 6
        events = list(api.stream(job["id"], timeout=120))
        lines = list(api.results(job["id"], page_size=10))
        final = api.get(job["id"])

    progress = [e["data"] for e in events if e["event"] == "progress"]
    assert [e["event"] for e in events][-1] == "done"
    done = [p["items_done"] for p in progress]
    assert done == sorted(done) and progress[-1]["status"] == "succeeded"
    assert events[-1]["data"]["progress"]["items_done"] == 47

    assert [line.get("id") for line in lines] == [f"t{i}" for i in range(45)] + ["bad", None]
    assert lines[1]["opted_out"] is True and lines[1]["action"] == "end_call_do_not_call"
    assert lines[2]["intent"] == "balance"
    assert (
        lines[45]["error"]["code"] == "invalid_item"
        and "'utterance'" in lines[45]["error"]["message"]
    )
    assert "item 47" in lines[46]["error"]["message"]

    assert final["status"] == "succeeded" and final["finished_at"] is not None
    ledger = final["ledger"]
    assert (ledger["items"], ledger["succeeded"], ledger["failed"]) == (47, 45, 2)
    assert ledger["chunks"] == 6 and ledger["skill_items"]["turn_intent@1.0.0"] == 45
    assert ledger["escalated"] == sum(1 for line in lines if line.get("escalate"))


def test_idempotent_resubmit(ray_service, keys):
    body = {"graph": "outbound_call_turn", "items": _items(5)}
    with client(ray_service, keys.writer) as http:
        first = http.post("/v1/jobs", json=body, headers={"Idempotency-Key": "order-42"})
        again = http.post("/v1/jobs", json=body, headers={"Idempotency-Key": "order-42"})
        assert first.status_code == 202 and again.status_code == 200
        assert first.json()["id"] == again.json()["id"]
        assert first.headers["location"] == f"/v1/jobs/{first.json()['id']}"

        changed = {**body, "items": _items(6)}
        clash = http.post("/v1/jobs", json=changed, headers={"Idempotency-Key": "order-42"})
        assert clash.status_code == 409 and clash.json()["code"] == "idempotency_conflict"
        wait_for(f"/v1/jobs/{first.json()['id']}", http)
        results = http.get(f"/v1/jobs/{first.json()['id']}/results").json()["results"]
        assert len(results) == 5  # one job, one result per item
    with client(ray_service, keys.other) as http:  # keys are scoped to their caller
        theirs = http.post("/v1/jobs", json=body, headers={"Idempotency-Key": "order-42"})
        assert theirs.status_code == 202 and theirs.json()["id"] != first.json()["id"]


def test_cancel_a_running_job(ray_service, keys):
    with Client(ray_service, api_key=keys.writer) as api:
        job = api.submit("outbound_call_turn", _items(4000))  # 500 chunks of 8
        deadline = time.monotonic() + 60
        while api.get(job["id"])["progress"]["items_done"] == 0:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        requested = api.cancel(job["id"])
        assert requested["cancel_requested"] is True
        final = api.wait(job["id"], timeout=60, poll=0.05)
        assert final["status"] == "cancelled"
        done = final["progress"]["items_done"]
        assert 0 < done < 4000
        lines = list(api.results(job["id"]))
    assert len(lines) == done  # what committed before the cancel stays, exactly once
    assert len({line["id"] for line in lines}) == done


def test_cancel_a_finished_job_is_a_conflict(ray_service, keys):
    with client(ray_service, keys.writer) as http:
        job = http.post("/v1/jobs", json={"graph": "outbound_call_turn", "items": _items(2)})
        wait_for(f"/v1/jobs/{job.json()['id']}", http)
        answer = http.post(f"/v1/jobs/{job.json()['id']}/cancel")
        assert answer.status_code == 409 and answer.json()["code"] == "job_finished"


def test_auth_401_403_and_open_health(ray_service, keys, capfd):
    body = {"graph": "outbound_call_turn", "items": _items(1)}
    with client(ray_service, None) as anonymous:
        assert anonymous.get("/healthz").status_code == 200
        assert anonymous.get("/readyz").json()["checks"]["ray"] == "ok"
        missing = anonymous.post("/v1/jobs", json=body)
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"] == "Bearer"
        assert missing.headers["content-type"] == "application/problem+json"
        assert missing.json()["code"] == "unauthorized"
    with client(ray_service, "ork_not-a-key") as wrong:
        assert wrong.get("/v1/skills").status_code == 401
    with client(ray_service, keys.reader) as reader:
        denied = reader.post("/v1/jobs", json=body)
        assert denied.status_code == 403 and "jobs:write" in denied.json()["detail"]
        assert (
            reader.post("/v1/graphs/outbound_call_turn/invoke", json={"input": {}}).status_code
            == 403
        )
        skills = {s["name"]: s for s in reader.get("/v1/skills").json()}
        assert skills["turn_intent"]["versions"][0]["aliases"] == ["prod"]
    with client(ray_service, keys.writer) as writer:
        job = writer.post("/v1/jobs", json=body).json()
    with client(ray_service, keys.other) as other:
        assert other.get(f"/v1/jobs/{job['id']}").status_code == 404  # not theirs
    with client(ray_service, keys.admin) as admin:
        assert admin.get(f"/v1/jobs/{job['id']}").status_code == 200
    logs = capfd.readouterr()
    for key in (keys.writer, keys.reader, keys.admin, keys.other):
        assert key not in logs.out and key not in logs.err


def test_invoke_a_real_time_turn(ray_service, keys):
    with Client(ray_service, api_key=keys.invoker) as api:
        turn = api.invoke("outbound_call_turn", {"utterance": "stop calling me"}, id="c1-t3")
        assert turn["id"] == "c1-t3" and turn["opted_out"] is True
        assert set(turn) >= {"intent", "intent_confidence", "action", "reason", "escalate"}
        with pytest.raises(ServiceError) as bad:
            api.invoke("outbound_call_turn", {"utterance": 7})
        assert bad.value.status == 422
        assert bad.value.errors[0]["field"] == "input.utterance"
        with pytest.raises(ServiceError) as missing:
            api.invoke("no_such_graph", {"utterance": "hi"})
        assert missing.value.status == 404 and missing.value.code == "unknown_graph"


def test_jsonl_upload(ray_service, keys, tmp_path):
    path = tmp_path / "turns.jsonl"
    path.write_text(
        '{"id": 1, "utterance": "yes"}\n\n{not json\n{"id": 3, "utterance": "stop calling"}\n'
    )
    with Client(ray_service, api_key=keys.writer) as api:
        job = api.submit_file(path, graph="outbound_call_turn")
        assert job["progress"]["items_total"] == 3
        assert api.wait(job["id"], timeout=60, poll=0.05)["status"] == "succeeded"
        lines = list(api.results(job["id"]))
    assert [line.get("id") for line in lines] == [1, None, 3]
    assert lines[1]["error"]["message"].startswith("line 3: not valid JSON")


def test_malformed_payloads_name_the_field(ray_service, keys):
    with client(ray_service, keys.writer) as http:
        not_json = http.post(
            "/v1/jobs", content=b"{nope", headers={"content-type": "application/json"}
        )
        assert not_json.status_code == 400 and not_json.json()["code"] == "invalid_json"
        no_items = http.post("/v1/jobs", json={"graph": "outbound_call_turn"})
        assert no_items.status_code == 422
        assert no_items.json()["errors"][0]["field"] == "body.items"
        both = http.post(
            "/v1/jobs", json={"graph": "outbound_call_turn", "task": "x", "items": [1]}
        )
        assert both.status_code == 422 and both.json()["errors"][0]["field"] == "body.task"
        task_only = http.post("/v1/jobs", json={"task": "classify", "items": [1]})
        assert task_only.json()["errors"][0]["field"] == "body.fields"
        unknown = http.post("/v1/jobs", json={"graph": "nope", "items": [1]})
        assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "body.graph"
        extra = http.post("/v1/jobs", json={"graph": "outbound_call_turn", "items": [1], "x": 1})
        assert extra.status_code == 422 and extra.json()["errors"][0]["field"] == "body.x"
        text = http.post("/v1/jobs", content=b"hi", headers={"content-type": "text/plain"})
        assert text.status_code == 415
        page = http.get("/v1/jobs/0123456789abcdef/results", params={"limit": 0})
        assert page.status_code == 422 and page.json()["errors"][0]["field"] == "query.limit"
        assert http.get("/v1/jobs/0123456789abcdef").status_code == 404
        for response in (not_json, no_items, both, unknown, text, page):
            assert response.headers["content-type"] == "application/problem+json"


def test_metrics_count_jobs_and_turns(ray_service, keys):
    with client(ray_service, keys.invoker) as http:
        http.post("/v1/graphs/outbound_call_turn/invoke", json={"input": {"utterance": "yes"}})
        text = http.get("/metrics").text
    assert 'orchestrator_invoke_seconds_count{graph="outbound_call_turn"}' in text
    assert 'orchestrator_jobs_finished_total{graph="outbound_call_turn",status="succeeded"}' in text
    assert "orchestrator_http_requests_total" in text


class _Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[dict, str]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        _Hook.received.append((json.loads(body), self.headers.get("x-orchestrator-signature", "")))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_webhook_on_completion(tmp_path, keys, builtin_registry, monkeypatch):
    monkeypatch.setenv("TEST_WEBHOOK_SECRET", "s3cret")
    hook = HTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    settings = ServiceSettings(
        runtime=Settings(executor="local", data_dir=tmp_path, skills_dir=ROOT / "skills"),
        graphs_dir=ROOT / "graphs",
        api_keys=keys.configs,
        webhook_secret_env="TEST_WEBHOOK_SECRET",
        webhook_hosts=["127.0.0.1"],  # webhooks are off until their hosts are listed
    )
    try:
        with serve_app(create_app(settings)) as url, Client(url, api_key=keys.writer) as api:
            job = api.submit(
                "outbound_call_turn",
                _items(3),
                webhook_url=f"http://127.0.0.1:{hook.server_port}/done",
            )
            api.wait(job["id"], timeout=60, poll=0.05)
            deadline = time.monotonic() + 10
            while not _Hook.received and time.monotonic() < deadline:
                time.sleep(0.05)
    finally:
        hook.shutdown()
    view, signature = _Hook.received[-1]
    assert view["id"] == job["id"] and view["status"] == "succeeded"
    assert signature.startswith("sha256=") and len(signature) == 7 + 64


def test_overload_answers_only_2xx_or_429_with_retry_after(tmp_path, keys, builtin_registry):
    """Past the bound of active jobs, submissions get 429 + Retry-After, never a 5xx."""
    settings = ServiceSettings(
        runtime=Settings(
            executor="local", chunk_size=4, data_dir=tmp_path, skills_dir=ROOT / "skills"
        ),
        graphs_dir=ROOT / "graphs",
        api_keys=keys.configs,
        max_active_jobs=2,
        max_running_jobs=1,
        retry_after_s=3,
    )
    body = {"graph": "outbound_call_turn", "items": _items(2000)}  # 500 chunks: seconds
    statuses: list[tuple[int, str | None]] = []
    lock = threading.Lock()

    def submit(url: str) -> None:
        with client(url, keys.writer) as http:
            response = http.post("/v1/jobs", json=body)
        with lock:
            statuses.append((response.status_code, response.headers.get("retry-after")))

    with serve_app(create_app(settings)) as url:
        threads = [threading.Thread(target=submit, args=(url,)) for _ in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        with client(url, keys.admin) as http:
            assert 'orchestrator_rejected_total{reason="jobs"}' in http.get("/metrics").text
    assert len(statuses) == 12
    assert {s for s, _ in statuses} <= {202, 429}, statuses
    accepted = [s for s, _ in statuses if s == 202]
    assert 1 <= len(accepted) <= 2
    assert all(retry == "3" for s, retry in statuses if s == 429)


def test_openapi_is_published(ray_service):
    spec = httpx.get(f"{ray_service}/openapi.json").json()
    assert {"/v1/jobs", "/v1/jobs/{job_id}", "/v1/graphs/{name}/invoke"} <= set(spec["paths"])
    body = spec["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]
    assert {"application/json", "multipart/form-data"} <= set(body)
    graphs = body["application/json"]["schema"]["oneOf"][0]["properties"]["graph"]["enum"]
    assert graphs == ["lead_scoring", "outbound_call_reply", "outbound_call_turn"]


class _ScriptedPlanner:
    """Plans every task into the checked-in turn graph (the planner itself is tested elsewhere)."""

    gateway = None

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []

    async def plan(self, task, fields, *, ledger=None, **kwargs):
        from orchestrator.graph.spec import load_graph
        from orchestrator.planning.planner import Plan

        self.calls.append((task, fields))
        if ledger is not None:
            ledger.llm_calls += 2
        spec = load_graph(ROOT / "graphs" / "outbound_call_turn.yaml")
        return Plan(spec, cached=False, llm_calls=2, tokens=100, attempts=1, key="k")


def test_task_job_is_planned_then_run(tmp_path, keys, builtin_registry):
    from orchestrator import Runtime

    settings = ServiceSettings(
        runtime=Settings(executor="local", data_dir=tmp_path, skills_dir=ROOT / "skills"),
        graphs_dir=ROOT / "graphs",
        api_keys=keys.configs,
    )
    planner = _ScriptedPlanner()
    runtime = Runtime(registry=builtin_registry, settings=settings.runtime, planner=planner)
    with (
        serve_app(create_app(settings, runtime=runtime)) as url,
        Client(url, api_key=keys.writer) as api,
    ):
        job = api.submit(
            None,
            _items(3),
            task="classify each turn and pick the next action",
            fields={"utterance": "str"},
        )
        assert job["graph"] == "planned"
        final = api.wait(job["id"], timeout=60, poll=0.05)
        lines = list(api.results(job["id"]))
    assert planner.calls == [("classify each turn and pick the next action", {"utterance": "str"})]
    assert final["status"] == "succeeded" and final["graph"] == "outbound_call_turn"
    assert final["ledger"]["llm_calls"] == 2  # the planner's calls are in the job's ledger
    assert [line["id"] for line in lines] == ["t0", "t1", "t2"] and lines[1]["opted_out"] is True
