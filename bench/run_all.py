"""Every performance comparison side by side, in one run: writes BENCHMARKS.md and the raw JSON.

    .venv/bin/python bench/run_all.py [--quick] [--only SECTION ...] [--items N] [--repeat R]
                                      [--big-model-items N] [--jobs N] [--latency-rate R ...]
    .venv/bin/python bench/run_all.py --render-only   # BENCHMARKS.md again from the JSON

Sections (each reuses the bench script that owns the comparison):

- ``throughput``: the raw ONNX limit vs ``Runtime.run`` (ray and local) vs a plain LangGraph
  invoked item by item (``turn_graph.py``, ``plain_langgraph.py``);
- ``big_model``: every turn to the big model vs the cascade (``big_model_vs_cascade.py``);
- ``plan_cache``: planner calls with and without the plan cache (``plan_cache.py``);
- ``latency``: real-time turn latency from the job service (``invoke_latency.py``).

About 10-15 minutes on 2 cores with the defaults; it writes ``BENCHMARKS.md`` and the raw figures
in ``bench/benchmarks.json``. ``--quick`` is a ~2 minute smoke run that writes the git-ignored
``bench/results/quick.{md,json}`` instead, so it never overwrites the published figures. A
section that fails is recorded as failed and the others still run (exit status 1). Ray stays on
loopback with 2 CPUs; the embedded big model and the job service listen on 127.0.0.1 only.
"""

from __future__ import annotations

import os

# Ray must stay on loopback and out of ~/.ray: set before anything imports ray.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("ORCHESTRATOR_LOG_LEVEL", "WARNING")

import argparse
import contextlib
import datetime
import importlib.metadata
import json
import platform
import shlex
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks_md import render_markdown, render_text, section_table

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"  # git-ignored: the --quick smoke runs go here
SECTIONS = ("throughput", "big_model", "plan_cache", "latency")
RAY_CPUS = 2

#: defaults sized for ~10-15 minutes on 2 cores; QUICK overrides them for a smoke run
FULL: dict[str, Any] = {
    "items": 5500,
    "batch_size": 1024,
    "repeat": 3,
    "per_item_repeat": 1,
    "executor": ["ray", "local"],
    "big_model_items": 200,
    "big_model_round": 50,
    "items_per_call": 10,
    "seed": 0,
    "jobs": 1000,
    "uncached_sample": 3,
    "latency_clients": 50,  # the job-service issue's setting
    "latency_requests": 2000,
    "latency_rate": [200.0, 500.0],
    "latency_limit_s": 20.0,
    "output": ROOT / "BENCHMARKS.md",
    "json": ROOT / "bench" / "benchmarks.json",
}
QUICK: dict[str, Any] = {
    "items": 1100,
    "batch_size": 256,
    "repeat": 1,
    "big_model_items": 20,
    "big_model_round": 10,
    "jobs": 100,
    "uncached_sample": 1,
    "latency_clients": 8,
    "latency_requests": 500,
    "latency_rate": [200.0],
    "latency_limit_s": 10.0,
    "output": RESULTS / "quick.md",
    "json": RESULTS / "quick.json",
}
PACKAGES = ("onnxruntime", "ray", "langgraph", "llama_cpp_python", "scikit-learn", "numpy")


# --- arguments -----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Flags left unset take the FULL defaults, or the QUICK ones with ``--quick``."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="~2 minute smoke run (own output files)")
    p.add_argument("--only", nargs="+", choices=SECTIONS, help="run these sections only")
    p.add_argument("--render-only", action="store_true", help="rewrite the Markdown from --json")
    p.add_argument("--items", type=int, help="throughput: CLINC150 turns (repeated past 5,500)")
    p.add_argument("--batch-size", type=int, help="throughput: batch = chunk_size")
    p.add_argument("--repeat", type=int, help="throughput: timed runs (median reported)")
    p.add_argument("--per-item-repeat", type=int, help="throughput: timed runs, plain LangGraph")
    p.add_argument("--executor", nargs="+", choices=["ray", "local"], help="throughput")
    p.add_argument("--big-model-items", type=int, help="big_model: turns sent both ways")
    p.add_argument("--big-model-round", type=int, help="big_model: turns per round (a-b, b-a)")
    p.add_argument("--items-per-call", type=int, help="big_model: turns per big-model call")
    p.add_argument("--seed", type=int, help="big_model: seed of the draw of turns")
    p.add_argument("--jobs", type=int, help="plan_cache: planned jobs")
    p.add_argument("--uncached-sample", type=int, help="plan_cache: jobs planned without cache")
    p.add_argument("--latency-clients", type=int, help="latency: concurrent connections")
    p.add_argument("--latency-requests", type=int, help="latency: requests per phase (bound)")
    p.add_argument("--latency-rate", type=float, nargs="+", help="latency: open-loop rates /s")
    p.add_argument("--latency-limit-s", type=float, help="latency: time bound per phase")
    p.add_argument("--output", type=Path, help="Markdown file to write")
    p.add_argument("--json", type=Path, help="JSON file to write (or read, --render-only)")
    args = p.parse_args(argv)
    defaults = {**FULL, **(QUICK if args.quick else {})}
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


