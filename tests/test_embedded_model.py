"""The embedded model: with no provider configured, planning works offline through llama.cpp."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from orchestrator import load_graph
from orchestrator.cli.commands import app
from orchestrator.llm.audit import AuditLog


def test_plan_with_no_configuration_uses_the_embedded_model(
    tmp_path, monkeypatch, builtin_registry
):
    monkeypatch.delenv("ORCHESTRATOR_LLM_PROVIDERS", raising=False)
    monkeypatch.delenv("ORCHESTRATOR_LLM_PROVIDERS_FILE", raising=False)
    monkeypatch.setenv("ORCHESTRATOR_DATA_DIR", str(tmp_path))
    # without the sentence encoder the model itself says what the job returns (with it, plain
    # tasks need no model call at all: tests/test_planner.py)
    monkeypatch.setattr("orchestrator.llm.encoder.sentence_encoder", lambda _=None: None)
    out = tmp_path / "plan.yaml"
    task = "classify each call turn's intent and decide the next action"
    args = ["plan", task, "--fields", "utterance", "--output", str(out)]
    result = CliRunner().invoke(app, args)
    if result.exit_code == 0:
        spec = load_graph(out)  # parses, and the CLI validated and dry-ran it
        assert spec.inputs["utterance"].type == "str"
        assert {s.skill for s in spec.steps} <= {"turn_intent", "opt_out", "next_action"}
    else:  # the tiny model may answer that nothing fits: a clear error, never a bad graph
        assert result.exit_code == 2 and "plan_impossible" in result.output, result.output
        assert not out.exists()
    # every call went to the embedded server on loopback, and was audited
    with AuditLog(tmp_path / "orchestrator.db") as audit:
        rows = audit.records()
    assert rows and {r.provider for r in rows} == {"embedded"}
    assert all(r.base_url_host.startswith("127.0.0.1:") for r in rows)
    print(json.dumps({"planned": result.exit_code == 0, "calls": len(rows)}))
