"""Replicas per skill: the Ray actor executor against the Serve executor, and single-turn latency.

    .venv/bin/python bench/replicas.py [--items 5500] [--chunk-size 2048] [--repeat 3]
                                       [--replicas 1 2] [--calls 1000] [--concurrency 8 32]
                                       [--sections limit throughput latency multiplex] [--json]

Over CLINC150 test + oos_test turns (bench/turn_graph.py loads them), one run measures:

- ``limit``: the turn_intent ONNX session in-process, one ``session.run`` per 1,024 normalised
  texts, with the skill's threads (1): the raw limit; and the graph's three skills called
  in-process one after the other (what the full graph costs with no runtime);
- ``throughput``: ``Runtime.run`` of graphs/outbound_call_turn.yaml (chunks of ``--chunk-size``;
  turn_intent takes slices of its ``max_batch``, 1,024) with each skill version on 1 and 2
  workers: actors (``RayExecutor(replicas=N)``, called in turn) and Serve deployments
  (``ServeOptions(min_replicas=N)``); median items/s of ``--repeat`` runs after an untimed
  warm-up; ratio to the raw ONNX limit and Serve / actors;
- ``latency``: ``executor.predict`` of turn_intent on one item (the real-time path), ``--calls``
  calls one after another, then ``--concurrency`` callers at once (``--calls`` in all, for each
  level): p50/p99 ms and calls/s, for the actor, Serve with ``@serve.batch`` (2 ms wait, and 0 ms), and Serve
  without request batching (``max_batch_size: 1``);
- ``multiplex``: resident memory of one replica process per turn_intent version against one
  multiplexed replica hosting two versions, and what loading a version costs there.

Ray gets 2 CPUs and stays on loopback; Serve runs without an HTTP proxy. Other users share the
machine: the load averages are printed with the tables.
"""

from __future__ import annotations

import os

# Ray must stay on loopback and out of ~/.ray: set before anything imports ray.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

import turn_graph  # noqa: E402 - bench/turn_graph.py: items, machine info, the ONNX session

TURN_GRAPH = ROOT / "graphs" / "outbound_call_turn.yaml"
SECTIONS = ("limit", "throughput", "latency", "multiplex")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# --- the limit -----------------------------------------------------------------------------------


def measure_limit(registry: Any, texts: list[str], repeat: int) -> dict[str, Any]:
    from skills.turn_intent.skill import normalize_text

    sessions, _ = turn_graph.onnx_sessions(registry)
    session = sessions["ort_1thread"]
    normalised = [normalize_text(t) for t in texts]
    size = registry.resolve("turn_intent@prod").skill_cls.max_batch or 1024
    skills = {}
    for ref in ("turn_intent@prod", "opt_out@prod", "next_action@prod"):
        instance = registry.resolve(ref).create()
        instance.ensure_setup()
        skills[ref.split("@")[0]] = instance

    def onnx() -> None:
        for part in turn_graph.chunks(normalised, size):
            labels, probs = session.run(None, {"text": np.array(part, dtype=object).reshape(-1, 1)})
            labels.tolist()
            probs.max(axis=1)

    def three_skills() -> None:
        for part in turn_graph.chunks(texts, size):
            intent = skills["turn_intent"].predict({"text": part})
            opt = skills["opt_out"].predict({"text": part})
            skills["next_action"].predict(
                {
                    "intent": intent.outputs["intent"],
                    "intent_confidence": np.asarray(intent.confidence).tolist(),
                    "opted_out": opt.outputs["opted_out"],
                }
            )

    onnx()  # warm-up: the session grows its arena on the first batch of a size
    three_skills()
    return {
        "batch": size,
        "onnx_1thread": turn_graph.timed(onnx, repeat, len(texts)),
        "three_skills": turn_graph.timed(three_skills, repeat, len(texts)),
    }


# --- throughput ----------------------------------------------------------------------------------


def make(kind: str, replicas: int, **serve: Any) -> Any:
    from orchestrator.executors import RayExecutor, ServeExecutor
    from orchestrator.executors.serve_options import ServeOptions

    if kind == "actors":
        return RayExecutor(num_cpus=2, replicas=replicas)
    return ServeExecutor(num_cpus=2, defaults=ServeOptions(min_replicas=replicas, **serve))


def measure_throughput(
    registry: Any, items: list[dict[str, Any]], chunk_size: int, repeat: int, replicas: list[int]
) -> dict[str, Any]:
    from orchestrator import Runtime, Settings

    out: dict[str, Any] = {}
    for kind in ("actors", "serve"):
        for n in replicas:
            executor = make(kind, n)
            settings = Settings(executor="ray", chunk_size=chunk_size, num_cpus=2)
            with Runtime(registry=registry, executor=executor, settings=settings) as runtime:
                graph = runtime.compile(TURN_GRAPH)
                started = time.perf_counter()
                turn_graph.run_job(runtime, graph, items[:chunk_size])  # start workers, warm up
                startup = time.perf_counter() - started
                row = turn_graph.timed(
                    lambda rt=runtime, g=graph: turn_graph.run_job(rt, g, items), repeat, len(items)
                )
            row["startup_s"] = round(startup, 2)
            row["loadavg"] = load()
            out[f"{kind}_x{n}"] = row
            log(f"  {kind} x{n}: {row['median']:,.0f} items/s {row['runs']} load {row['loadavg']}")
    return out


