"""Throughput of the outbound-call turn graph: the runtime against the physical limit.

    .venv/bin/python bench/turn_graph.py [--batch-size 256 1024 4096] [--items N] [--repeat R]
                                         [--executor ray local] [--json] [--no-profile]

Over the same items (CLINC150 test + oos_test utterances, 5,500; ``--items`` repeats them), one run
measures, per batch size (= ``Settings.chunk_size``):

- ``limit``: the turn_intent ONNX model called in-process, one ``session.run`` per batch (texts
  normalised once up front), with the skill's thread settings (intra/inter-op 1 thread) and with
  ONNX Runtime's default threading;
- ``skill``: ``TurnIntent.predict`` called in-process (normalisation + ONNX + decode), and
  ``skills``: the three skills of the turn graph called in-process one after the other (what the
  full graph costs with no runtime at all: the rule skills are per-item Python);
- ``runtime``: ``Runtime.run`` on each executor over the full turn graph without its MiniLM tier
  (:func:`tier1_turn_graph`) and over an intent-only graph (a temporary YAML with just the
  turn_intent step), after an untimed warm-up run.

Medians of ``--repeat`` runs, in items/s. Then a profile of the runtime at one batch size on the
ray executor: where the driver's wall time goes (intake, graph, executor.predict, aggregate), the
Ray round trip against the worker's compute, and the top driver functions under cProfile.
``--json`` writes every number as one JSON object on the last line of stdout.
"""

from __future__ import annotations

import os

# Ray must stay on loopback and out of ~/.ray: set before anything imports ray.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import argparse
import asyncio
import cProfile
import datetime
import functools
import importlib.metadata
import io
import json
import pickle
import platform
import pstats
import resource
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
TURN_GRAPH = ROOT / "graphs" / "outbound_call_turn.yaml"
SKILLS_DIR = ROOT / "skills"

INTENT_ONLY_YAML = """\
name: turn_intent_only
version: "1"
description: The turn graph's intent step alone (bench/turn_graph.py).
inputs:
  utterance: {type: str}
steps:
  - id: intent
    skill: turn_intent@prod
    inputs: {text: input.utterance}
    escalation: {threshold: 0.5}
outputs:
  intent: intent.intent
  intent_confidence: intent.confidence
evaluate:
  output: intent
  label_field: label
"""


def tier1_turn_graph(folder: Path) -> Path:
    """The turn graph without its MiniLM tier, written under ``folder``.

    Throughput is measured on it: this benchmark compares the runtime with the small models'
    in-process limit, and the second tier (~4 ms a turn, on the turns turn_intent is unsure of)
    would swamp that comparison; ``bench/cascade.py`` measures what the second tier costs.
    """
    import yaml

    data = yaml.safe_load(TURN_GRAPH.read_text(encoding="utf-8"))
    for step in data["steps"]:
        if step["id"] == "intent":
            step["escalation"].pop("chain", None)
    path = folder / "outbound_call_turn_tier1.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


# --- inputs and machine ------------------------------------------------------------------------


def load_items(n: int) -> tuple[list[str], list[str]]:
    """``n`` utterances and labels: CLINC150 test + oos_test, repeated as needed."""
    from skills.data import clinc150_eval

    pairs = clinc150_eval("test")
    texts = [pairs[i % len(pairs)][0] for i in range(n)]
    labels = [pairs[i % len(pairs)][1] for i in range(n)]
    return texts, labels


def machine_info() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for pkg in ("ray", "onnxruntime", "langgraph", "pydantic", "numpy"):
        try:
            versions[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            versions[pkg] = None
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
        **versions,
    }


def chunks(seq: list[Any], size: int) -> list[list[Any]]:
    return [seq[i : i + size] for i in range(0, len(seq), size)]


def timed(fn: Callable[[], Any], repeat: int, n: int) -> dict[str, Any]:
    """Run ``fn`` ``repeat`` times; items/s of each run and their median."""
    rates = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        rates.append(n / (time.perf_counter() - started))
    return {"median": statistics.median(rates), "runs": [round(r, 1) for r in rates]}


# --- physical limit: the ONNX model and the skills, in-process ---------------------------------


