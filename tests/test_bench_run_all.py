"""BENCHMARKS.md is written from the results of ``bench/run_all.py`` and from nothing else.

``bench/run_all.py --quick`` takes minutes (it asks the embedded big model), so these tests check
the Markdown writer instead: every number it prints comes from the results dict, and the
BENCHMARKS.md in the tree is exactly what the writer makes of the JSON next to it.
"""

from __future__ import annotations

import functools
import importlib.util
import json
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
        if not any(abs(v - shown) <= tolerance for v in numbers):
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
        },
    }


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
