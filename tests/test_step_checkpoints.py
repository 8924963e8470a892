"""A service that dies in the middle of a chunk resumes that chunk after its last finished step.

The graph has two steps, ``mark`` then ``echo``; each logs every batch it predicts (the skills'
own witness of what ran). ``echo`` kills its own process (SIGKILL) on the chunk that starts at
item ``KILL_AT``, on the first run only: deterministically mid-chunk, after ``mark`` finished that
chunk. After a restart on the same data dir the job completes with one result per item, and
``mark`` ran exactly once for every item — the killed chunk resumed at ``echo`` from its LangGraph
checkpoint — while ``echo`` ran the killed chunk twice.
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
import yaml
from api_server import ROOT, free_port, start_service_process

from orchestrator.service.auth import new_key
from orchestrator.store.location import open_store

ITEMS = 40
CHUNK = 5
KILL_AT = 15  # the fourth chunk

SKILLS = """
import json, os, signal
from pydantic import BaseModel
from orchestrator import Predictions, skill

class Text(BaseModel):
    text: str

class Marked(BaseModel):
    marked: str

class Echo(BaseModel):
    echo: str

def _log(name, texts):
    with open(os.environ["STEP_LOG"], "a") as fh:
        fh.write(json.dumps([name, list(texts)]) + "\\n")

@skill(name="mark", version="1.0.0", description="Marks each text.", batched=True,
       input=Text, output=Marked)
def mark(batch):
    _log("mark", batch["text"])
    return Predictions({"marked": [t + "!" for t in batch["text"]]}, [1.0] * len(batch["text"]))

@skill(name="echo", version="1.0.0", description="Upper-cases; dies once, mid-job.",
       batched=True, input=Text, output=Echo)
def echo(batch):
    _log("echo", batch["text"])
    trigger = os.environ["KILL_TRIGGER"]
    if batch["text"][0] == os.environ["KILL_AT_TEXT"] and os.path.exists(trigger):
        os.remove(trigger)
        os.kill(os.getpid(), signal.SIGKILL)
    return Predictions({"echo": [t.upper() for t in batch["text"]]}, [1.0] * len(batch["text"]))
"""

GRAPH = """
name: two_steps
inputs: {text: str}
steps:
  - {id: mark, skill: mark@prod, inputs: {text: input.text}}
  - {id: echo, skill: echo@prod, inputs: {text: mark.marked}}
outputs: {echo: echo.echo}
"""


def _service(tmp_path: Path) -> tuple[Path, str, dict[str, str]]:
    skills = tmp_path / "ckpt_skills"
    (skills / "pair").mkdir(parents=True)
    (skills / "__init__.py").write_text("")
    (skills / "pair" / "__init__.py").write_text("")
    (skills / "pair" / "skill.py").write_text(textwrap.dedent(SKILLS))
    for name in ("mark", "echo"):
        folder = skills / f"{name}_manifest"
        folder.mkdir()
        manifest = {
            "name": name,
            "version": "1.0.0",
            "entrypoint": f"ckpt_skills.pair.skill:{name}",
            "aliases": ["prod"],
        }
        (folder / "manifest.yaml").write_text(yaml.safe_dump(manifest))
    graphs = tmp_path / "graphs"
    graphs.mkdir()
    (graphs / "two_steps.yaml").write_text(GRAPH)
    key, digest = new_key()
    config = tmp_path / "service.yaml"
    runtime = {
        "executor": "local",
        "chunk_size": CHUNK,
        "max_inflight_chunks": 1,  # one chunk in flight: the kill lands in a known chunk
        "skills_dir": str(skills),
        "data_dir": str(tmp_path / "data"),
    }
    service = {
        "graphs_dir": str(graphs),
        "api_keys": [{"name": "backend", "sha256": digest, "scopes": ["admin"]}],
    }
    config.write_text(yaml.safe_dump({"runtime": runtime, **service}))
    env = {
        **os.environ,
        "STEP_LOG": str(tmp_path / "steps.log"),
        "KILL_TRIGGER": str(tmp_path / "kill-once"),
        "KILL_AT_TEXT": f"item {KILL_AT}!",
        "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}",
    }
    return config, key, env


def _wait(process: subprocess.Popen, base: str, job_id: str, headers: dict) -> dict:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return {"status": "process died"}
        try:
            view = httpx.get(f"{base}/v1/jobs/{job_id}", headers=headers, timeout=2).json()
        except httpx.HTTPError:
            continue
        if view["status"] in ("succeeded", "failed", "cancelled"):
            return view
        time.sleep(0.05)
    raise AssertionError("the job did not end")


def test_a_chunk_caught_by_a_crash_resumes_after_its_last_finished_step(tmp_path):
    config, key, env = _service(tmp_path)
    (tmp_path / "kill-once").write_text("")
    headers = {"Authorization": f"Bearer {key}"}
    port, log = free_port(), tmp_path / "service.stderr"
    base = f"http://127.0.0.1:{port}"
    items = [{"id": i, "text": f"item {i}"} for i in range(ITEMS)]

    first = start_service_process(config, port, log, env)
    job = httpx.post(
        f"{base}/v1/jobs", json={"graph": "two_steps", "items": items}, headers=headers
    )
    job_id = job.json()["id"]
    assert _wait(first, base, job_id, headers) == {"status": "process died"}
    first.wait(10)
    assert first.returncode == -signal.SIGKILL
    with open_store(tmp_path / "data" / "orchestrator.db") as store:
        committed = store.completed_chunks(job_id)
    assert committed == {0, 1, 2}  # died inside chunk 3

    second = start_service_process(config, port, log, env)  # the job resumes by itself
    try:
        view = _wait(second, base, job_id, headers)
        page = httpx.get(f"{base}/v1/jobs/{job_id}/results", headers=headers).json()
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(20)
    assert view["status"] == "succeeded" and view["progress"]["items_done"] == ITEMS
    assert [r["echo"] for r in page["results"]] == [f"ITEM {i}!" for i in range(ITEMS)]

    runs: Counter[tuple[str, str]] = Counter()
    for line in (tmp_path / "steps.log").read_text().splitlines():
        step, texts = json.loads(line)
        runs.update((step, text) for text in texts)
    assert all(runs["mark", f"item {i}"] == 1 for i in range(ITEMS)), "mark ran again"
    killed = {f"item {i}!" for i in range(KILL_AT, KILL_AT + CHUNK)}
    assert {t for (s, t), n in runs.items() if s == "echo" and n == 2} == killed
    assert "chunk_resumed" in log.read_text()