def onnx_sessions(registry: Any) -> tuple[dict[str, Any], str]:
    """The turn_intent artifact opened twice: the skill's thread settings, and ORT's defaults."""
    import onnxruntime as ort

    version = registry.resolve("turn_intent@prod")
    version.verify()
    path = str(version.artifacts_dir / version.skill_cls.model_file)
    skill_opts = ort.SessionOptions()  # as OnnxSkill.setup
    skill_opts.intra_op_num_threads = version.skill_cls.intra_op_threads
    skill_opts.inter_op_num_threads = 1
    providers = ["CPUExecutionProvider"]
    sessions = {
        "ort_1thread": ort.InferenceSession(path, sess_options=skill_opts, providers=providers),
        "ort_default": ort.InferenceSession(path, providers=providers),
    }
    return sessions, path


def measure_limits(
    registry: Any, texts: list[str], batch_sizes: list[int], repeat: int
) -> dict[str, Any]:
    from skills.turn_intent.skill import normalize_text

    sessions, path = onnx_sessions(registry)
    normalised = [normalize_text(t) for t in texts]
    n = len(texts)
    skills = {}
    for ref in ("turn_intent@prod", "opt_out@prod", "next_action@prod"):
        instance = registry.resolve(ref).create()
        instance.ensure_setup()
        skills[ref.split("@")[0]] = instance
    # Same input layout as TurnIntent.feed, checked once.
    sample = skills["turn_intent"].feed({"text": texts[:8]})["text"]
    assert sample.shape == (8, 1) and list(sample[:, 0]) == normalised[:8], "feed layout changed"

    def onnx_loop(session: Any, size: int, limit: int | None = None) -> None:
        for part in chunks(normalised[:limit], size):
            labels, probs = session.run(None, {"text": np.array(part, dtype=object).reshape(-1, 1)})
            labels.tolist()
            probs.max(axis=1)

    def skill_loop(size: int) -> None:
        for part in chunks(texts, size):
            skills["turn_intent"].predict({"text": part})

    def skills_loop(
        size: int, spent: dict[str, float] | None = None, limit: int | None = None
    ) -> None:
        spent = {} if spent is None else spent
        for part in chunks(texts[:limit], size):
            t0 = time.perf_counter()
            intent = skills["turn_intent"].predict({"text": part})
            t1 = time.perf_counter()
            opt = skills["opt_out"].predict({"text": part})
            t2 = time.perf_counter()
            skills["next_action"].predict(
                {
                    "intent": intent.outputs["intent"],
                    "intent_confidence": np.asarray(intent.confidence).tolist(),
                    "opted_out": opt.outputs["opted_out"],
                }
            )
            t3 = time.perf_counter()
            for key, dt in (
                ("turn_intent", t1 - t0),
                ("opt_out", t2 - t1),
                ("next_action", t3 - t2),
            ):
                spent[key] = spent.get(key, 0.0) + dt

    out: dict[str, Any] = {"model": path, "by_batch": {}}
    for size in batch_sizes:
        # Warm-up, one batch each: ONNX Runtime grows its memory arena on the first run of a size.
        for session in sessions.values():
            onnx_loop(session, size, limit=size)
        skills_loop(size, limit=size)
        row: dict[str, Any] = {
            name: timed(functools.partial(onnx_loop, s, size), repeat, n)
            for name, s in sessions.items()
        }
        row["skill_intent"] = timed(functools.partial(skill_loop, size), repeat, n)
        spent: dict[str, float] = {}
        row["skills_full"] = timed(functools.partial(skills_loop, size, spent), repeat, n)
        row["skills_full"]["us_per_item"] = {
            k: round(1e6 * v / (n * repeat), 2) for k, v in spent.items()
        }
        out["by_batch"][str(size)] = row
        print(
            f"  limit batch {size:>5}: ort 1 thread {row['ort_1thread']['median']:>9,.0f}/s, "
            f"ort default {row['ort_default']['median']:>9,.0f}/s, "
            f"skill {row['skill_intent']['median']:>9,.0f}/s, "
            f"3 skills {row['skills_full']['median']:>8,.0f}/s "
            f"(us/item {row['skills_full']['us_per_item']})",
            file=sys.stderr,
        )
    return out


# --- the runtime ---------------------------------------------------------------------------------


def make_items(texts: list[str], labels: list[str]) -> list[dict[str, Any]]:
    return [
        {"id": i, "utterance": t, "label": lab}
        for i, (t, lab) in enumerate(zip(texts, labels, strict=True))
    ]


def run_job(runtime: Any, graph: Any, items: list[dict[str, Any]]) -> Any:
    result = runtime.run(graph, items)
    if result.ledger.succeeded != len(items):
        raise RuntimeError(f"{graph.name}: {result.ledger.failed} of {len(items)} items failed")
    return result


