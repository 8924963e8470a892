"""The outbound campaign example end to end, tiny, with the stub server as the big model.

Real leads (UCI Bank Marketing), real turns (CLINC150, opt_out's test set), real skills on the
local executor and the real-time path, real SQLite; only the big model is a stub.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from pathlib import Path

import pytest

from orchestrator import LocalExecutor, Runtime
from orchestrator.config import Settings
from orchestrator.graph.grounding import GROUNDED_SYSTEM_PROMPT
from orchestrator.llm.gateway import LLMGateway, Provider
from orchestrator.store.jobs import Store
from orchestrator.testing import StubLLMServer

CAMPAIGN = Path(__file__).resolve().parent.parent / "examples" / "outbound_campaign"
sys.path.insert(0, str(CAMPAIGN))

from campaign import (  # noqa: E402 - the example is a folder of scripts, not a package
    SUMMARY_SYSTEM,
    CampaignConfig,
    run_campaign,
    summary_reason,
)


def _big_model(request: dict) -> dict:
    """Summaries for summary requests; label-fenced answers for the baseline measurements."""
    messages = request["messages"]
    if messages[0]["content"] == SUMMARY_SYSTEM:
        return {"summary": "Asked about rates; call back on Friday.", "follow_up": "call_back"}
    items = json.loads(messages[-1]["content"].split("Items:\n", 1)[1])
    if messages[0]["content"] == GROUNDED_SYSTEM_PROMPT:  # an unsure FAQ reply: cite a passage
        return {
            "answers": {
                str(i["index"]): {"answer_id": i["passages"][0]["id"], "answer": "Grounded."}
                for i in items
            }
        }
    if "Skill: lead_score" in messages[-1]["content"]:
        return {
            "answers": {
                str(i["index"]): {"subscribe_probability": 0.4, "will_subscribe": False}
                for i in items
            }
        }
    return {"answers": {str(i["index"]): {"intent": "yes"} for i in items}}


@pytest.fixture
def campaign(builtin_registry, tmp_path, monkeypatch):
    monkeypatch.setenv("ORCHESTRATOR_DATA_DIR", str(tmp_path / "data"))
    config = CampaignConfig(
        leads=60, calls=16, max_summaries=3, measure_sample=1, output=tmp_path / "out"
    )
    with StubLLMServer(default=_big_model) as stub:
        gateway = LLMGateway([Provider(name="stub", base_url=stub.base_url, model="stub")])
        with Runtime(
            registry=builtin_registry,
            executor=LocalExecutor(),
            gateway=gateway,
            settings=Settings(executor="local"),
        ) as runtime:
            result = asyncio.run(run_campaign(config, runtime))
        requests = stub.chat_requests
    return result, requests, tmp_path


def test_summaries_only_for_calls_the_rule_picks(campaign):
    result, requests, _ = campaign
    calls = result.calls
    assert len(calls) == 16 and all(call.turns for call in calls)
    needed = [call for call in calls if summary_reason(call)]
    assert needed, "the campaign should have calls that need a summary"
    asked = [
        re.search(r"Lead (lead-\d+):", r.json["messages"][-1]["content"]).group(1)
        for r in requests
        if r.json["messages"][0]["content"] == SUMMARY_SYSTEM
    ]
    # at most --max-summaries, the best-ranked of the calls the rule picks, and only those
    assert sorted(asked) == sorted(call.lead_id for call in needed[:3])
    for call in calls:
        expected = (
            "not_needed"
            if summary_reason(call) is None
            else ("written" if call in needed[:3] else "deferred")
        )
        assert call.summary_status == expected, call
        assert call.summary_reason == summary_reason(call)
    opted_out = [call for call in calls if call.outcome == "opted_out"]
    assert all(call.summary_status == "not_needed" for call in opted_out)


def test_outcomes_per_lead_and_the_cost_report(campaign):
    result, _, tmp_path = campaign
    out = tmp_path / "out"
    rows = [json.loads(line) for line in (out / "leads.jsonl").read_text().splitlines()]
    assert len(rows) == 60 and len({row["lead_id"] for row in rows}) == 60
    called = [row for row in rows if row["called"]]
    assert len(called) == 16 and {row["rank"] for row in called} == set(range(1, 17))
    assert all(row["outcome"] and row["summary_status"] for row in called)
    assert (out / "leads.csv").read_text().startswith("lead_id,rank,subscribe_probability")
    figures = json.loads((out / "campaign.json").read_text())
    turns = figures["turns"]
    assert figures["calls"] == 16 and figures["summaries_written"] == 3
    ledger = result.ledger
    replies = figures["replies"]
    # all big model: every lead scored, every turn classified, every question turn replied to
    # (the FAQ step is gated on the answer_question action), every call summarised
    assert 0 < replies["questions"] < turns
    baseline = 60 + turns + replies["questions"] + 16
    assert ledger.baseline_llm_calls == baseline
    assert replies["questions"] == replies["kb"] + replies["big_model"] + replies["not_sent"]
    # the summaries and the grounded replies to unsure questions, nothing else
    assert ledger.llm_calls == 3 + replies["grounded_calls"]
    assert figures["runtime"]["llm_calls"] == 3 + replies["grounded_calls"]
    assert figures["baseline"]["llm_calls"] == baseline
    text = (out / "report.md").read_text()
    assert "## The campaign" in text and "| 60 | 16 |" in text
    for chart in ("savings.png", "escalation.png", "answered.png", "calls_and_summaries.png"):
        assert (out / chart).read_bytes()[:4] == b"\x89PNG"
    measured = json.loads((out / "report.json").read_text())["measured"]
    assert [m["calls"] for m in measured] == [1, 1, 3]  # a lead, a turn, the real summaries
    with Store(tmp_path / "data" / "orchestrator.db") as store:
        campaign_job, lead_job = store.get(result.campaign_id), store.get(result.lead_job_id)
    assert campaign_job.owner == "campaign" and campaign_job.ledger["baseline_llm_calls"] == (
        baseline
    )
    assert lead_job.graph == "lead_scoring" and lead_job.items_total == 60
