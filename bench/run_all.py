"""Every performance comparison side by side, in one run: writes BENCHMARKS.md and the raw JSON.

    .venv/bin/python bench/run_all.py [--quick] [--only SECTION ...] [--items N] [--repeat R]
                                      [--big-model-items N] [--jobs N] [--latency-rate R ...]
                                      [--tiers-data NAME ...] [--bakeoff-limit N] ...
    .venv/bin/python bench/run_all.py --render-only   # BENCHMARKS.md again from the JSON

Sections (each reuses the bench script that owns the comparison, or the product's CLI):

- ``throughput``: the raw ONNX limit vs ``Runtime.run`` (ray and local) vs a plain LangGraph
  invoked item by item (``turn_graph.py``, ``plain_langgraph.py``);
- ``big_model``: every turn to the big model vs the cascade (``big_model_vs_cascade.py``);
- ``plan_cache``: planner calls with and without the plan cache (``plan_cache.py``);
- ``latency``: real-time turn latency from the job service (``invoke_latency.py``);
- ``two_tiers``: two tiers from any CSV (issue #15): ``orchestrator skills train text-classifier``
  then ``orchestrator skills eval``, run as subprocesses in a temporary skills folder, on
  CLINC150 written as a CSV (also with ``--label-share oos=0.18``) and on BANKING77
  (``bench/data/banking77``): tier 1 alone vs both tiers;
- ``bakeoff``: the embedded big model vs the small tiers on their unsure items
  (``provider_bakeoff.measure``);
- ``distill``: three oracle distillation rounds on a CSV-trained skill, both tiers
  (``distill_rounds.run_rounds``);
- ``kb``: a CLINC150 knowledge base (top-1, top-5, coverage, selective accuracy) and big-model
  calls per 1,000 questions, cascade vs RAG-only (``kb.clinc_section``, ``kb.calls_section``;
  not its 100k-passage ``large`` section, ~25 minutes, run by hand).

An hour or more on 2 cores with the defaults, measured section by section at load 2-7: the four
original sections ~10-15 minutes, two_tiers ~29 (training is cross-fitted by default), bakeoff
~4, kb ~2, distill ~6 with one held-out part; distill trains with a 5 % part, so cross-fitting
fits 20 copies per tier and its round 0 alone ran past 16 minutes (not measured to the end;
both measured before the copies were fitted in parallel worker processes). It
writes ``BENCHMARKS.md`` and the raw figures in ``bench/benchmarks.json``. ``--only SECTION ...``
measures those sections and MERGES them into the existing JSON (the other sections stay, each
with the run that measured it), then renders the whole Markdown again: a section can be
refreshed alone. ``--quick`` is a smoke run (~5-8 minutes) that writes the git-ignored
``bench/results/quick.{md,json}`` instead, so it never overwrites the published figures; it runs
two_tiers on BANKING77 only, at 20 training and 10 test rows per label, the bake-off on 10 items
(one call), and skips ``distill`` and ``kb`` (minutes each; no smaller size says anything)
unless ``--only`` names them. A section that fails is recorded as failed and the others still
run (exit status 1). Ray stays on loopback with 2 CPUs; the embedded big model and the job
service listen on 127.0.0.1 only. No encoder is downloaded: ``ORCHESTRATOR_ENCODERS_DIR`` points
at the repo's built ``skills/_encoders``.
"""

from __future__ import annotations

import os

# Ray must stay on loopback and out of ~/.ray: set before anything imports ray.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("ORCHESTRATOR_LOG_LEVEL", "WARNING")

import argparse
import collections
import contextlib
import csv
import datetime
import importlib.metadata
import json
import platform
import shlex
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks_md import render_markdown, render_text, section_table

ROOT = Path(__file__).resolve().parent.parent
# Skills trained in temporary folders (two_tiers, distill, kb; the CLI subprocesses inherit it)
# reuse the repo's built sentence encoder: nothing is downloaded.
os.environ.setdefault("ORCHESTRATOR_ENCODERS_DIR", str(ROOT / "skills" / "_encoders"))
RESULTS = ROOT / "bench" / "results"  # git-ignored: the --quick smoke runs go here
SECTIONS = (
    "throughput",
    "big_model",
    "plan_cache",
    "latency",
    "two_tiers",
    "bakeoff",
    "distill",
    "kb",
)
#: minutes each, and no smaller size of them says anything: --quick runs them only with --only
QUICK_SKIPS = ("distill", "kb")
RAY_CPUS = 2
BANKING77 = ROOT / "bench" / "data" / "banking77"
#: two_tiers' datasets: CLINC150 as a CSV, the same calibrated for its test mix, BANKING77
TIERS_DATA = ("clinc150", "clinc150_oos_share", "banking77")
#: issue #15's goal for two tiers from a CSV
TWO_TIERS_GOAL = {"coverage": 0.9, "selective_accuracy": 0.97, "labels": 77}
#: issue #15's goal for distillation: this many percent fewer escalations at equal kept accuracy
DISTILL_GOAL_CUT_PCT = 40.0
#: the out-of-scope share of CLINC150's test (the CSV's own is 0.7 %)
CLINC_OOS_SHARE = 0.18