def _run_keep(keep: list[Any], runtime: Any, graph: Any, items: list[dict[str, Any]]) -> None:
    keep.append(run_job(runtime, graph, items))


def measure_runtime(
    executor_name: str,
    registry: Any,
    graphs: dict[str, Path],
    items: list[dict[str, Any]],
    batch_sizes: list[int],
    repeat: int,
    profile_batch: int | None,
) -> dict[str, Any]:
    from orchestrator import Runtime, Settings
    from orchestrator.executors import make_executor

    executor = make_executor(executor_name, num_cpus=2)
    out: dict[str, Any] = {"by_batch": {}}
    n = len(items)
    runtime = None
    try:
        for size in batch_sizes:
            settings = Settings(executor=executor_name, chunk_size=size, num_cpus=2)
            runtime = Runtime(registry=registry, executor=executor, settings=settings)
            compiled = {name: runtime.compile(path) for name, path in graphs.items()}
            row: dict[str, Any] = {}
            for name, graph in compiled.items():
                # Warm-up, not timed: workers start on the first call, and each ONNX session grows
                # its arena on its first batch of this size.
                warm = runtime.submit(graph, items[:size])
                list(warm)
                out.setdefault("startup_s", round(warm.startup_s, 3))
                last: list[Any] = []
                job = functools.partial(_run_keep, last, runtime, graph, items)
                row[name] = timed(job, repeat, n)
                ledger = last[-1].ledger
                row[name]["accuracy"] = last[-1].accuracy
                row[name]["escalated"] = ledger.escalated
                row[name]["skill_seconds"] = {
                    k: round(v, 4) for k, v in ledger.skill_seconds.items()
                }
            out["by_batch"][str(size)] = row
            print(
                f"  {executor_name} batch {size:>5}: full {row['full']['median']:>8,.0f}/s, "
                f"intent-only {row['intent']['median']:>8,.0f}/s",
                file=sys.stderr,
            )
            if executor_name == "ray" and size == profile_batch:
                out["profile"] = profile_runtime(runtime, compiled, items, size)
    finally:
        asyncio.run(executor.close())
    return out


# --- profile (from outside: wrappers and cProfile; orchestrator/ is not modified) --------------


class Timers:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    def add(self, key: str, seconds: float) -> None:
        self.seconds[key] += seconds
        self.calls[key] += 1

    def report(self) -> dict[str, Any]:
        return {
            k: {"s": round(v, 4), "calls": self.calls[k]} for k, v in sorted(self.seconds.items())
        }


