"""Skill releases over HTTP: promote / rollback move ``prod`` and the running service follows
without a restart (real service on loopback, two really trained versions of a small skill)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from api_server import client, make_keys, serve_app

from orchestrator.config import Settings
from orchestrator.learning.train import train_text_classifier
from skills.data import clinc150

GRAPH = """\
name: mini_turn
inputs: {text: str}
steps:
  - id: label
    skill: mini
    inputs: {text: input.text}
outputs:
  label: label.label
  by: label.answered_by
"""


def _rows(per_intent: int, skip: int) -> list[tuple[str, str]]:
    intents = sorted({y for _, y in clinc150("train")})[:4]
    seen = dict.fromkeys(intents, 0)
    out = []
    for text, label in clinc150("train"):
        if label in seen:
            seen[label] += 1
            if skip < seen[label] <= skip + per_intent:
                out.append((text, label))
    return out


def _train(root: Path, skills: Path, rows: list[tuple[str, str]], tag: str) -> None:
    path = root / f"{tag}.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    train_text_classifier(path, name="mini", skills_dir=skills, val_fraction=0.25)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("release")
    skills, graphs = root / "skills", root / "graphs"
    _train(root, skills, _rows(12, 0), "v1")  # mini@1.0.0: prod
    _train(root, skills, _rows(12, 12), "v2")  # mini@1.1.0: canary
    graphs.mkdir()
    (graphs / "mini_turn.yaml").write_text(GRAPH)
    keys = make_keys()
    from orchestrator.service.app import create_app
    from orchestrator.service.settings import ServiceSettings

    settings = ServiceSettings(
        runtime=Settings(executor="local", data_dir=root / "data", skills_dir=skills),
        graphs_dir=graphs,
        api_keys=keys.configs,
    )
    with serve_app(create_app(settings)) as url:
        yield url, keys


def _answered_by(http) -> str:
    body = {"input": {"text": "what is my balance"}}
    response = http.post("/v1/graphs/mini_turn/invoke", json=body)
    assert response.status_code == 200, response.text
    return response.json()["by"]


def test_promote_and_rollback_take_effect_without_a_restart(service):
    url, keys = service
    with client(url, keys.admin) as admin, client(url, keys.writer) as writer:
        assert _answered_by(admin) == "mini@1.0.0"
        assert writer.post("/v1/skills/mini/promote").status_code == 403
        promoted = admin.post("/v1/skills/mini/promote")
        assert promoted.status_code == 200, promoted.text
        assert promoted.json()["prod"] == "mini@1.1.0"
        assert _answered_by(admin) == "mini@1.1.0"
        again = admin.post("/v1/skills/mini/promote")
        assert again.status_code == 409 and "no canary" in again.json()["detail"]
        listed = admin.get("/v1/skills/mini").json()
        aliases = {v["version"]: v["aliases"] for v in listed["versions"]}
        assert aliases == {"1.0.0": ["previous"], "1.1.0": ["prod"]}

        back = admin.post("/v1/skills/mini/rollback")
        assert back.status_code == 200 and back.json()["prod"] == "mini@1.0.0"
        assert _answered_by(admin) == "mini@1.0.0"
        assert admin.post("/v1/skills/mini/rollback").status_code == 409
        unknown = admin.post("/v1/skills/mimi/promote")
        assert unknown.status_code == 404 and "mini" in unknown.json()["detail"]