# --- latency -------------------------------------------------------------------------------------


async def _calls(executor: Any, key: str, texts: list[str], calls: int, concurrency: int) -> Any:
    latencies: list[float] = []
    queue = list(range(calls))

    async def caller() -> None:
        while queue:
            n = queue.pop()
            started = time.perf_counter()
            preds = await executor.predict(key, {"text": [texts[n % len(texts)]]})
            latencies.append(time.perf_counter() - started)
            assert len(preds) == 1

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    wall = time.perf_counter() - started
    ms = sorted(1000 * x for x in latencies)
    return {
        "p50_ms": round(statistics.median(ms), 3),
        "p99_ms": round(ms[min(len(ms) - 1, int(0.99 * len(ms)))], 3),
        "calls_per_s": round(calls / wall, 1),
    }


def measure_latency(
    registry: Any, texts: list[str], calls: int, concurrency: list[int]
) -> dict[str, Any]:
    version = registry.resolve("turn_intent@prod")
    variants = {
        "actor": ("actors", {}),
        "serve, @serve.batch 2 ms": (
            "serve",
            {"max_batch_size": 32, "batch_wait_timeout_s": 0.002},
        ),
        "serve, @serve.batch 0 ms": ("serve", {"max_batch_size": 32, "batch_wait_timeout_s": 0.0}),
        "serve, no request batching": ("serve", {"max_batch_size": 1}),
    }
    out: dict[str, Any] = {}
    for name, (kind, knobs) in variants.items():
        executor = make(kind, 1, **knobs)

        async def scenario(ex: Any = executor) -> dict[str, Any]:
            await ex.start([version])
            try:
                await _calls(ex, version.key, texts, 50, 1)  # warm-up
                out = {"sequential": await _calls(ex, version.key, texts, calls, 1)}
                for n in concurrency:
                    out[f"concurrent_{n}"] = await _calls(ex, version.key, texts, calls, n)
                return out
            finally:
                await ex.close()

        out[name] = {**asyncio.run(scenario()), "loadavg": load()}
        log(f"  {name}: {out[name]}")
    return out


# --- multiplexing --------------------------------------------------------------------------------


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def measure_multiplex(registry: Any, texts: list[str]) -> dict[str, Any]:
    from ray import serve

    from orchestrator import Registry
    from orchestrator.executors import ServeExecutor
    from orchestrator.executors.serve_options import deployment_name, family_name

    base = registry.resolve("turn_intent@prod")
    twin_cls = type(base.skill_cls.__name__, (base.skill_cls,), {"version": "1.0.0-twin"})
    two = Registry()
    two.register(base.skill_cls, folder=base.folder, manifest=base.manifest)
    two.register(twin_cls, folder=base.folder)
    versions = [two.resolve("turn_intent@1.0.0"), two.resolve("turn_intent@1.0.0-twin")]
    batch = {"text": texts[:8]}
    out: dict[str, Any] = {}

    async def dedicated() -> dict[str, Any]:
        executor = ServeExecutor(num_cpus=2)
        await executor.start(versions)
        try:
            for v in versions:
                await executor.predict(v.key, batch)
            pids = []
            for v in versions:
                name = deployment_name(v)
                about = await serve.get_deployment_handle(name, name).describe.remote()
                pids.append(about["pid"])
            return {"replicas": 2, "rss_mb": [_rss_mb(p) for p in pids]}
        finally:
            await executor.close()

    async def multiplexed() -> dict[str, Any]:
        executor = ServeExecutor(num_cpus=2, multiplex=True)
        await executor.start(versions)
        try:
            handle = serve.get_deployment_handle(
                family_name("turn_intent"), family_name("turn_intent")
            )
            empty = await handle.describe.remote()
            rss_empty = _rss_mb(empty["pid"])  # before any version is loaded
            loads = []
            for v in versions:
                started = time.perf_counter()
                await executor.predict(v.key, batch)  # first call loads the version
                loads.append(round(1000 * (time.perf_counter() - started), 1))
            warm = []
            for v in versions:
                started = time.perf_counter()
                await executor.predict(v.key, batch)
                warm.append(round(1000 * (time.perf_counter() - started), 1))
            full = await handle.describe.remote()
            return {
                "replicas": 1,
                "rss_mb_no_version": rss_empty,
                "rss_mb_two_versions": _rss_mb(full["pid"]),
                "first_call_ms": loads,
                "warm_call_ms": warm,
                "loaded": full["loaded"],
            }
        finally:
            await executor.close()

    out["dedicated"] = asyncio.run(dedicated())
    out["multiplexed"] = asyncio.run(multiplexed())
    log(f"  multiplex: {out}")
    return out


# --- output --------------------------------------------------------------------------------------


