"""Kill the service mid-job (SIGKILL), restart it on the same data dir: the job completes with
exactly one result per item, and no chunk that had committed runs again.

The service runs as a real subprocess (``python -m orchestrator.cli.serve``) on loopback. Its graph
uses a deliberately slow skill (a sleep per batch, chunks of 5 items) that also appends every
batch it predicts to a log file: that log is the skill's own witness of what ran, independent
of the store's ``chunk_runs`` table. Ray is not the point here, so skills run in-process.
It runs on both stores: SQLite (the default) and Postgres (a real server on loopback).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import textwrap
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
import yaml
from api_server import free_port, start_service_process
from postgres_server import postgres_bin, postgres_server

from orchestrator.service.auth import new_key
from orchestrator.store.location import open_store

ITEMS = 150
CHUNK = 5  # 30 chunks
SLEEP_S = 0.12  # per batch: ~2 s of work with 2 chunks in flight

SKILL = """
import json, os, time
from pydantic import BaseModel
from orchestrator import Predictions, skill

class Text(BaseModel):
    text: str

class Echo(BaseModel):
    echo: str

@skill(name="slow_echo", version="1.0.0", description="Upper-cases, slowly; logs each batch.",
       batched=True, input=Text, output=Echo)
def slow_echo(batch):
    time.sleep(float(os.environ["SLOW_ECHO_SECONDS"]))
    with open(os.environ["SLOW_ECHO_LOG"], "a") as fh:
        fh.write(json.dumps(list(batch["text"])) + "\\n")
    return Predictions({"echo": [t.upper() for t in batch["text"]]}, [1.0] * len(batch["text"]))
"""

GRAPH = """
name: slow_echo_graph
inputs:
  text: str
steps:
  - id: echo
    skill: slow_echo@prod
    inputs: {text: input.text}
outputs:
  echo: echo.echo
"""


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'data' / 'orchestrator.db'}"
        return
    if postgres_bin() is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    with postgres_server() as url:
        yield url


@pytest.fixture
def service_files(tmp_path, store_url):
    skills = tmp_path / "svc_skills"
    (skills / "slow_echo").mkdir(parents=True)
    (skills / "__init__.py").write_text("")
    (skills / "slow_echo" / "__init__.py").write_text("")
    (skills / "slow_echo" / "skill.py").write_text(textwrap.dedent(SKILL))
    (skills / "slow_echo" / "manifest.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "slow_echo",
                "version": "1.0.0",
                "entrypoint": "svc_skills.slow_echo.skill:slow_echo",
                "aliases": ["prod"],
            }
        )
    )
    graphs = tmp_path / "graphs"
    graphs.mkdir()
    (graphs / "slow_echo_graph.yaml").write_text(GRAPH)
    key, digest = new_key()
    config = tmp_path / "service.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "runtime": {
                    "executor": "local",
                    "chunk_size": CHUNK,
                    "max_inflight_chunks": 2,
                    "skills_dir": str(skills),
                    "data_dir": str(tmp_path / "data"),
                    "log_format": "json",
                },
                "graphs_dir": str(graphs),
                "store_url": store_url,
                # a stable id: the restarted replica takes back its own job at once, instead of
                # waiting for the killed run's lease to expire (job_lease_s)
                "replica_id": "replica-0",
                "api_keys": [{"name": "backend", "sha256": digest, "scopes": ["admin"]}],
            }
        )
    )
    return {
        "config": config,
        "key": key,
        "log": tmp_path / "batches.log",
        "store": store_url,
    }


def _start(files: dict, port: int, stderr_path: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "SLOW_ECHO_SECONDS": str(SLEEP_S),
        "SLOW_ECHO_LOG": str(files["log"]),
        "PYTHONUNBUFFERED": "1",
    }
    return start_service_process(files["config"], port, stderr_path, env)


def _committed_chunks(store_url: str, job_id: str) -> set[int]:
    with open_store(store_url) as store:
        return store.completed_chunks(job_id)


def test_sigkill_mid_job_then_resume(service_files, tmp_path):
    files = service_files
    port = free_port()
    stderr_path = tmp_path / "service.stderr"
    headers = {"Authorization": f"Bearer {files['key']}"}
    items = [{"id": i, "text": f"item {i}"} for i in range(ITEMS)]

    process = _start(files, port, stderr_path)
    try:
        base = f"http://127.0.0.1:{port}"
        job = httpx.post(
            f"{base}/v1/jobs", json={"graph": "slow_echo_graph", "items": items}, headers=headers
        ).json()
        # wait until a third of the chunks committed, then kill -9 mid-job
        deadline = time.monotonic() + 60
        while (
            httpx.get(f"{base}/v1/jobs/{job['id']}", headers=headers).json()["progress"][
                "chunks_done"
            ]
            < 10
        ):
            assert time.monotonic() < deadline, "the job made no progress"
            time.sleep(0.05)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)

    before = _committed_chunks(files["store"], job["id"])
    assert 10 <= len(before) < ITEMS // CHUNK, "kill it mid-job, not after"

    process = _start(files, port, stderr_path)  # same data dir: the job resumes by itself
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            view = httpx.get(f"{base}/v1/jobs/{job['id']}", headers=headers).json()
            if view["status"] in ("succeeded", "failed", "cancelled"):
                break
            assert time.monotonic() < deadline, view
            time.sleep(0.1)
        page = httpx.get(
            f"{base}/v1/jobs/{job['id']}/results", params={"limit": 1000}, headers=headers
        ).json()
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)

    assert view["status"] == "succeeded", view
    assert view["progress"]["items_done"] == ITEMS
    assert view["ledger"]["items"] == ITEMS and view["ledger"]["succeeded"] == ITEMS
    # exactly one result per item, in order, each the right answer
    assert [r["id"] for r in page["results"]] == list(range(ITEMS))
    assert all(r["echo"] == f"ITEM {r['id']}" for r in page["results"])

    # no committed chunk ran again: per the store...
    with open_store(files["store"]) as store:
        runs = store.chunk_runs(job["id"])
    assert set(runs) == set(range(ITEMS // CHUNK))
    assert all(runs[c] == 1 for c in before), {c: runs[c] for c in before}
    # ...and per the skill's own log of every batch it predicted
    predicted = Counter(
        text for line in files["log"].read_text().splitlines() for text in json.loads(line)
    )
    for chunk in before:
        for i in range(chunk * CHUNK, (chunk + 1) * CHUNK):
            assert predicted[f"item {i}"] == 1, (chunk, i)
    rerun = [c for c, n in runs.items() if n > 1]
    assert len(rerun) <= 2  # at most the chunks in flight when it died
    assert "job_resumed" in stderr_path.read_text()