def instrumented_run(runtime: Any, graph: Any, items: list[dict[str, Any]]) -> dict[str, Any]:
    """One job with perf_counter wrappers around the runtime's phases (patched, then restored)."""
    import orchestrator.runtime.runtime as rt

    timers = Timers()
    executor = runtime.executor
    saved = (rt.prepare_chunk, rt.collect_chunk, rt.Job._invoke, rt._chunked)

    def wrap_sync(key: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                timers.add(key, time.perf_counter() - started)

        return wrapper

    def chunked(source: Any, size: int) -> Any:
        gen = saved[3](source, size)
        while True:
            started = time.perf_counter()
            try:
                raw = next(gen)
            except StopIteration:
                return
            timers.add("chunking (Item per item)", time.perf_counter() - started)
            yield raw

    async def invoke(self: Any, chunk: Any) -> Any:
        started = time.perf_counter()
        try:
            return await saved[2](self, chunk)
        finally:
            timers.add("graph ainvoke (whole chunk)", time.perf_counter() - started)

    original_predict = executor.predict

    async def predict(skill_key: str, batch: Any) -> Any:
        started = time.perf_counter()
        try:
            return await original_predict(skill_key, batch)
        finally:
            timers.add(f"executor.predict {skill_key}", time.perf_counter() - started)

    rt.prepare_chunk = wrap_sync("intake prepare_chunk", saved[0])
    rt.collect_chunk = wrap_sync("aggregate collect_chunk", saved[1])
    rt.Job._invoke = invoke
    rt._chunked = chunked
    executor.predict = predict
    try:
        started = time.perf_counter()
        run_job(runtime, graph, items)
        wall = time.perf_counter() - started
    finally:
        rt.prepare_chunk, rt.collect_chunk, rt.Job._invoke, rt._chunked = saved
        del executor.predict
    return {"wall_s": round(wall, 4), "items_per_s": round(len(items) / wall, 1), **timers.report()}


def profiled_run(runtime: Any, graph: Any, items: list[dict[str, Any]], top: int) -> dict[str, Any]:
    """One job under cProfile (driver process only): idle (waiting on workers) vs busy."""
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    run_job(runtime, graph, items)
    profiler.disable()
    wall = time.perf_counter() - started
    stats = pstats.Stats(profiler)
    idle = sum(
        tt
        for (filename, _, name), (_, _, tt, _, _) in stats.stats.items()  # type: ignore[attr-defined]
        if name in ("<method 'poll' of 'select.epoll' objects>", "<built-in method select.select>")
        or (filename == "~" and "epoll" in name)
    )
    rows = []
    for (filename, line, name), (_cc, nc, tt, ct, _) in stats.stats.items():  # type: ignore[attr-defined]
        short = filename.split("site-packages/")[-1].replace(str(ROOT) + "/", "")
        rows.append({"func": f"{short}:{line}({name})", "ncalls": nc, "tottime": tt, "cumtime": ct})
    by_tot = sorted(rows, key=lambda r: -r["tottime"])[:top]
    by_cum = sorted(
        (r for r in rows if "orchestrator/" in r["func"] or "skills/" in r["func"]),
        key=lambda r: -r["cumtime"],
    )[:top]
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(top)
    rnd = [{**r, "tottime": round(r["tottime"], 4), "cumtime": round(r["cumtime"], 4)}
           for r in (*by_tot, *by_cum)]  # fmt: skip
    return {
        "wall_s": round(wall, 4),
        "driver_idle_s": round(idle, 4),
        "driver_busy_s": round(wall - idle, 4),
        "top_tottime": rnd[: len(by_tot)],
        "top_orchestrator_cumtime": rnd[len(by_tot) :],
    }


def ray_round_trip(runtime: Any, texts: list[str], size: int, repeat: int = 7) -> dict[str, Any]:
    """One batch straight to the turn_intent actor: submit (driver serialisation), await, and the
    worker's own compute (the same skill, in-process), plus pickled sizes each way."""
    import ray

    executor = runtime.executor
    key = next(k for k in executor._actors if k.startswith("turn_intent@"))
    actor = executor._actors[key]
    batch = {"text": texts[:size]}
    local = runtime.registry.resolve(key).create()
    local.ensure_setup()
    preds = local.predict(batch)
    submit, total, compute = [], [], []
    for _ in range(repeat):
        started = time.perf_counter()
        ref = actor.predict.remote(dict(batch))
        submitted = time.perf_counter()
        ray.get(ref)
        done = time.perf_counter()
        local.predict(batch)
        compute.append(time.perf_counter() - done)
        submit.append(submitted - started)
        total.append(done - started)
    med = statistics.median
    return {
        "batch": size,
        "submit_ms": round(1000 * med(submit), 3),
        "round_trip_ms": round(1000 * med(total), 3),
        "worker_compute_in_process_ms": round(1000 * med(compute), 3),
        "overhead_ms": round(1000 * (med(total) - med(compute)), 3),
        "request_pickle_bytes": len(pickle.dumps(batch, protocol=5)),
        "reply_pickle_bytes": len(pickle.dumps(preds, protocol=5)),
    }


def profile_runtime(
    runtime: Any, compiled: dict[str, Any], items: list[dict[str, Any]], size: int
) -> dict[str, Any]:
    texts = [item["utterance"] for item in items]
    out: dict[str, Any] = {"batch": size}
    for name, graph in compiled.items():
        out[f"phases_{name}"] = instrumented_run(runtime, graph, items)
    # Without chunk overlap, the phases add up to the wall time.
    from orchestrator import Runtime, Settings

    serial = Runtime(
        registry=runtime.registry,
        executor=runtime.executor,
        settings=Settings(executor="ray", chunk_size=size, num_cpus=2, max_inflight_chunks=1),
    )
    out["phases_full_inflight1"] = instrumented_run(serial, compiled["full"], items)
    out["cprofile_full"] = profiled_run(runtime, compiled["full"], items, top=25)
    out["ray_round_trip"] = ray_round_trip(runtime, texts, size)
    out["per_item_costs"] = per_item_costs(runtime, compiled["full"], items[:size])
    return out


def per_item_costs(runtime: Any, graph: Any, items: list[dict[str, Any]]) -> dict[str, Any]:
    """Microseconds per item of the driver's per-item pieces, measured on one chunk."""
    from orchestrator.accounting.ledger import Ledger
    from orchestrator.graph.aggregate import Scorecard, collect_chunk
    from orchestrator.graph.compiler import RunContext
    from orchestrator.graph.intake import prepare_chunk
    from orchestrator.store.item import Item

    n = len(items)
    resolved = graph.resolved

    def us(fn: Callable[[], Any], reps: int = 5) -> float:
        best = float("inf")
        for _ in range(reps):
            started = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - started)
        return round(1e6 * best / n, 3)

    raws = [Item(i, item) for i, item in enumerate(items)]
    chunk = prepare_chunk(raws, resolved.item_model)
    state = {"size": n, "columns": chunk.columns, "errors": {}, "stats": []}
    loop = asyncio.new_event_loop()
    try:
        final = loop.run_until_complete(
            graph.langgraph.ainvoke(
                state, {"recursion_limit": 20}, context=RunContext(executor=runtime.executor)
            )
        )
    finally:
        loop.close()

    class InstantExecutor:
        """Answers every predict at once with constant columns: what is left is graph overhead."""

        async def predict(self, skill_key: str, batch: Any) -> Any:
            from orchestrator.skill import Predictions

            size = len(next(iter(batch.values())))
            version = runtime.registry.resolve(skill_key)
            fields = version.skill_cls.Output.model_fields
            return Predictions({f: [None] * size for f in fields}, [1.0] * size)

    def graph_only() -> None:
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(
                graph.langgraph.ainvoke(
                    state, {"recursion_limit": 20}, context=RunContext(executor=InstantExecutor())
                )
            )
        finally:
            loop.close()

    return {
        "items": n,
        "graph_ainvoke_instant_executor_ms_per_chunk": round(us(graph_only) * n / 1000, 3),
        "raw_item_wrap_us": us(lambda: [Item(i, item) for i, item in enumerate(items)]),
        "prepare_chunk_us": us(lambda: prepare_chunk(raws, resolved.item_model)),
        "pydantic_model_validate_us": us(
            lambda: [resolved.item_model.model_validate(item) for item in items]
        ),
        "collect_chunk_us": us(
            lambda: collect_chunk(
                resolved, chunk, final, Ledger("x", "x"), Scorecard(graph.spec.evaluate)
            )
        ),
    }


