"""``orchestrator review answer`` closes the ticket and replaces the job's result in one
transaction, like ``POST /v1/reviews/{id}/answer`` (issue #16): when the job store refuses the
result, the ticket stays waiting instead of reading answered beside a stale result."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import yaml
from hardening_support import write_graphs
from typer.testing import CliRunner

from orchestrator import Registry, Runtime
from orchestrator.cli.commands import app
from orchestrator.config import Settings
from orchestrator.config.locations import sqlite_path
from orchestrator.graph.spec import load_graph
from orchestrator.store.location import open_store


def toy_skills_folder(root: Path) -> Path:
    """The toy skills (``tests/toy_skills.py``) as a skills folder the CLI can load."""
    for name in ("length", "shout", "decide"):
        folder = root / name
        folder.mkdir(parents=True)
        manifest = {"name": name, "version": "1.0.0", "entrypoint": f"toy_skills:{name}"}
        (folder / "manifest.yaml").write_text(yaml.safe_dump({**manifest, "aliases": ["prod"]}))
    return root


def test_the_cli_answer_is_one_transaction(tmp_path, monkeypatch):
    skills = toy_skills_folder(tmp_path / "toyskills")
    monkeypatch.setenv("ORCHESTRATOR_SKILLS_DIR", str(skills))
    monkeypatch.setenv("ORCHESTRATOR_REVIEW_INPUTS", "raw")  # no PII guard to load: faster
    settings = Settings(executor="local", data_dir=tmp_path / "data", skills_dir=skills)
    graph = load_graph(write_graphs(tmp_path / "graphs") / "toy_review.yaml")
    # under 3 characters: held for a person; the empty text leaves the PII guard unloaded when
    # its answer becomes an example (the guard's first load costs seconds)
    texts = ["hello there", "a", ""]
    with Runtime(registry=Registry.from_folder(skills), settings=settings) as runtime:
        runtime.run(graph, [{"id": f"t{i}", "utterance": u} for i, u in enumerate(texts)])
        first, second = runtime.reviews.queue.list()
    with open_store(settings.store_location):  # the job store's tables, beside the queue's
        pass
    db = sqlite3.connect(sqlite_path(settings.store_location), isolation_level=None)
    for ticket in (first, second):  # the service stored the held items' results
        held = {"id": ticket.item_id, "review": {"status": "waiting"}}
        db.execute(
            "INSERT INTO job_results (job_id, idx, chunk_index, ok, result) VALUES (?, ?, 0, 1, ?)",
            (ticket.job_id, ticket.item_idx, json.dumps(held)),
        )
    # the job store refuses the write (a full disk, a lost connection): nothing may stay half done
    db.execute(
        "CREATE TRIGGER refuse BEFORE UPDATE ON job_results BEGIN "
        "SELECT RAISE(ABORT, 'database or disk is full'); END"
    )
    where = ["--data-dir", str(tmp_path / "data")]
    runner = CliRunner()
    refused = runner.invoke(app, ["review", "answer", str(first.id), "--set", "length=1", *where])
    assert refused.exit_code != 0
    status = db.execute("SELECT status FROM reviews WHERE id = ?", (first.id,)).fetchone()
    assert status == ("waiting",)  # not "answered" beside a result that still says waiting

    db.execute("DROP TRIGGER refuse")
    answered = runner.invoke(app, ["review", "answer", str(second.id), "--set", "length=7", *where])
    assert answered.exit_code == 0, answered.output
    ticket = db.execute("SELECT status FROM reviews WHERE id = ?", (second.id,)).fetchone()
    row = db.execute(
        "SELECT result FROM job_results WHERE job_id = ? AND idx = ?",
        (second.job_id, second.item_idx),
    ).fetchone()
    db.close()
    assert ticket == ("answered",)
    result = json.loads(row[0])
    assert result["length"] == 7 and result["review"]["status"] == "answered"
