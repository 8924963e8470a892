"""BENCHMARKS.md is written from the results of ``bench/run_all.py`` and from nothing else.

``bench/run_all.py --quick`` takes minutes (it asks the embedded big model), so these tests check
the Markdown writer instead: every number it prints comes from the results dict, and the
BENCHMARKS.md in the tree is exactly what the writer makes of the JSON next to it.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
# A number standing alone: not part of a word ("p99", "SmolLM2", "135M") nor of a longer number.
NUMBER = re.compile(r"(?<![\w.,])\d[\d,]*(?:\.\d+)?(?!\w)")


@functools.cache
def _writer() -> ModuleType:
    """bench/benchmarks_md.py, loaded from its file (bench/ is not a package)."""
    name = "bench_benchmarks_md"
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / "benchmarks_md.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


def _walk(value: Any) -> tuple[list[float], list[str]]:
    """Every number and every string in a JSON value."""
    if isinstance(value, bool) or value is None:
        return [], []
    if isinstance(value, int | float):
        return [float(value)], []
    if isinstance(value, str):
        return [], [value]
    items = value.values() if isinstance(value, dict) else value
    numbers: list[float] = []
    strings: list[str] = []
    for item in items:
        n, s = _walk(item)
        numbers += n
        strings += s
    return numbers, strings


def unexplained_numbers(markdown: str, results: dict[str, Any]) -> list[str]:
    """Numbers in ``markdown`` that are no number of ``results`` at the precision shown.

    Text copied from the results' strings (versions, dates, the command line) is taken out first.
    """
    numbers, strings = _walk(results)
    for text in sorted(set(strings), key=len, reverse=True):
        if len(text) > 1:
            markdown = markdown.replace(text, " ")
    missing = []
    for token in NUMBER.findall(markdown):
        shown = float(token.replace(",", ""))
        decimals = len(token.split(".")[1]) if "." in token else 0
        tolerance = 0.5 * 10**-decimals + 1e-9
        # the pattern takes no sign ("gain -0.323" shows 0.323): compare magnitudes
        if not any(abs(abs(v) - shown) <= tolerance for v in numbers):
            missing.append(token)
    return missing


def sample_results() -> dict[str, Any]:
    """A results dict shaped like run_all's, with figures no fixed text could contain."""
    loads = {"loadavg_before": [1.23, 2.34, 3.45], "loadavg_after": [4.56, 5.67, 6.78]}
    row = {"executor": "ray", "items": 7321, "runs": [12301.7, 12345.6, 12399.1]}
    return {
        "command": ".venv/bin/python bench/run_all.py --items 7321",
        "json_path": "bench/benchmarks.json",
        "machine": {
            "date": "2031-01-02T03:04:05+00:00",
            "cpu_model": "Test CPU 9000",
            "cpu_count": 7,
            "cpu_affinity": 6,
            "ram_gib": 31.4,
            "os": "Debian GNU/Linux 12 (bookworm)",
            "platform": "Linux-6.1-x86_64",
            "python": "3.11.7",
            "versions": {"onnxruntime": "1.32.0", "ray": "2.60.0"},
            "loadavg_start": [0.11, 0.22, 0.33],
            "loadavg_end": [0.44, 0.55, 0.66],
            "wall_s": 654.3,
        },
        "sections": {
            "throughput": {
                "items": 7321,
                "batch": 1024,
                "repeat": 3,
                "per_item_repeat": 1,
                "ray_startup_s": 8.76,
                "section_wall_s": 97.5,
                **loads,
                "rows": [
                    {
                        **row,
                        "path": "limit",
                        "executor": "in-process",
                        "items_per_s": 98765.4,
                        "ratio_to_limit": 1.0,
                        "vs_plain_langgraph": 432.1,
                        "accuracy": None,
                    },
                    {
                        **row,
                        "path": "Runtime.run, outbound_call_turn graph",
                        "items_per_s": 12345.6,
                        "ratio_to_limit": 0.125,
                        "vs_plain_langgraph": 54.07,
                        "accuracy": 0.8067,
                        "headline": True,
                    },
                ],
            },
            "big_model": {
                "items": 217,
                "seed": 5,
                "threshold": 0.6451,
                "items_per_call": 13,
                "provider": "embedded (smollm2-135m-instruct)",
                "section_wall_s": 301.2,
                **loads,
                "rows": [
                    {
                        "path": "every turn to the big model",
                        "items": 217,
                        "to_big_model": 217,
                        "answered_by_big_model": 203,
                        "requests": 19,
                        "requests_failed": 2,
                        "llm_calls": 17,
                        "prompt_tokens": 17123,
                        "completion_tokens": 2987,
                        "tokens": 20110,
                        "wall_s": 211.37,
                        "items_per_s": 1.03,
                        "accuracy": 0.0461,
                    },
                    {
                        "path": "turn graph with the cascade",
                        "items": 217,
                        "to_big_model": 71,
                        "answered_by_big_model": 69,
                        "requests": 6,
                        "requests_failed": 0,
                        "llm_calls": 6,
                        "prompt_tokens": 6012,
                        "completion_tokens": 911,
                        "tokens": 6923,
                        "wall_s": 66.61,
                        "items_per_s": 3.26,
                        "accuracy": 0.6913,
                        "kept_by_small_model": 146,
                        "kept_accuracy": 0.9589,
                        "degraded": 2,
                    },
                ],
                "ratio": {"llm_calls": 2.83, "tokens": 2.9, "wall_s": 3.17},
                "rounds": [
                    {
                        "round": 0,
                        "order": "every turn first",
                        "items": 109,
                        "all_big_model_wall_s": 101.26,
                        "cascade_wall_s": 30.5,
                    },
                    {
                        "round": 1,
                        "order": "cascade first",
                        "items": 108,
                        "all_big_model_wall_s": 110.12,
                        "cascade_wall_s": 36.11,
                    },
                ],
            },
            "plan_cache": {"error": "ConfigError: no model", **loads, "section_wall_s": 0.4},
            "latency": {
                "requests": 2000,
                "limit_s": 20.0,
                "section_wall_s": 33.3,
                **loads,
                "phases": [
                    {
                        "phase": "open loop @ 200/s",
                        "clients": 16,
                        "requests": 1999,
                        "errors": 0,
                        "requests_per_s": 199.9,
                        "p50_ms": 3.456,
                        "p90_ms": 4.26,
                        "p99_ms": 7.891,
                        "max_ms": 13.89,
                    },
                ],
            },
            **new_sections(loads),
        },
    }