# --- the machine ---------------------------------------------------------------------------------


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _ram_gib() -> float | None:
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    return None


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def machine() -> dict[str, Any]:
    """What the figures were measured on; the load average at the end is added by :func:`main`."""
    try:
        os_name = platform.freedesktop_os_release().get("PRETTY_NAME", platform.system())
    except OSError:
        os_name = platform.system()
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)),
        "ram_gib": _ram_gib(),
        "os": os_name,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": {p: _version(p) for p in PACKAGES},
        "loadavg_start": loadavg(),
    }


# --- sections ------------------------------------------------------------------------------------


def throughput(args: argparse.Namespace, registry: Any) -> dict[str, Any]:
    """The ONNX limit, the runtime on each executor and a plain LangGraph, on the same turns."""
    import plain_langgraph
    import turn_graph

    texts, labels = turn_graph.load_items(args.items)
    items = turn_graph.make_items(texts, labels)
    size = str(args.batch_size)
    limits = turn_graph.measure_limits(registry, texts, [args.batch_size], args.repeat)
    runtime: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        intent_only = Path(tmp) / "turn_intent_only.yaml"
        intent_only.write_text(turn_graph.INTENT_ONLY_YAML)
        graphs = {"full": turn_graph.tier1_turn_graph(Path(tmp)), "intent": intent_only}
        for name in args.executor:
            runtime[name] = runtime_on(name, registry, graphs, items, args)
    print("measuring plain LangGraph, one invoke per item ...", file=sys.stderr)
    # One timed run by default: item by item it is the slowest path by far, and a single run over
    # every item is already the longest measuring window of the section.
    plain = plain_langgraph.measure(registry, texts, labels, args.per_item_repeat)
    return {
        "items": len(items),
        "batch": args.batch_size,
        "repeat": args.repeat,
        "per_item_repeat": args.per_item_repeat,
        "ray_startup_s": runtime.get("ray", {}).get("startup_s"),
        "rows": throughput_rows(limits["by_batch"][size], runtime, size, plain, len(items)),
        "detail": {"limit": limits, "runtime": runtime, "plain_langgraph": plain},
    }


def runtime_on(
    executor: str, registry: Any, graphs: dict[str, Path], items: list[Any], args: Any
) -> dict[str, Any]:
    """``turn_graph.measure_runtime`` on one executor; Ray starts first and stops after."""
    import turn_graph

    if executor != "ray":
        return turn_graph.measure_runtime(
            executor, registry, graphs, items, [args.batch_size], args.repeat, None
        )
    import ray

    from orchestrator.executors.ray import connect

    connect(num_cpus=RAY_CPUS)  # a private local cluster on loopback
    try:
        return turn_graph.measure_runtime(
            executor, registry, graphs, items, [args.batch_size], args.repeat, None
        )
    finally:
        ray.shutdown()  # the later paths and sections run in-process: give Ray's CPU back


def throughput_rows(
    limit: dict[str, Any], runtime: dict[str, Any], size: str, plain: dict[str, Any], n: int
) -> list[dict[str, Any]]:
    """One row per path; each rate also as a ratio to the limit and to plain LangGraph."""
    found: list[tuple[str, str, dict[str, Any], bool]] = [
        ("raw ONNX, turn_intent session.run per batch (the limit)", "in-process",
         limit["ort_1thread"], False),
        ("raw ONNX, same with ONNX Runtime's default threads", "in-process",
         limit["ort_default"], False),
        ("turn_intent predict per batch", "in-process", limit["skill_intent"], False),
        ("three skills' predict per batch, no runtime", "in-process", limit["skills_full"], False),
    ]  # fmt: skip
    for executor, data in runtime.items():
        row = data["by_batch"][size]
        found.append(("Runtime.run, intent-only graph", executor, row["intent"], False))
        found.append(("Runtime.run, outbound_call_turn graph", executor, row["full"], True))
    found.append(("plain LangGraph, one invoke per item", "in-process", plain, False))
    base, naive = limit["ort_1thread"]["median"], plain["median"]
    return [
        {
            "path": path,
            "executor": executor,
            "items": n,
            "items_per_s": round(figures["median"], 1),
            "runs": figures["runs"],
            "ratio_to_limit": round(figures["median"] / base, 4),
            "vs_plain_langgraph": round(figures["median"] / naive, 2),
            "accuracy": figures.get("accuracy"),
            "headline": headline,
        }
        for path, executor, figures, headline in found
    ]