#: the full run's sizes (an hour or more on 2 cores); QUICK overrides them for a smoke run
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
    "tiers_data": list(TIERS_DATA),
    "tiers_train_per_label": None,  # every row
    "tiers_test_per_label": None,
    "bakeoff_skill": "turn_intent",
    "bakeoff_limit": 20,  # unsure items: two calls of ten, ~4 minutes with the embedded model
    "distill_base_per_intent": 40,
    "distill_traffic_per_intent": 20,
    "distill_traffic_oos": 100,
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
    "tiers_data": ["banking77"],
    "tiers_train_per_label": 20,
    "tiers_test_per_label": 10,
    "bakeoff_limit": 10,
    "output": RESULTS / "quick.md",
    "json": RESULTS / "quick.json",
}
PACKAGES = ("onnxruntime", "ray", "langgraph", "llama_cpp_python", "scikit-learn", "numpy")


# --- arguments -----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Flags left unset take the FULL defaults, or the QUICK ones with ``--quick``."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="~5-8 minute smoke run (own output files)")
    p.add_argument(
        "--only",
        nargs="+",
        choices=SECTIONS,
        help="run these sections only and merge them into the existing --json",
    )
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
    p.add_argument("--tiers-data", nargs="+", choices=TIERS_DATA, help="two_tiers: datasets")
    p.add_argument("--tiers-train-per-label", type=int, help="two_tiers: cap training rows")
    p.add_argument("--tiers-test-per-label", type=int, help="two_tiers: cap test rows")
    p.add_argument("--bakeoff-skill", help="bakeoff: a built-in skill")
    p.add_argument("--bakeoff-limit", type=int, help="bakeoff: unsure items sent (seeded)")
    p.add_argument("--distill-base-per-intent", type=int, help="distill: round 0's rows")
    p.add_argument("--distill-traffic-per-intent", type=int, help="distill: each round's")
    p.add_argument("--distill-traffic-oos", type=int, help="distill: each round's oos turns")
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


# --- issue #15 and #18 sections ------------------------------------------------------------------