def new_sections(loads: dict[str, Any]) -> dict[str, Any]:
    """two_tiers, bakeoff, distill and kb, shaped as run_all writes them (hand-written figures)."""
    tier = {"seen": 3081, "kept": 1553, "kept_accuracy": 0.9957, "threshold": 0.612345}
    return {
        "two_tiers": {
            "goal": {"coverage": 0.9, "selective_accuracy": 0.97, "labels": 77},
            "train_per_label": None,
            "test_per_label": None,
            "measured_at": "2031-01-02T03:04:05+00:00",
            "section_wall_s": 812.4,
            **loads,
            "rows": [
                {
                    "dataset": "BANKING77",
                    "labels": 77,
                    "train_rows": 10003,
                    "test_rows": 3081,
                    "train_s": 271.3,
                    "eval_s": 21.7,
                    "single": {"coverage": 0.7841, "selective_accuracy": 0.9782, "escalated": 667},
                    "chain": {"coverage": 0.8682, "selective_accuracy": 0.9813, "escalated": 409},
                    "escalations_cut_pct": 38.7,
                    "tiers": [
                        {**tier, "skill": "bench_banking77@1.0.0"},
                        {"skill": "bench_banking77_minilm@1.0.0", "seen": 1528, "kept": 1119,
                         "kept_accuracy": 0.9611, "threshold": 0.754321},
                    ],
                    "meets_goal": False,
                    "commands": ["orchestrator skills train text-classifier --name bench_banking77",
                                 "orchestrator skills eval bench_banking77 --json"],
                    "warning": None,
                },
            ],
        },
        "bakeoff": {
            "skill": "turn_intent@1.0.0",
            "rows": 5501,
            "unsure": 1363,
            "measured": 31,
            "margin": 0.05,
            "recommended": None,
            "wall_s": 187.6,
            "section_wall_s": 201.9,
            **loads,
            "small": {
                "tiers": ["turn_intent@1.0.0", "turn_intent_minilm@1.0.0"],
                "thresholds": [0.9121, 0.7544],
                "items": 31,
                "correct": 11,
                "accuracy": 0.3548,
                "latency_p50_s": 0.0123,
                "latency_p95_s": 0.0456,
            },
            "providers": [
                {
                    "provider": "embedded",
                    "model": "smollm2-135m-instruct",
                    "items": 31,
                    "provider_accuracy": 0.0323,
                    "provider_correct": 1,
                    "failures": 3,
                    "calls": 4,
                    "tokens": 4417,
                    "cost_usd": 0.0,
                    "latency_p50_s": 42.51,
                    "latency_p95_s": 145.38,
                    "verdict": "worse",
                    "gain": -0.3226,
                    "p_value": 0.0021,
                },
            ],
        },
        "distill": {
            "big_model": "ORACLE (CLINC150 gold labels)",
            "tiers": "tfidf,minilm",
            "target_accuracy": 0.95,
            "base_per_intent": 40,
            "traffic_per_intent": 20,
            "goal_cut_pct": 40.0,
            "cut_pct_all": 21.6,
            "cut_pct_in_scope": 48.9,
            "goal_met_all": False,
            "goal_met_in_scope": True,
            "cut_pct_equal_all": 30.1,
            "cut_pct_equal_in_scope": 52.0,
            "goal_met_equal_all": False,
            "goal_met_equal_in_scope": True,
            "reference_accuracy": 0.9634,
            "section_wall_s": 496.2,
            **loads,
            "rounds": [
                {"round": 0, "version": "clinc_intent@1.0.0", "train_rows": 7100, "traffic": 0,
                 "escalated_to_oracle": 0, "threshold": 0.4113, "escalation_all": 0.2396,
                 "escalation_in_scope": 0.1358, "selective_accuracy": 0.9634, "accuracy": 0.8585,
                 "seconds": 101.2, "at_reference": {"escalation_all": 0.2196,
                 "escalation_in_scope": 0.125, "selective_accuracy": 0.9634}},
                {"round": 3, "version": "clinc_intent@1.3.0", "train_rows": 7905, "traffic": 3000,
                 "escalated_to_oracle": 123, "threshold": 0.3871, "escalation_all": 0.1878,
                 "escalation_in_scope": 0.0693, "selective_accuracy": 0.9593, "accuracy": 0.868,
                 "seconds": 131.9, "at_reference": {"escalation_all": 0.1535,
                 "escalation_in_scope": 0.06, "selective_accuracy": 0.9635}},
            ],
        },
        "kb": {
            "per": 1000,
            "call_sample": 1000,
            "calls_ratio": 3.13,
            "large_by_hand": {"passages": 100000, "minutes": 25},
            "section_wall_s": 433.8,
            **loads,
            "clinc": {
                "build": {"answers": 150, "indexed_texts": 12000, "val_questions": 3000,
                          "seconds": 88.61},
                "threshold": 0.2896,
                "oos_test_kept": 0.0801,
                "test": {"questions": 4500, "top1_accuracy": 0.8764, "top5_accuracy": 0.9829,
                         "coverage": 0.7889, "selective_accuracy": 0.9583,
                         "seconds_per_1000": 5.104},
                "val": {"questions": 3000, "top1_accuracy": 0.8797, "top5_accuracy": 0.9837,
                        "coverage": 0.7717, "selective_accuracy": 0.9624,
                        "seconds_per_1000": 7.833},
            },
            "calls": {
                "cascade": {"llm_calls_per_1000": 32.0, "questions_to_big_model_per_1000": 319.0,
                            "prompt_tokens_per_1000": 20060, "right_per_1000": 944.0,
                            "seconds": 12.34},
                "rag_only": {"llm_calls_per_1000": 100.0,
                             "questions_to_big_model_per_1000": 1000.0,
                             "prompt_tokens_per_1000": 51681, "right_per_1000": 982.0,
                             "seconds": 31.56},
            },
        },
    }  # fmt: skip


