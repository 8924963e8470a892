"""Run an outbound calling campaign on real data and write its cost report.

    .venv/bin/python examples/outbound_campaign/run.py --leads 500

Offline by default: a local Ray cluster on 127.0.0.1 (2 CPUs) scores the leads, the turns run
in-process on the real-time path, the embedded model (SmolLM2-135M) writes the summaries, and the
job store is SQLite under ORCHESTRATOR_DATA_DIR. Point ORCHESTRATOR_LLM_PROVIDERS at a real model
for real summaries. See README.md next to this file.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # loopback only
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("ORCHESTRATOR_LOG_LEVEL", "WARNING")

from campaign import CampaignConfig, run_campaign

from orchestrator.config import Settings
from orchestrator.runtime.report import usd
from orchestrator.runtime.runtime import Runtime
from orchestrator.telemetry.logs import configure_logging


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--leads", type=int, default=500, help="leads to score (default 500)")
    parser.add_argument("--calls", type=int, default=100, help="top leads called (default 100)")
    parser.add_argument(
        "--max-summaries",
        type=int,
        default=8,
        help="post-call summaries at most; the other calls that need one are deferred (default 8)",
    )
    parser.add_argument(
        "--max-grounded",
        type=int,
        default=20,
        help="unsure questions answered by the big model from the FAQ's passages (default 20)",
    )
    parser.add_argument(
        "--measure-sample",
        type=int,
        default=2,
        help="leads and turns sent to the big model the baseline's way, to measure it (0: skip)",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--executor", choices=["ray", "local"], default="ray")
    parser.add_argument("--output", type=Path, default=None, help="default reports/campaign-<id>/")
    args = parser.parse_args()
    settings = Settings(executor=args.executor, num_cpus=2)
    configure_logging("console", settings.log_level)
    config = CampaignConfig(
        leads=args.leads,
        calls=args.calls,
        max_summaries=args.max_summaries,
        max_grounded=args.max_grounded,
        measure_sample=args.measure_sample,
        seed=args.seed,
        output=args.output,
    )
    if args.executor == "ray":
        from orchestrator.executors.ray import connect

        connect(num_cpus=2)
    with Runtime(settings=settings) as runtime:
        result = asyncio.run(run_campaign(config, runtime))
    f = result.figures
    runtime_cost, baseline_cost = f["runtime"]["cost_usd"], f["baseline"]["cost_usd"]
    print(
        f"campaign {result.campaign_id}: {f['leads']:,} leads scored, {f['calls']:,} calls, "
        f"{f['turns']:,} turns; summaries: {f['summaries_needed']:,} needed, "
        f"{f['summaries_written']:,} written, {f['summaries_deferred']:,} deferred; replies: "
        f"{f['replies']['kb']:,} from the FAQ, {f['replies']['big_model']:,} from the big model\n"
        f"big-model calls: {f['runtime']['llm_calls']:,} (all big model: "
        f"{f['baseline']['llm_calls']:,}); cost at {f['price']['model']} prices: "
        f"{usd(runtime_cost)} (all big model: {usd(baseline_cost)})\n"
        f"report: {result.output / 'report.md'}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
