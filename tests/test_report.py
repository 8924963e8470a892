"""The all-big-model baseline in every ledger, and `orchestrator report` on recorded jobs.

Real skills (CLINC150 turn_intent on ONNX), the local executor, real SQLite; the big model is the
stub OpenAI-compatible server (a fake only at the edge we don't own).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestrator import LocalExecutor, Runtime
from orchestrator.accounting.ledger import Ledger
from orchestrator.cli.commands import app
from orchestrator.config import Settings
from orchestrator.config.prices import price_of
from orchestrator.graph.baseline import (
    baseline_messages,
    baseline_steps,
    gate_of,
    message_chars,
    tokens_of,
)
from orchestrator.llm.gateway import LLMGateway, Provider
from orchestrator.runtime.report import usd
from orchestrator.store.jobs import ChunkOutcome, JobDraft, Store, ledger_from_raw
from orchestrator.testing import StubLLMServer
from skills.data import clinc150_eval

ROOT = Path(__file__).resolve().parent.parent
TURN_GRAPH = ROOT / "graphs" / "outbound_call_turn.yaml"
REPLY_GRAPH = ROOT / "graphs" / "outbound_call_reply.yaml"
BASELINE_NAMES = (
    "baseline_llm_calls",
    "baseline_prompt_tokens",
    "baseline_completion_tokens",
    "baseline_cost_usd",
)

runner = CliRunner()


def _turns(count: int) -> list[dict]:
    turns = clinc150_eval("test")[::37][:count]
    return [
        {"id": f"t{n}", "utterance": text, "label": label} for n, (text, label) in enumerate(turns)
    ]


def _oracle(request: dict) -> dict:
    """Answers every escalated turn 'balance' (a valid label), for the items the prompt lists."""
    items = json.loads(request["messages"][-1]["content"].split("Items:\n", 1)[1])
    return {"answers": {str(item["index"]): {"intent": "balance"} for item in items}}


def test_every_ledger_carries_the_counted_baseline(builtin_registry):
    items = _turns(40)
    with Runtime(registry=builtin_registry, executor=LocalExecutor()) as runtime:
        graph = runtime.compile(TURN_GRAPH)
        result = runtime.run(graph, items)
    ledger = result.ledger
    (step,) = baseline_steps(graph.resolved)  # turn_intent; opt_out and next_action are rules
    assert step.id == "intent"
    assert ledger.baseline_llm_calls == len(items) * 1
    chars = sum(
        message_chars(baseline_messages(step, row, {"text": item["utterance"]}))
        for row, item in enumerate(items)
    )
    assert ledger.baseline_prompt_tokens == tokens_of(chars)  # one chunk: one rounding
    assert ledger.baseline_completion_tokens > 0
    price = price_of(ledger.baseline_price_model)
    assert price.model == "gpt-4o-mini"
    assert ledger.baseline_cost_usd == pytest.approx(
        price.cost_usd(ledger.baseline_prompt_tokens, ledger.baseline_completion_tokens)
    )
    view = ledger.to_dict()
    assert all(name in view for name in BASELINE_NAMES) and view["baseline_method"] == "counted"
    assert view["llm_calls"] == 0  # nothing escalated to a big model: flagged only
    assert ledger.answered["small_model"] + ledger.answered["flagged"] == len(items)
    assert ledger.answered["flagged"] == ledger.escalated > 0


def test_a_gated_step_counts_in_the_baseline_only_for_the_items_its_gate_let_in(
    builtin_registry,
):
    # outbound_call_reply's faq step answers only turns whose next action is answer_question
    items = _turns(60)
    with Runtime(registry=builtin_registry, executor=LocalExecutor()) as runtime:
        graph = runtime.compile(REPLY_GRAPH)
        result = runtime.run(graph, items)
    steps = {s.id: s for s in baseline_steps(graph.resolved)}
    assert set(steps) == {"intent", "faq"}  # opt_out and next_action are rules
    assert gate_of(steps["intent"]) is None
    gate = gate_of(steps["faq"])
    assert gate is not None and gate.column == "action.action"
    assert gate.labels == {"answer_question"}
    actions = {r.id: r.outputs["action"] for r in result.results}
    asked = [n for n, item in enumerate(items) if actions[item["id"]] in gate.labels]
    assert 0 < len(asked) < len(items)  # the gate let some turns in, not all
    ledger = result.ledger
    assert ledger.baseline_llm_calls == len(items) + len(asked)
    chars = sum(
        message_chars(baseline_messages(steps["intent"], row, {"text": item["utterance"]}))
        for row, item in enumerate(items)
    )
    chars += sum(
        message_chars(
            baseline_messages(
                steps["faq"],
                row,
                {"text": items[row]["utterance"], "when": actions[items[row]["id"]]},
            )
        )
        for row in asked
    )
    assert ledger.baseline_prompt_tokens == tokens_of(chars)  # one chunk: one rounding


def test_escalated_items_count_as_big_model_answers(builtin_registry, tmp_path, monkeypatch):
    monkeypatch.setenv("ORCHESTRATOR_DATA_DIR", str(tmp_path))
    items = _turns(40)
    with StubLLMServer(default=_oracle) as stub:
        gateway = LLMGateway([Provider(name="stub", base_url=stub.base_url, model="stub")])
        settings = Settings(escalate=True, executor="local")
        with Runtime(
            registry=builtin_registry, executor=LocalExecutor(), gateway=gateway, settings=settings
        ) as runtime:
            ledger = runtime.run(TURN_GRAPH, items).ledger
    assert ledger.answered["big_model"] == ledger.escalated > 0
    assert 0 < ledger.llm_calls < ledger.baseline_llm_calls == len(items)


def test_chunk_ledgers_add_up_in_the_store(tmp_path):
    with Store(tmp_path / "jobs.db") as store:
        job, _ = store.create_job(JobDraft(owner="me", graph="g", chunk_size=2))
        for index in range(2):
            part = Ledger(job_id=job.id, graph="g", items=2, baseline_llm_calls=2)
            part.baseline_prompt_tokens, part.baseline_cost_usd = 100, 0.5
            part.baseline_price_model, part.answered["small_model"] = "gpt-4o-mini", 2
            store.commit_chunk(
                job.id,
                ChunkOutcome(chunk_index=index, first_idx=2 * index, results=[], ledger=part),
            )
        raw = store.get(job.id).ledger
    ledger = ledger_from_raw(raw)
    assert (ledger.baseline_llm_calls, ledger.baseline_prompt_tokens) == (4, 200)
    assert ledger.baseline_cost_usd == pytest.approx(1.0)
    assert ledger.answered == {"small_model": 4} and ledger.baseline_price_model == "gpt-4o-mini"


def _run_cli_job(tmp_path: Path, count: int) -> str:
    source, out = tmp_path / "turns.jsonl", tmp_path / "out.jsonl"
    source.write_text("".join(json.dumps(item) + "\n" for item in _turns(count)))
    args = ["run", str(TURN_GRAPH), "--input", str(source), "--output", str(out), "--json"]
    result = runner.invoke(app, [*args, "--executor", "local"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])["job_id"]


def _stored_ledger(job_id: str) -> dict:
    with Store(Settings().data_dir / "orchestrator.db") as store:
        job = store.get(job_id)
    assert job is not None and job.owner == "cli" and job.status == "succeeded"
    return ledger_from_raw(job.ledger).to_dict()


def test_report_writes_markdown_and_charts_with_the_ledgers_figures(tmp_path, builtin_registry):
    job_id = _run_cli_job(tmp_path, 30)
    ledger = _stored_ledger(job_id)
    assert ledger["items"] == 30 and ledger["baseline_llm_calls"] == 30
    out = tmp_path / "report"
    result = runner.invoke(app, ["report", job_id, "--output", str(out), "--measure-sample", "0"])
    assert result.exit_code == 0, result.output
    for name in ("savings.png", "escalation.png", "answered.png"):
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
        import matplotlib.image

        assert matplotlib.image.imread(out / name).shape[0] > 100  # decodes
    text = (out / "report.md").read_text()
    calls, baseline = ledger["llm_calls"], ledger["baseline_llm_calls"]
    assert f"| big-model calls | {calls:,} | {baseline:,} |" in text
    assert (
        f"| prompt tokens | {ledger['llm_prompt_tokens']:,} | {ledger['baseline_prompt_tokens']:,} |"
        in text
    )
    assert (
        f"| completion tokens | {ledger['llm_completion_tokens']:,} "
        f"| {ledger['baseline_completion_tokens']:,} |"
    ) in text
    assert f"| cost (gpt-4o-mini) | {usd(0.0)} | {usd(ledger['baseline_cost_usd'])} |" in text
    intent = "turn_intent@1.0.0"
    escalated = ledger["skill_escalated"][intent]
    assert f"| {intent} | 30 | {escalated:,} | {escalated / 30:.1%} |" in text
    assert "gpt-4o-mini at $0.15 / $0.60 per 1M" in text
    figures = json.loads((out / "report.json").read_text())
    assert figures["baseline"]["llm_calls"] == baseline and figures["runtime"]["llm_calls"] == calls
    assert figures["ledger"]["baseline_prompt_tokens"] == ledger["baseline_prompt_tokens"]


def test_report_prices_with_the_chosen_model(tmp_path, builtin_registry):
    job_id = _run_cli_job(tmp_path, 5)
    out = tmp_path / "report"
    result = runner.invoke(
        app,
        ["report", job_id, "-o", str(out), "--measure-sample", "0", "--price-model", "gpt-4o"],
    )
    assert result.exit_code == 0, result.output
    assert "gpt-4o at $2.50 / $10.00 per 1M" in (out / "report.md").read_text()
    bad = runner.invoke(app, ["report", job_id, "--price-model", "no-such-model"])
    assert bad.exit_code == 2 and "no-such-model" in bad.output


def test_an_unknown_job_is_a_setup_error_naming_where_it_looked(tmp_path):
    result = runner.invoke(app, ["report", "no-such-job", "-o", str(tmp_path / "r")])
    assert result.exit_code == 2
    assert "no-such-job" in result.output and "orchestrator.db" in result.output
    assert not (tmp_path / "r").exists()


def test_measure_sample_sends_items_the_baseline_way_and_records_the_stub_tokens(
    tmp_path, monkeypatch, builtin_registry
):
    job_id = _run_cli_job(tmp_path, 30)
    out = tmp_path / "report"
    with StubLLMServer(default=_oracle) as stub:
        providers = [{"name": "stub", "base_url": stub.base_url, "model": "stub-model"}]
        monkeypatch.setenv("ORCHESTRATOR_LLM_PROVIDERS", json.dumps(providers))
        result = runner.invoke(app, ["report", job_id, "-o", str(out), "--measure-sample", "4"])
        requests = stub.chat_requests
    assert result.exit_code == 0, result.output
    assert len(requests) == 4  # one call per sampled item, one baseline step
    for request in requests:  # the cascade's prompt, one item each
        items = json.loads(request.json["messages"][-1]["content"].split("Items:\n", 1)[1])
        assert len(items) == 1 and set(items[0]) == {"index", "text"}
    prompt = sum(
        len("\n".join(m["content"] for m in r.json["messages"]).split()) for r in requests
    )  # the stub counts whitespace-separated words
    (measured,) = json.loads((out / "report.json").read_text())["measured"]
    assert (measured["calls"], measured["failed"]) == (4, 0)
    assert measured["prompt_tokens"] == prompt
    assert measured["completion_tokens"] == 4 * len(json.dumps(_oracle(requests[0].json)).split())
    assert (measured["provider"], measured["model"], measured["scale_to"]) == (
        "stub",
        "stub-model",
        30,
    )
    text = (out / "report.md").read_text()
    assert re.search(r"\| outbound_call_turn \| stub / stub-model \| 4 \(0\) \|", text)