def print_report(report: dict[str, Any]) -> None:
    m = report["machine"]
    print(
        f"replicas bench  {m['date']}  {m['cpu_count']} CPUs ({m['cpu_model']}), python "
        f"{m['python']}, ray {m['ray']}, onnxruntime {m['onnxruntime']}; load avg at start "
        f"{m['loadavg_start']}, at end {m['loadavg_end']}"
    )
    lim = report.get("limit")
    if lim and "throughput" in report:
        print_throughput(report, lim)
    if "latency" in report:
        print_latency(report)
    mux = report.get("multiplex")
    if mux:
        d, x = mux["dedicated"], mux["multiplexed"]
        print(
            f"\nmultiplex: two turn_intent versions on dedicated replicas: RSS {d['rss_mb']} MB; "
            f"on one multiplexed replica: {x['rss_mb_no_version']} MB empty, "
            f"{x['rss_mb_two_versions']} MB with both; first call (loads the version) "
            f"{x['first_call_ms']} ms, warm {x['warm_call_ms']} ms"
        )


def print_throughput(report: dict[str, Any], lim: dict[str, Any]) -> None:
    onnx = lim["onnx_1thread"]["median"]
    print(
        f"\n{report['items']:,} turns (CLINC150 test+oos_test), chunk {report['chunk_size']}, "
        f"median of {report['repeat']} runs, items/s"
    )
    print(
        f"limit: turn_intent ONNX in-process (1 thread, batch {lim['batch']}) {onnx:,.0f}/s; "
        f"the 3 skills in-process {lim['three_skills']['median']:,.0f}/s"
    )
    header = (
        f"{'executor':<12} {'items/s':>9} {'/ ONNX':>7} {'/ 3 skills':>10} {'start s':>8}  runs"
    )
    print(header)
    print("-" * len(header))
    rows = report["throughput"]
    for name, row in rows.items():
        print(
            f"{name:<12} {row['median']:>9,.0f} {row['median'] / onnx:>7.3f} "
            f"{row['median'] / lim['three_skills']['median']:>10.3f} {row['startup_s']:>8.1f}  "
            f"{row['runs']}"
        )
    for n in report["replicas"]:
        a, s = rows.get(f"actors_x{n}"), rows.get(f"serve_x{n}")
        if a and s:
            print(f"serve / actors at {n} replica(s): {s['median'] / a['median']:.2f}")


def print_latency(report: dict[str, Any]) -> None:
    print(
        f"\nsingle-turn latency: executor.predict(turn_intent, 1 item), {report['calls']} calls "
        "one after another (seq), then N callers at once (cN); p50/p99 ms, calls/s"
    )
    modes = ["sequential"] + [f"concurrent_{n}" for n in report["concurrency"]]
    labels = ["seq"] + [f"c{n}" for n in report["concurrency"]]
    header = f"{'variant':<28}" + "".join(
        f" {lab + ' p50':>8} {lab + ' p99':>8} {lab + ' /s':>7}" for lab in labels
    )
    print(header)
    print("-" * len(header))
    for name, row in report["latency"].items():
        cells = "".join(
            f" {row[m]['p50_ms']:>8.2f} {row[m]['p99_ms']:>8.2f} {row[m]['calls_per_s']:>7.0f}"
            for m in modes
        )
        print(f"{name:<28}{cells}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=5500)
    parser.add_argument("--chunk-size", type=int, default=2048)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[8, 32])
    parser.add_argument(
        "--sections",
        nargs="+",
        choices=SECTIONS,
        default=list(SECTIONS),
        help="what to measure (default: all)",
    )
    parser.add_argument("--json", action="store_true", help="all numbers as JSON on the last line")
    args = parser.parse_args()

    from orchestrator import Registry
    from orchestrator.executors.ray import connect
    from orchestrator.telemetry.logs import configure_logging

    configure_logging("json", "WARNING")
    registry = Registry.from_folder(ROOT / "skills")
    texts, labels = turn_graph.load_items(args.items)
    items = turn_graph.make_items(texts, labels)
    report: dict[str, Any] = {
        "machine": turn_graph.machine_info(),
        "items": len(items),
        "chunk_size": args.chunk_size,
        "repeat": args.repeat,
        "replicas": args.replicas,
        "calls": args.calls,
        "concurrency": args.concurrency,
    }
    if "limit" in args.sections:
        log("limit ...")
        report["limit"] = measure_limit(registry, texts, args.repeat)
    connect(num_cpus=2)
    from ray import serve

    serve.start(proxy_location="Disabled", http_options={"host": "127.0.0.1"})
    try:
        if "throughput" in args.sections:
            log("throughput ...")
            report["throughput"] = measure_throughput(
                registry, items, args.chunk_size, args.repeat, args.replicas
            )
        if "latency" in args.sections:
            log("latency ...")
            report["latency"] = measure_latency(registry, texts, args.calls, args.concurrency)
        if "multiplex" in args.sections:
            log("multiplex ...")
            report["multiplex"] = measure_multiplex(registry, texts)
    finally:
        import ray

        serve.shutdown()
        ray.shutdown()
    report["machine"]["loadavg_end"] = load()
    print_report(report)
    if args.json:
        print(json.dumps(report, default=str))


if __name__ == "__main__":
    main()