def test_every_number_in_the_markdown_comes_from_the_results():
    writer = _writer()
    results = sample_results()
    markdown = writer.render_markdown(results)
    assert unexplained_numbers(markdown, results) == []
    # the check has teeth: a figure typed into the text is caught
    assert unexplained_numbers(markdown + "\nspeed-up 17.5 times\n", results) == ["17.5"]


def test_the_markdown_shows_each_section_and_its_figures():
    writer = _writer()
    results = sample_results()
    markdown = writer.render_markdown(results)
    dash, times = writer.DASH, writer.TIMES
    for title in writer.TITLES.values():
        assert f"## {title}" in markdown
    assert "| Runtime.run, outbound_call_turn graph | ray | 7,321 | 12,346 |" in markdown
    assert "12,302, 12,346, 12,399 | 0.125 | 54.1 | 0.8067 |" in markdown
    assert f"| every turn / cascade | {' | '.join([dash] * 5)} | 2.83 |" in markdown
    assert "| open loop @ 200/s | 16 | 1,999 | 0 | 199.9 | 3.46 | 4.26 | 7.89 | 13.89 |" in markdown
    assert "| every turn to the big model | 217 | 217 | 203 | 19 | 2 | 17 | 17,123 |" in markdown
    assert (
        "every turn first, 109 turns: 101.3 / 30.5; cascade first, 108 turns: 110.1 / 36.1"
        in markdown
    )
    assert "failed in this run: ConfigError: no model" in markdown
    assert "before 1.23, 2.34, 3.45, after 4.56, 5.67, 6.78" in markdown
    assert "Test CPU 9000: 7 cores, 6 usable" in markdown
    # headlines are generated from the rows too
    assert (
        f"12,346 items/s, 0.125 {times} the raw ONNX limit, 54.1 {times} plain LangGraph"
        in markdown
    )
    assert "217 turns: 6 with the cascade (66.6 s), 17 with every turn" in markdown


