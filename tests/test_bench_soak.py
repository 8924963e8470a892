"""The soak bench (``bench/soak.py``) at a tiny size: two real replicas of the job service on one
SQLite file, on loopback, every kind of traffic once or a few times. Checks what the bench
promises to report (nothing lost, nothing run twice, oversize bodies refused, every webhook
delivered), not its figures: those move with the machine and live in bench/README.md."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _soak():
    spec = importlib.util.spec_from_file_location("bench_soak", ROOT / "bench" / "soak.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_soak"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow  # ~15 s: two service processes start
def test_a_tiny_soak_loses_nothing_and_runs_nothing_twice(capsys):
    soak = _soak()
    report = soak.main(
        [
            *("--duration-s", "2", "--factor", "1", "--replica-b-at", "0", "--drain-s", "20"),
            *("--max-jobs", "4", "--items-per-job", "4", "--max-invokes", "20"),
            *("--max-streams", "2", "--max-oversize", "2"),
            *("--hook-every", "2", "--hook-delay-s", "0.2"),
        ]
    )
    accepted = report["jobs_accepted"]
    assert accepted > 0 and report["final_status"] == {"succeeded": accepted}
    assert report["jobs_lost"] == 0 and report["jobs_run_twice"] == 0
    assert report["succeeded_with_missing_results"] == 0
    codes = report["requests"]
    oversize = {k: n for k, n in codes.items() if k.startswith("oversize")}
    assert oversize and all(k.endswith(" 413") for k in oversize), oversize
    assert report["invoke_ok"] == codes["invoke 200"] > 0
    hooks = report["webhooks"]
    assert hooks["expected"] > 0 and hooks["missing"] == 0
    assert set(report["rss_kib"]) == {"a", "b"}
    assert all(r["start"] > 0 and r["end"] > 0 for r in report["rss_kib"].values())
    assert [log["count"] for log in report["errors_logged"].values()] == [0, 0]
    out = capsys.readouterr().out
    assert "jobs lost (must be 0)" in out and '"bench": "soak"' in out