def two_tiers(args: argparse.Namespace) -> dict[str, Any]:
    """Tier 1 alone vs both tiers, trained and evaluated by the product's CLI on each dataset."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="two-tiers-") as tmp:
        work = Path(tmp)
        for name in args.tiers_data:
            rows.append(two_tiers_row(name, work, args))
    return {
        "goal": TWO_TIERS_GOAL,
        "train_per_label": args.tiers_train_per_label,
        "test_per_label": args.tiers_test_per_label,
        "rows": rows,
    }


def two_tiers_row(name: str, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """``skills train text-classifier`` (both tiers) then ``skills eval --json`` on one dataset."""
    title, train, test, label, extra = tiers_dataset(name, work, args)
    skills, skill = work / "skills", f"bench_{name}"
    train_argv = ["skills", "train", "text-classifier", "--name", skill, "--csv", str(train)]
    train_argv += ["--text-column", "text", "--label-column", label, "--skills-dir", str(skills)]
    trained, train_s = orchestrator_cli([*train_argv, *extra])
    eval_argv = ["skills", "eval", skill, "--csv", str(test), "--label-column", label]
    evaluated, eval_s = orchestrator_cli([*eval_argv, "--skills-dir", str(skills), "--json"])
    keys = ("accuracy", "coverage", "kept", "escalated", "selective_accuracy")
    single = {k: evaluated.get("single", evaluated)[k] for k in keys}
    chain = {k: evaluated[k] for k in keys} if "single" in evaluated else None
    cut = None
    if chain is not None and single["escalated"]:
        cut = round(100 * (1 - chain["escalated"] / single["escalated"]), 1)
    best = chain or single
    per_label = label_counts(train, label)
    return {
        "dataset": title,
        "labels": len(per_label),
        "train_rows": sum(per_label.values()),
        "test_rows": evaluated["rows"],
        "train_s": round(train_s, 1),
        "eval_s": round(eval_s, 1),
        "single": single,
        "chain": chain,
        "escalations_cut_pct": cut,
        "tiers": evaluated.get("tiers", []),
        "meets_goal": bool(
            (best["selective_accuracy"] or 0) >= TWO_TIERS_GOAL["selective_accuracy"]
            and best["coverage"] >= TWO_TIERS_GOAL["coverage"]
        ),
        "commands": [  # the temporary folder shown as TMP
            ("orchestrator " + shlex.join(argv)).replace(str(work), "TMP")
            for argv in ([*train_argv, *extra], [*eval_argv, "--skills-dir", str(skills), "--json"])
        ],
        "warning": trained.get("warning"),
        # what training said about the chain (None: no thresholds stored for the pair)
        "train_chain": trained.get("chain"),
    }


def tiers_dataset(
    name: str, work: Path, args: argparse.Namespace
) -> tuple[str, Path, Path, str, list[str]]:
    """(title, train CSV, test CSV, label column, extra training options) of a two_tiers dataset;
    rows capped per label when ``--tiers-{train,test}-per-label`` asks."""
    per_train, per_test = args.tiers_train_per_label, args.tiers_test_per_label
    if name == "banking77":
        train, test = read_rows(BANKING77 / "train.csv"), read_rows(BANKING77 / "test.csv")
        return (
            "BANKING77",
            write_rows(work / "banking77_train.csv", ["text", "category"], train, per_train),
            write_rows(work / "banking77_test.csv", ["text", "category"], test, per_test),
            "category",
            [],
        )
    from skills.data import clinc150

    train_rows = clinc150("train") + clinc150("oos_train")
    test_rows = clinc150("test") + clinc150("oos_test")
    extra, title = [], "CLINC150 CSV"
    if name == "clinc150_oos_share":
        extra = ["--label-share", f"oos={CLINC_OOS_SHARE}"]
        title += f", --label-share oos={CLINC_OOS_SHARE}"
    return (
        title,
        write_rows(work / "clinc150_train.csv", ["text", "label"], train_rows, per_train),
        write_rows(work / "clinc150_test.csv", ["text", "label"], test_rows, per_test),
        "label",
        extra,
    )


def read_rows(path: Path) -> list[tuple[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return [(row[0], row[1]) for row in list(csv.reader(handle))[1:]]


def label_counts(path: Path, column: str) -> collections.Counter[str]:
    """Rows per label of a CSV."""
    with path.open(encoding="utf-8", newline="") as handle:
        return collections.Counter(row[column] for row in csv.DictReader(handle))


def write_rows(
    path: Path, header: list[str], rows: list[tuple[str, str]], per_label: int | None
) -> Path:
    """``rows`` as a CSV; with ``per_label``, only the first that many rows of each label."""
    seen: collections.Counter[str] = collections.Counter()
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        for text, label in rows:
            seen[label] += 1
            if per_label is None or seen[label] <= per_label:
                writer.writerow([text, label])
    return path


def orchestrator_cli(argv: list[str]) -> tuple[dict[str, Any], float]:
    """Run ``orchestrator ARGV`` (the product's own CLI, next to this interpreter) and return its
    JSON report (stdout's last line) and its wall time; its stderr passes through."""
    script = Path(sys.executable).with_name("orchestrator")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "orchestrator.cli"]
    print(f"$ orchestrator {shlex.join(argv)}", file=sys.stderr, flush=True)
    started = time.perf_counter()
    done = subprocess.run(
        [*command, *argv], stdout=subprocess.PIPE, text=True, cwd=ROOT, check=False
    )
    seconds = time.perf_counter() - started
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"orchestrator {shlex.join(argv[:3])} exited {done.returncode}")
    return json.loads(lines[-1]), seconds


def bakeoff(args: argparse.Namespace, gateway: Any) -> dict[str, Any]:
    """The big model vs the small tiers on their unsure items (``provider_bakeoff.measure``)."""
    import provider_bakeoff

    with contextlib.redirect_stdout(sys.stderr):  # stdout is the tables
        report = provider_bakeoff.measure(
            gateway,
            skill=args.bakeoff_skill,
            limit=args.bakeoff_limit,
            items_per_call=args.items_per_call,
        )
    for provider in report["providers"]:
        provider["tokens"] = provider["prompt_tokens"] + provider["completion_tokens"]
    return report


def distill(args: argparse.Namespace) -> dict[str, Any]:
    """Three oracle rounds of distillation (``distill_rounds.run_rounds``) and the goal's cut."""
    import distill_rounds

    with contextlib.redirect_stdout(sys.stderr):
        out = distill_rounds.run_rounds(
            args.distill_base_per_intent,
            args.distill_traffic_per_intent,
            traffic_oos=args.distill_traffic_oos,
        )
    first, last = out["rounds"][0], out["rounds"][-1]
    out["base_per_intent"] = args.distill_base_per_intent
    out["traffic_per_intent"] = args.distill_traffic_per_intent
    out["goal_cut_pct"] = DISTILL_GOAL_CUT_PCT
    kept_ok = last["selective_accuracy"] >= out["target_accuracy"]
    # as deployed, and at equal kept accuracy (round 0's, on test: free of calibration noise)
    for suffix, before, after, accurate in (
        ("", first, last, kept_ok),
        ("equal_", first["at_reference"], last["at_reference"], True),
    ):
        for scope in ("all", "in_scope"):
            was, now = before[f"escalation_{scope}"], after[f"escalation_{scope}"]
            cut = round(100 * (1 - now / was), 1) if was else None
            out[f"cut_pct_{suffix}{scope}"] = cut
            met = cut is not None and cut >= DISTILL_GOAL_CUT_PCT and accurate
            out[f"goal_met_{suffix}{scope}"] = bool(met)
    return out


