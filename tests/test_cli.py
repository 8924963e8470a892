"""The CLI end to end: real skills, real Ray, real files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestrator.cli.commands import app

ROOT = Path(__file__).resolve().parent.parent
TURN_GRAPH = ROOT / "graphs" / "outbound_call_turn.yaml"

runner = CliRunner()


def _write_jsonl(path: Path, lines: list) -> Path:
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    return path


@pytest.fixture
def turns(tmp_path):
    return _write_jsonl(
        tmp_path / "turns.jsonl",
        [
            {"id": "t1", "utterance": "what is my account balance", "label": "balance"},
            {"id": "t2", "utterance": "stop calling me and take me off your list"},
            {"id": "t3", "text": "the field is misnamed"},
            "{not json",
            {"id": "t5", "utterance": "yes", "lead_score": 0.9, "label": "yes"},
            "",
            {
                "id": "t7",
                "utterance": "how do i get to the airport from here",
                "label": "directions",
            },
        ],
    )


def test_run_turn_graph_on_ray(tmp_path, turns, ray_cluster, builtin_registry):
    out = tmp_path / "out.jsonl"
    result = runner.invoke(
        app, ["run", str(TURN_GRAPH), "--input", str(turns), "--output", str(out), "--json"]
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line.get("id") for line in lines] == ["t1", "t2", "t3", None, "t5", "t7"]
    by_id = {line["id"]: line for line in lines if line["id"]}
    assert by_id["t1"]["intent"] == "balance"
    assert by_id["t2"]["opted_out"] is True and by_id["t2"]["action"] == "end_call_do_not_call"
    assert by_id["t3"]["error"]["code"] == "invalid_item"
    assert "'utterance'" in by_id["t3"]["error"]["message"]
    assert lines[3]["error"]["message"].startswith("line 4: not valid JSON")
    assert set(by_id["t5"]) >= {
        "intent",
        "intent_confidence",
        "opted_out",
        "action",
        "reason",
        "escalate",
    }

    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["items"] == 6 and summary["succeeded"] == 4 and summary["failed"] == 2
    assert summary["labelled"] == 3 and summary["accuracy"] is not None
    assert summary["llm_calls"] == 0 and summary["items_per_s"] > 0
    assert summary["escalated"] == sum(1 for line in lines if line.get("escalate"))


def test_bad_graph_fails_before_ray_starts(tmp_path, turns, monkeypatch):
    import orchestrator.executors.ray as ray_executor

    def no_ray(*args, **kwargs):
        raise AssertionError("Ray must not start for a bad graph")

    monkeypatch.setattr(ray_executor, "connect", no_ray)
    graph = tmp_path / "bad.yaml"
    graph.write_text(
        TURN_GRAPH.read_text()
        .replace("skill: opt_out@prod", "skill: opt_outt@prod")
        .replace(
            "intent: intent.intent\n      intent_confidence",
            "intent: intent.intnt\n      intent_confidence",
        )
    )
    result = runner.invoke(
        app, ["run", str(graph), "--input", str(turns), "--output", str(tmp_path / "o.jsonl")]
    )
    assert result.exit_code == 2
    assert "step 'opt_out': unknown skill 'opt_outt'; did you mean 'opt_out'?" in result.output
    assert "step 'action'" in result.output and "no output 'intnt'" in result.output
    assert not (tmp_path / "o.jsonl").exists()


def test_validate_and_missing_input(tmp_path):
    ok = runner.invoke(app, ["validate", str(TURN_GRAPH)])
    assert ok.exit_code == 0 and "ok" in ok.output
    missing = runner.invoke(
        app, ["run", str(TURN_GRAPH), "--input", str(tmp_path / "nope.jsonl"), "--output", "x"]
    )
    assert missing.exit_code == 2 and "does not exist" in missing.output


def test_skills_list_json(builtin_registry):
    result = runner.invoke(app, ["skills", "list", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert {"turn_intent", "lead_score", "opt_out", "next_action"} <= set(rows)
    assert all(row["status"] == "ready" for row in rows.values())
    assert rows["turn_intent"]["aliases"] == ["prod"]