def big_model(args: argparse.Namespace, registry: Any, gateway: Any, audit: Any) -> dict[str, Any]:
    """Every turn to the big model vs the cascade, on the same turns and the same model."""
    import big_model_vs_cascade

    return big_model_vs_cascade.measure(
        registry,
        gateway,
        args.big_model_items,
        args.items_per_call,
        args.seed,
        audit,
        round_size=args.big_model_round,
    )


def plan_cache(args: argparse.Namespace, registry: Any, gateway: Any) -> dict[str, Any]:
    """Planner calls over ``--jobs`` planned jobs, with and without the plan cache."""
    import plan_cache as bench_plan_cache

    with tempfile.TemporaryDirectory() as tmp:
        out = bench_plan_cache.measure(
            registry, gateway, args.jobs, args.uncached_sample, Path(tmp)
        )
    cached = out["with_cache"]["llm_calls"]
    out["calls_ratio"] = round(out["without_cache"]["llm_calls"] / cached, 1) if cached else None
    return out


def latency(args: argparse.Namespace) -> dict[str, Any]:
    """p50/p99 of real-time turns from the job service, under a bounded load."""
    import invoke_latency

    phases = invoke_latency.measure(
        clients=args.latency_clients,
        requests=args.latency_requests,
        rates=args.latency_rate,
        limit_s=args.latency_limit_s,
    )
    return {"requests": args.latency_requests, "limit_s": args.latency_limit_s, "phases": phases}


def run_section(name: str, measure: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Measure one section between two load averages and print its table."""
    print(f"\n[{name}] load average {loadavg()} ...", file=sys.stderr)
    before, started = loadavg(), time.perf_counter()
    try:
        out = measure()
    except Exception as exc:  # noqa: BLE001 - one failed section must not lose the others
        traceback.print_exc()
        out = {"error": f"{type(exc).__name__}: {exc}"}
    out["loadavg_before"], out["loadavg_after"] = before, loadavg()
    out["section_wall_s"] = round(time.perf_counter() - started, 1)
    print("\n" + render_text(section_table(name, out)), flush=True)
    return out


def measure_all(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Every chosen section, in order; the big model starts once, for the sections that ask it."""
    from orchestrator import Registry
    from orchestrator.config import Settings
    from orchestrator.llm.audit import AuditLog
    from orchestrator.llm.embedded import default_gateway
    from orchestrator.telemetry.logs import configure_logging

    configure_logging("json", "WARNING")  # logs to stderr; stdout is the tables
    registry = Registry.from_folder(Settings().skills_dir)
    chosen = args.only or SECTIONS
    sections: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        audit = AuditLog(Path(tmp) / "audit.db")  # every big-model request, answered or not
        stack.callback(audit.close)
        gateways: list[Any] = []

        def gateway() -> Any:
            if not gateways:  # started on first use; stopped when the stack closes
                gateways.append(default_gateway(stack=stack, audit=audit))
            return gateways[0]

        work: dict[str, Callable[[], dict[str, Any]]] = {
            "throughput": lambda: throughput(args, registry),
            "big_model": lambda: big_model(args, registry, gateway(), audit),
            "plan_cache": lambda: plan_cache(args, registry, gateway()),
            "latency": lambda: latency(args),
        }
        for name in SECTIONS:
            if name in chosen:
                sections[name] = run_section(name, work[name])
    return sections


# --- output --------------------------------------------------------------------------------------


def write(results: dict[str, Any], json_path: Path, md_path: Path) -> None:
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    md_path.write_text(render_markdown(results), encoding="utf-8")
    print(f"\nwrote {_shown(md_path)} and {_shown(json_path)}", file=sys.stderr)


def _shown(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(path.resolve().relative_to(ROOT))
    return str(path)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render_only:
        results = json.loads(args.json.read_text(encoding="utf-8"))
        args.output.write_text(render_markdown(results), encoding="utf-8")
        print(f"wrote {_shown(args.output)} from {_shown(args.json)}", file=sys.stderr)
        return 0
    started = time.perf_counter()
    info = machine()
    print(f"machine: {json.dumps(info)}", file=sys.stderr)
    sections = measure_all(args)
    info["loadavg_end"] = loadavg()
    info["wall_s"] = round(time.perf_counter() - started, 1)
    command = ".venv/bin/python bench/run_all.py"
    results = {
        "command": " ".join([command, *map(shlex.quote, sys.argv[1:] if argv is None else argv)]),
        "json_path": _shown(args.json),
        "options": {k: v for k, v in vars(args).items() if k not in ("output", "json")},
        "machine": info,
        "sections": sections,
    }
    write(results, args.json, args.output)
    return 1 if any("error" in s for s in sections.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