def test_the_issue_15_and_18_sections_show_their_figures_and_goals():
    writer = _writer()
    markdown = writer.render_markdown(sample_results())
    dash = writer.DASH
    # two tiers: tier one alone vs the chain, the cut, the issue's goal in the caption
    assert (
        "| BANKING77 | 77 | 10,003 | 3,081 | 271.3 | 0.784 @ 0.978 | 667 | 0.868 @ 0.981 | 409 "
        "| 38.7 % | no |" in markdown
    )
    assert "coverage 0.90 or more at selective accuracy 0.97 or more on a 77-intent CSV" in markdown
    assert "bench_banking77_minilm@1.0.0 keeps 1,119 of 1,528 at 0.9611" in markdown
    assert "measured 2031-01-02T03:04:05+00:00; load average before" in markdown
    # the bake-off: small tiers and the big model side by side
    assert "| small tiers (turn_intent@1.0.0, turn_intent_minilm@1.0.0) | 31 | 0.355 | 11 |" in (
        markdown
    )
    assert (
        "| embedded (smollm2-135m-instruct) | 31 | 0.032 | 1 | 3 | 4 | 4,417 | 0.0000 | 42.51 "
        "| 145.38 | worse (gain -0.323, p = 0.0021) |" in markdown
    )
    # distillation: per round, and the goal with the measured cut
    assert (
        f"| 0 | clinc_intent@1.0.0 | 7,100 | 0 | {dash} | 0.4113 | 0.2396 | 0.1358 | 0.9634 |"
        in markdown
    )
    assert (
        "the issue's goal: 40.0 % fewer escalations or more at equal kept accuracy; measured from "
        "round 0 to 3: all 21.6 % fewer, in scope 48.9 % fewer" in markdown
    )
    assert "goal met for in scope" in markdown
    assert "| 131.9 | 0.1535 / 0.0600 |" in markdown  # at round 0's selective accuracy
    assert (
        "at equal kept accuracy (every version at round 0's selective accuracy on test, 0.9634, "
        "thresholds chosen on test for this measure only): all 30.1 % fewer, in scope 52.0 % "
        "fewer: goal met for in scope" in markdown
    )
    # the knowledge base: eval sets, then calls per 1,000 questions in a second table
    assert "| test | 4,500 | 0.8764 | 0.9829 | 0.7889 | 0.9583 | 5.10 |" in markdown
    assert "**Big-model calls per 1,000 questions**" in markdown
    assert "| cascade | 32.0 | 319.0 | 20,060 | 944.0 | 12.34 |" in markdown
    assert "| RAG only | 100.0 | 1,000.0 | 51,681 | 982.0 | 31.56 |" in markdown
    assert "the 100,000-passage base" in markdown and "about 25 minutes" in markdown
    # one headline per new section
    assert "both tiers, 0.784 @ 0.978 with tier one alone; 38.7 % fewer escalations" in markdown
    assert "small tiers 0.355, embedded 0.032 accuracy at p50 42.51 s per call: worse" in markdown
    assert "21.6 % fewer escalations (48.9 % in scope)" in markdown
    assert "per 1,000 questions: 32.0 with the cascade, 100.0 RAG only" in markdown