# --- output ------------------------------------------------------------------------------------


def print_table(report: dict[str, Any]) -> None:
    m = report["machine"]
    print(
        f"turn graph bench  {m['date']}  {m['cpu_count']} CPUs ({m['cpu_model']}), "
        f"python {m['python']}, ray {m['ray']}, onnxruntime {m['onnxruntime']}, "
        f"langgraph {m['langgraph']}, load avg at start {m['loadavg_start']}"
    )
    print(
        f"{report['items']:,} items (CLINC150 test+oos_test), median of {report['repeat']} runs, "
        "items/s; ratio = runtime intent-only / ONNX limit (1 thread), full / 3 skills in-process"
    )
    print(
        f"load avg at end {m['loadavg_end']}, driver peak RSS {m['driver_max_rss_mb']:,.0f} MB "
        "(other users share this machine: ±30 %)"
    )
    limits = report["limit"]["by_batch"]
    for executor, data in report["runtime"].items():
        print(f"\nexecutor {executor} (worker start-up {data.get('startup_s', 0):.1f} s, untimed)")
        header = (
            f"{'batch':>6} {'ORT 1thr':>10} {'ORT dflt':>10} {'skill':>10} {'3 skills':>10} "
            f"{'rt intent':>10} {'rt full':>10} {'intent/lim':>10} {'full/3sk':>9}"
        )
        print(header)
        print("-" * len(header))
        for size, row in data["by_batch"].items():
            lim = limits[size]
            one, dflt = lim["ort_1thread"]["median"], lim["ort_default"]["median"]
            sk, full3 = lim["skill_intent"]["median"], lim["skills_full"]["median"]
            ri, rf = row["intent"]["median"], row["full"]["median"]
            print(
                f"{size:>6} {one:>10,.0f} {dflt:>10,.0f} {sk:>10,.0f} {full3:>10,.0f} "
                f"{ri:>10,.0f} {rf:>10,.0f} {ri / one:>10.3f} {rf / full3:>9.3f}"
            )
    print("\nin-process µs/item per skill (3 skills loop):")
    for size, row in limits.items():
        print(f"  batch {size:>5}: {row['skills_full']['us_per_item']}")
    for executor, data in report["runtime"].items():
        prof = data.get("profile")
        if prof:
            print_profile(executor, prof)


