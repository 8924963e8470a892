"""Planner calls per 1,000 jobs with and without the plan cache, and tokens per plan.

    .venv/bin/python bench/plan_cache.py [--jobs 1000] [--uncached-sample 3]

Every job names the same task instead of a graph. With the cache, all 1,000 jobs run through
``Runtime.submit_task`` and their ledgers are summed. Without it, ``--uncached-sample`` jobs are
planned for real and the per-job figure is multiplied by the job count (planning each of 1,000
jobs with the embedded model would take hours; the figure per job does not change). The big model
is whatever ``ORCHESTRATOR_LLM_PROVIDERS`` names, else the embedded SmolLM2-135M.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("ORCHESTRATOR_LOG_LEVEL", "WARNING")

from orchestrator import LocalExecutor, Registry, Runtime
from orchestrator.config import Settings
from orchestrator.llm.audit import AuditLog
from orchestrator.llm.embedded import default_gateway
from orchestrator.llm.gateway import LLMGateway
from orchestrator.planning.cache import PlanCache
from orchestrator.planning.planner import Planner
from orchestrator.telemetry.logs import configure_logging

TASK = "classify each call turn's intent and decide the next action"
FIELDS = {"utterance": "str"}
ITEM = [{"id": 1, "utterance": "can you call me back tomorrow"}]


def run_jobs(runtime: Runtime, jobs: int) -> tuple[int, int, float]:
    calls = tokens = 0
    started = time.perf_counter()
    for _ in range(jobs):
        job = runtime.submit_task(TASK, ITEM, fields=FIELDS)
        list(job)
        calls += job.ledger.llm_calls
        tokens += job.ledger.llm_prompt_tokens + job.ledger.llm_completion_tokens
    return calls, tokens, time.perf_counter() - started


def measure(
    registry: Registry, gateway: LLMGateway, jobs: int, uncached_sample: int, folder: Path
) -> dict[str, Any]:
    """Planner calls and tokens for ``jobs`` jobs with the plan cache (all run) and without it
    (``uncached_sample`` jobs run, scaled to ``jobs``). The plan cache lives in ``folder``."""
    cache = PlanCache(folder / "plans.db")
    cached = Planner(gateway, registry, cache=cache)
    try:
        with Runtime(registry=registry, executor=LocalExecutor(), planner=cached) as runtime:
            c_calls, c_tokens, c_wall = run_jobs(runtime, jobs)
    finally:
        cache.close()
    uncached = Planner(gateway, registry, cache=None)
    with Runtime(registry=registry, executor=LocalExecutor(), planner=uncached) as runtime:
        u_calls, u_tokens, u_wall = run_jobs(runtime, uncached_sample)
    provider = gateway.providers[0]
    per_job_calls = u_calls / uncached_sample
    per_plan_tokens = u_tokens / uncached_sample
    return {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "provider": f"{provider.name} ({provider.model})",
        "jobs": jobs,
        "with_cache": {"llm_calls": c_calls, "tokens": c_tokens, "wall_s": round(c_wall, 2)},
        "without_cache": {
            "llm_calls": round(per_job_calls * jobs),
            "tokens": round(per_plan_tokens * jobs),
            "measured_jobs": uncached_sample,
            "wall_s_per_job": round(u_wall / uncached_sample, 2),
            "wall_s": round(u_wall / uncached_sample * jobs, 1),
        },
        "calls_per_plan": per_job_calls,
        "tokens_per_plan": round(per_plan_tokens),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--uncached-sample", type=int, default=3)
    args = parser.parse_args()
    configure_logging("console", "WARNING")
    registry = Registry.from_folder(Settings().skills_dir)
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        audit = AuditLog(Path(tmp) / "audit.db")
        gateway = default_gateway(stack=stack, audit=audit)
        result = measure(registry, gateway, args.jobs, args.uncached_sample, Path(tmp))
    print(
        f"planner calls per {args.jobs} jobs: {result['with_cache']['llm_calls']} with the cache, "
        f"{result['without_cache']['llm_calls']} without "
        f"({result['calls_per_plan']:.1f} calls and {result['tokens_per_plan']:.0f} tokens per "
        f"plan, {result['provider'].split()[0]})"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