def _run_all() -> ModuleType:
    """bench/run_all.py, loaded without leaving its environment defaults in this process."""
    saved, path = dict(os.environ), list(sys.path)
    try:
        sys.path.insert(0, str(ROOT / "bench"))
        spec = importlib.util.spec_from_file_location("bench_run_all", ROOT / "bench/run_all.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        os.environ.clear()
        os.environ.update(saved)
        sys.path[:] = path


def test_only_merges_into_the_earlier_results_and_says_which_run_measured_what():
    run_all = _run_all()
    earlier = sample_results()
    fresh = {
        **earlier,
        "command": ".venv/bin/python bench/run_all.py --only latency",
        "machine": {**earlier["machine"], "date": "2032-05-06T07:08:09+00:00"},
        "sections": {"latency": {**earlier["sections"]["latency"], "measured_at": "2032-05-06"}},
    }
    merged = run_all.merged(earlier, fresh)
    assert list(merged["sections"]) == list(run_all.SECTIONS)  # every section, in order
    assert merged["sections"]["latency"] == fresh["sections"]["latency"]
    kept = merged["sections"]["throughput"]
    assert kept["rows"] == earlier["sections"]["throughput"]["rows"]
    assert kept["measured_at"] == earlier["machine"]["date"]
    assert kept["earlier_run"]["command"] == earlier["command"]
    assert "earlier_run" not in merged["sections"]["latency"]
    assert run_all.merged(None, fresh) == fresh  # nothing earlier: the run alone
    markdown = _writer().render_markdown(merged)
    assert unexplained_numbers(markdown, merged) == []
    assert "sections measured by an earlier run than the command above" in markdown
    assert (
        f"measured by an earlier run: `{earlier['command']}` on Test CPU 9000 (7 cores), "
        f"started {earlier['machine']['date']}" in markdown
    )
    # merging again keeps the first run's stamp on what neither later run measured
    again = run_all.merged(merged, {**fresh, "sections": {}})
    assert again["sections"]["throughput"]["earlier_run"]["command"] == earlier["command"]
    assert again["sections"]["latency"]["earlier_run"]["command"] == fresh["command"]


def test_quick_leaves_out_the_slow_sections_unless_only_names_them():
    run_all = _run_all()
    quick = run_all.chosen_sections(run_all.parse_args(["--quick"]))
    assert "kb" not in quick and "distill" not in quick and "two_tiers" in quick
    assert run_all.chosen_sections(run_all.parse_args(["--quick", "--only", "kb"])) == ["kb"]
    assert run_all.chosen_sections(run_all.parse_args([])) == list(run_all.SECTIONS)


def test_plain_text_tables_line_up():
    writer = _writer()
    table = writer.section_table("latency", sample_results()["sections"]["latency"])
    lines = writer.render_text(table).splitlines()
    assert lines[0] == "== Real-time turn latency =="
    header, row = lines[1], lines[2]
    assert len(header) == len(row)
    assert row.endswith("13.89") and header.endswith("max ms")


@pytest.mark.skipif(
    not (ROOT / "BENCHMARKS.md").exists() or not (ROOT / "bench/benchmarks.json").exists(),
    reason="no generated BENCHMARKS.md in the tree",
)
def test_benchmarks_md_in_the_tree_is_the_json_rendered():
    writer = _writer()
    results = json.loads((ROOT / "bench/benchmarks.json").read_text(encoding="utf-8"))
    markdown = (ROOT / "BENCHMARKS.md").read_text(encoding="utf-8")
    assert markdown == writer.render_markdown(results), (
        "BENCHMARKS.md differs from its JSON: rerun bench/run_all.py (or --render-only)"
    )
    assert unexplained_numbers(markdown, results) == []
    rows = results["sections"]["throughput"]["rows"]
    limit = rows[0]["items_per_s"]
    for row in rows:  # the derived ratios agree with the rates they come from
        # stored rounded (ratio to 4 decimals, rates to 0.1 items/s): equal within that
        assert row["ratio_to_limit"] == pytest.approx(
            row["items_per_s"] / limit, rel=1e-3, abs=1e-4
        )