def print_profile(executor: str, prof: dict[str, Any]) -> None:
    print(f"\nprofile: executor {executor}, batch {prof['batch']}")
    print("  (phase sums can pass 100 %: chunks overlap; the last block runs one chunk at a time)")
    for key in ("phases_full", "phases_intent", "phases_full_inflight1"):
        phases = prof[key]
        print(f"  {key}: wall {phases['wall_s']:.3f} s ({phases['items_per_s']:,.0f} items/s)")
        for name, value in phases.items():
            if isinstance(value, dict):
                share = 100 * value["s"] / phases["wall_s"]
                print(
                    f"    {name:<42} {value['s']:>8.4f} s {share:>5.1f}%  ({value['calls']} calls)"
                )
    cp = prof["cprofile_full"]
    print(
        f"  cProfile (full graph, driver): wall {cp['wall_s']:.3f} s, "
        f"idle in epoll {cp['driver_idle_s']:.3f} s, busy {cp['driver_busy_s']:.3f} s"
    )
    print("    top tottime:")
    for r in cp["top_tottime"][:15]:
        print(f"      {r['tottime']:>8.4f} s {r['ncalls']:>8}  {r['func']}")
    print("    orchestrator/skills by cumtime:")
    for r in cp["top_orchestrator_cumtime"][:12]:
        print(f"      {r['cumtime']:>8.4f} s {r['ncalls']:>8}  {r['func']}")
    rtt = prof["ray_round_trip"]
    print(
        f"  ray round trip, turn_intent, {rtt['batch']} items: submit {rtt['submit_ms']} ms, "
        f"total {rtt['round_trip_ms']} ms, worker compute (in-process) "
        f"{rtt['worker_compute_in_process_ms']} ms, overhead {rtt['overhead_ms']} ms; "
        f"request {rtt['request_pickle_bytes']:,} B, reply {rtt['reply_pickle_bytes']:,} B pickled"
    )
    pic = prof["per_item_costs"]
    print(
        "  driver per item (µs, best of 5 on one chunk): "
        + ", ".join(f"{k[:-3]} {v}" for k, v in pic.items() if k.endswith("_us"))
    )
    print(
        "  graph ainvoke with an instant executor (LangGraph + compiler overhead): "
        f"{pic['graph_ainvoke_instant_executor_ms_per_chunk']} ms per chunk of {pic['items']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch-size", type=int, nargs="+", default=[256, 1024, 4096])
    parser.add_argument("--items", type=int, default=5500, help="items (CLINC150 test repeated)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs; the median is reported")
    parser.add_argument("--executor", nargs="+", choices=["ray", "local"], default=["ray", "local"])
    parser.add_argument("--profile-batch", type=int, default=1024, help="profiled batch (ray)")
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--json", action="store_true", help="all numbers as JSON on the last line")
    args = parser.parse_args()

    from orchestrator import Registry
    from orchestrator.telemetry.logs import configure_logging

    configure_logging("json", "WARNING")  # logs to stderr; stdout is the table
    registry = Registry.from_folder(SKILLS_DIR)
    texts, labels = load_items(args.items)
    items = make_items(texts, labels)
    report: dict[str, Any] = {
        "machine": machine_info(),
        "items": len(items),
        "repeat": args.repeat,
        "batch_sizes": args.batch_size,
    }
    print("measuring the in-process limit ...", file=sys.stderr)
    report["limit"] = measure_limits(registry, texts, args.batch_size, args.repeat)
    report["runtime"] = {}
    with tempfile.TemporaryDirectory() as tmp:
        intent_only = Path(tmp) / "turn_intent_only.yaml"
        intent_only.write_text(INTENT_ONLY_YAML)
        graphs = {"full": tier1_turn_graph(Path(tmp)), "intent": intent_only}
        for name in args.executor:
            print(f"measuring the runtime on {name} ...", file=sys.stderr)
            profile_batch = None if args.no_profile else args.profile_batch
            report["runtime"][name] = measure_runtime(
                name, registry, graphs, items, args.batch_size, args.repeat, profile_batch
            )
    if "ray" in args.executor:
        import ray

        ray.shutdown()
    report["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    report["machine"]["driver_max_rss_mb"] = round(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
    )
    print_table(report)
    if args.json:
        print(json.dumps(report, default=str))


if __name__ == "__main__":
    main()