def knowledge_base(args: argparse.Namespace) -> dict[str, Any]:
    """bench/kb.py's ``clinc`` and ``calls`` sections, in one run (not ``large``)."""
    import kb as bench_kb

    with (
        tempfile.TemporaryDirectory(prefix="bench-kb-") as tmp,
        contextlib.redirect_stdout(sys.stderr),
    ):
        clinc = bench_kb.clinc_section(Path(tmp))
        calls = bench_kb.calls_section(Path(tmp))
    cascade, rag = calls["cascade"]["llm_calls_per_1000"], calls["rag_only"]["llm_calls_per_1000"]
    return {
        "clinc": clinc,
        "calls": calls,
        "per": 1000,
        "call_sample": bench_kb.CALL_SAMPLE,
        "calls_ratio": round(rag / cascade, 2) if cascade else None,
        # the `large` section, measured by hand (its figures: bench/kb.py's docstring)
        "large_by_hand": {"passages": 100_000, "minutes": 25},
    }


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


def chosen_sections(args: argparse.Namespace) -> list[str]:
    """``--only``'s sections, else all of them (``--quick`` leaves out :data:`QUICK_SKIPS`)."""
    if args.only:
        return [name for name in SECTIONS if name in args.only]
    return [name for name in SECTIONS if not (args.quick and name in QUICK_SKIPS)]


def measure_all(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Every chosen section, in order; the big model starts once, for the sections that ask it."""
    from orchestrator import Registry
    from orchestrator.config import Settings
    from orchestrator.llm.audit import AuditLog
    from orchestrator.llm.embedded import default_gateway
    from orchestrator.telemetry.logs import configure_logging

    configure_logging("json", "WARNING")  # logs to stderr; stdout is the tables
    registry = Registry.from_folder(Settings().skills_dir)
    chosen = chosen_sections(args)
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
            "two_tiers": lambda: two_tiers(args),
            "bakeoff": lambda: bakeoff(args, gateway()),
            "distill": lambda: distill(args),
            "kb": lambda: knowledge_base(args),
        }
        for name in SECTIONS:
            if name in chosen:
                sections[name] = run_section(name, work[name])
    return sections


# --- output --------------------------------------------------------------------------------------


def merged(earlier: dict[str, Any] | None, results: dict[str, Any]) -> dict[str, Any]:
    """``results`` (an ``--only`` run) with the sections of ``earlier`` it did not measure.

    A kept section keeps the run that measured it under ``earlier_run`` (its command, options and
    machine, date included), so BENCHMARKS.md can say where each figure comes from; the top-level
    command and machine are the latest run's. Sections come out in :data:`SECTIONS` order.
    """
    if not earlier or "sections" not in earlier:
        return results
    sections = dict(results["sections"])
    for name, section in earlier["sections"].items():
        if name in sections or name not in SECTIONS:
            continue
        kept = dict(section)
        kept.setdefault("measured_at", earlier.get("machine", {}).get("date"))
        kept.setdefault(
            "earlier_run",
            {k: earlier.get(k) for k in ("command", "options", "machine")},
        )
        sections[name] = kept
    order = [name for name in SECTIONS if name in sections]
    return {**results, "sections": {name: sections[name] for name in order}}


def read_results(path: Path) -> dict[str, Any] | None:
    """The results JSON at ``path``, or None when there is none yet."""
    if not path.exists():
        return None
    try:
        out = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise SystemExit(
            f"{_shown(path)} is not JSON ({exc}): fix it, or run without --only"
        ) from None
    return out if isinstance(out, dict) else None


def write(results: dict[str, Any], json_path: Path, md_path: Path) -> None:
    json_path.parent.mkdir(parents=True, exist_ok=True)
    md_path.parent.mkdir(parents=True, exist_ok=True)
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
    earlier = read_results(args.json) if args.only else None  # read first: fail before measuring
    started = time.perf_counter()
    info = machine()
    print(f"machine: {json.dumps(info)}", file=sys.stderr)
    sections = measure_all(args)
    for section in sections.values():
        section["measured_at"] = info["date"]
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
    write(merged(earlier, results), args.json, args.output)
    return 1 if any("error" in s for s in sections.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
