"""The turn graph with the cascade on CLINC150 test: what stays small, what escalates, at what accuracy.

    .venv/bin/python bench/cascade.py [--threshold T] [--items-per-call 20]
    .venv/bin/python bench/cascade.py --builds 5 [--chain-level 0.975] [--output builds.json]

Two designs side by side in one run, each on all 5,500 test turns:

- ``tier1``: turn_intent alone, at its own calibrated threshold;
- ``tier1+minilm`` (the graph as shipped): turn_intent, then turn_intent_minilm on what it is
  unsure of, at the two thresholds calibrated together
  (``orchestrator skills calibrate turn_intent_minilm --after turn_intent``).

The big model is played by an ORACLE: a stub OpenAI-compatible server on loopback that answers
every escalated turn with its CLINC150 gold label. It measures the cascade's routing (how many
items escalate, how accurate the kept ones are, how many big-model calls), not a real model's
quality. Thresholds come from the manifests, calibrated on CLINC150 val (never on test);
``--threshold`` sets one number for every tier instead. Kept accuracy comes with a two-sided 95 %
Wilson interval (``kept_accuracy_ci95``): the test split is a sample too.

**Perturbed builds** (``--builds N``): the same measurement on N builds side by side, in one run,
to see how far the figures move from build to build (another CPU's build differs by floating-point
rounding; ``--seed`` reproduces that here). It copies the checkout once (the files git sees and
the built ``skills/*/artifacts``, as tests/test_reproducible_build.py does) into a temporary
folder, then for seed 0 (the plain build as this checkout has it), 1, ..., N-1 builds
turn_intent and turn_intent_minilm in the copy with that seed (``orchestrator skills build
turn_intent turn_intent_minilm --seed S``: retrained, recalibrated on val) and runs this script
in a subprocess with ``PYTHONPATH`` and the skills folder at the copy, so the copy's skills and
thresholds are the ones measured. ``--chain-level L`` first sets
``calibration.chain_confidence_level: L`` in the copy's turn_intent_minilm manifest (the Wilson
margin of the chain's pair; ``bench/confidence_level.py`` chooses it on val). The checkout itself
is never rebuilt. Per build: thresholds, kept accuracy with its interval, escalation rates,
second-tier share; then min / median / max across the builds, and the machine. ~2.5 min a build
on 2 cores (MiniLM reuses the training embeddings cached in ``artifacts/.embeddings``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

os.environ.setdefault("ORCHESTRATOR_LOG_LEVEL", "WARNING")

import orchestrator
from orchestrator import GraphSpec, LocalExecutor, Registry, Runtime
from orchestrator.config import Settings
from orchestrator.llm.gateway import LLMGateway, Provider
from orchestrator.registry.build_record import cpu_model
from orchestrator.telemetry.logs import configure_logging
from orchestrator.testing import StubLLMServer
from skills.data import OOS_INTENT, clinc150_eval

# Found from this file, so the module imports from any working directory (bench/run_all.py).
ROOT = Path(__file__).resolve().parent.parent
TURN_GRAPH = ROOT / "graphs" / "outbound_call_turn.yaml"
#: the skills a perturbed build retrains (the chain of the turn graph's intent step)
PERTURBED = ("turn_intent", "turn_intent_minilm")
#: z of a two-sided 95 % interval
Z95 = 1.959964


def wilson_interval(correct: int, n: int, z: float = Z95) -> list[float]:
    """Two-sided Wilson score interval of a proportion ``correct / n`` (``[0, 1]`` when n is 0)."""
    if n == 0:
        return [0.0, 1.0]
    p = correct / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return [
        round((centre - spread) / (1 + z * z / n), 4),
        round((centre + spread) / (1 + z * z / n), 4),
    ]


def turn_graph(
    threshold: float | None, items_per_call: int, *, chain: bool = True, **escalation: Any
) -> GraphSpec:
    """graphs/outbound_call_turn.yaml with answered_by exposed and the intent step's policy set.

    ``threshold`` None keeps ``calibrated``; ``chain`` False drops the MiniLM tier; ``escalation``
    adds other keys of the intent step's policy (``max_concurrency``, ...).
    """
    with TURN_GRAPH.open(encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    for step in data["steps"]:
        if step["id"] == "intent":
            policy = step["escalation"]
            if threshold is not None:
                policy["threshold"] = threshold
            if not chain:
                policy.pop("chain", None)
            policy.update(items_per_call=items_per_call, **escalation)
    data["outputs"]["answered_by"] = "intent.answered_by"
    return GraphSpec.from_dict(data)


def measure(
    rt: Runtime, spec: GraphSpec, turns: list[tuple[str, str]], items_per_call: int
) -> dict[str, Any]:
    """Run every turn through ``spec`` once; the routing and accuracy figures."""
    items = [{"id": n, "utterance": t, "label": lab} for n, (t, lab) in enumerate(turns)]
    started = time.perf_counter()
    result = rt.run(spec, items)
    wall = time.perf_counter() - started
    oos = [lab == OOS_INTENT for _, lab in turns]
    escalated = [r.escalate for r in result.results]
    step = next(s for s in rt.compile(spec).resolved.steps if s.id == "intent")
    kept = len(items) - sum(escalated)
    kept_accuracy = result.kept_accuracy or 0.0
    answered_by = Counter(r.outputs["answered_by"] for r in result.results)
    return {
        "thresholds": [round(step.threshold, 4), *(round(t, 4) for t in step.chain_thresholds)],
        "items": len(items),
        "kept": kept,
        "kept_accuracy": round(kept_accuracy, 4),
        "kept_accuracy_ci95": wilson_interval(round(kept_accuracy * kept), kept),
        "escalation_rate_all": round(sum(escalated) / len(items), 4),
        "escalation_rate_in_scope": round(
            sum(e for e, o in zip(escalated, oos, strict=True) if not o) / oos.count(False), 4
        ),
        "escalation_rate_oos": round(
            sum(e for e, o in zip(escalated, oos, strict=True) if o) / oos.count(True), 4
        ),
        "answered_by": dict(answered_by),
        # the items the first tier passed on (kept by the second, or escalated past it)
        "second_tier_share": round(1 - answered_by[step.skill.key] / len(items), 4)
        if step.chain
        else 0.0,
        "llm_calls": result.ledger.llm_calls,
        "llm_calls_all_big_model": -(-len(items) // items_per_call),
        "final_accuracy_with_oracle": round(result.accuracy or 0.0, 4),
        "degraded": result.ledger.degraded,
        "wall_s": round(wall, 2),
    }


def measure_here(threshold: float | None, items_per_call: int) -> dict[str, Any]:
    """Both designs on CLINC150 test with this interpreter's skills (the default run)."""
    configure_logging("console", "WARNING")
    skills_dir = Settings().skills_dir
    registry = Registry.from_folder(skills_dir)
    turns = clinc150_eval("test")
    gold = {text: label for text, label in turns}

    def oracle(request: dict) -> dict:
        items = json.loads(request["messages"][-1]["content"].split("Items:\n", 1)[1])
        return {"answers": {str(i["index"]): {"intent": gold[i["text"]]} for i in items}}

    report: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "big_model": "ORACLE (stub server answering with CLINC150 gold labels)",
        "skills_dir": str(Path(skills_dir).resolve()),
        "orchestrator_dir": str(Path(orchestrator.__file__).resolve().parent),
    }
    with StubLLMServer(default=oracle) as stub:
        gateway = LLMGateway([Provider(name="oracle", base_url=stub.base_url, model="oracle")])
        settings = Settings(escalate=True, executor="local")
        with Runtime(
            registry=registry, executor=LocalExecutor(), gateway=gateway, settings=settings
        ) as rt:
            for name, chain in (("tier1", False), ("tier1+minilm", True)):
                spec = turn_graph(threshold, items_per_call, chain=chain)
                first = {"id": 0, "utterance": turns[0][0], "label": turns[0][1]}
                rt.run(spec, [first])  # untimed: the skills load
                report[name] = measure(rt, spec, turns, items_per_call)
    return report


# --- perturbed builds, side by side --------------------------------------------------------------


def machine() -> dict[str, Any]:
    """CPU model and cores of this machine (the builds' figures depend on it)."""
    return {
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
    }


def copy_checkout(target: Path) -> None:
    """The files git sees (tracked or not ignored), every skill's built artifacts (the cached
    MiniLM training embeddings included) and the shared encoder; tests/test_reproducible_build.py
    uses it too."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, check=True, capture_output=True, text=True, timeout=120,
    ).stdout  # fmt: skip
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    for artifacts in sorted((ROOT / "skills").glob("*/artifacts")):
        shutil.copytree(artifacts, target / artifacts.relative_to(ROOT))
    encoders = ROOT / "skills" / "_encoders"  # the shared encoder the embedding skills pin
    if encoders.is_dir():
        shutil.copytree(encoders, target / encoders.relative_to(ROOT))


def set_chain_level(copy: Path, level: float) -> None:
    """``calibration.chain_confidence_level`` in the copy's turn_intent_minilm manifest."""
    path = copy / "skills" / "turn_intent_minilm" / "manifest.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["calibration"]["chain_confidence_level"] = float(level)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def _copy_env(copy: Path) -> dict[str, str]:
    """The environment that makes a subprocess load the copy's orchestrator and skills."""
    return {
        **os.environ,
        "PYTHONPATH": str(copy),
        "ORCHESTRATOR_SKILLS_DIR": str(copy / "skills"),
        "ORCHESTRATOR_LOG_LEVEL": "WARNING",
    }


def _run(copy: Path, argv: list[str], timeout: int) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, *argv], cwd=copy, env=_copy_env(copy), capture_output=True, text=True,
        timeout=timeout, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv[:4])} ... exited {done.returncode}:\n{done.stderr[-3000:]}"
        )
    return done


def build_in_copy(copy: Path, seed: int) -> dict[str, Any]:
    """Build the chain's skills in the copy (seed 0: a plain build, which only recalibrates what
    the manifests' settings made stale); what the build records say about it."""
    argv = [
        "-c",
        "from orchestrator.cli.commands import main; main()",
        "skills",
        "build",
        *PERTURBED,
    ]
    started = time.perf_counter()
    done = _run(copy, argv + (["--seed", str(seed)] if seed else []), timeout=1800)
    took = time.perf_counter() - started
    first, second = (_record(copy, name) for name in PERTURBED)
    chain = second["calibration_after"][f"{PERTURBED[0]}@1.0.0"]
    return {
        "build_s": round(took, 1),
        "log": [line for line in done.stderr.splitlines() if line.strip()][-6:],
        "model_sha256": {
            name: rec["artifacts"]["model.onnx"]["sha256"][:12]
            for name, rec in zip(PERTURBED, (first, second), strict=True)
        },
        "val_chain": {
            k: chain.get(k)
            for k in (
                "first_threshold",
                "threshold",
                "confidence_level",
                "val_coverage",
                "val_selective_accuracy",
                "val_second_share",
            )
        },
        "val_turn_intent": {
            k: first["calibration"].get(k)
            for k in ("threshold", "confidence_level", "val_coverage", "val_selective_accuracy")
        },
    }


def _record(copy: Path, skill: str) -> dict[str, Any]:
    path = copy / "skills" / skill / "artifacts" / "build.json"
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def measure_copy(copy: Path, items_per_call: int) -> dict[str, Any]:
    """This script's default run, in a subprocess on the copy's skills."""
    argv = [str(copy / "bench" / "cascade.py"), "--items-per-call", str(items_per_call)]
    started = time.perf_counter()
    done = _run(copy, argv, timeout=1200)
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    loaded = (Path(report["skills_dir"]), Path(report["orchestrator_dir"]))
    if loaded != ((copy / "skills").resolve(), (copy / "orchestrator").resolve()):
        raise RuntimeError(f"measured with {loaded}, not the copy's skills and orchestrator")
    report["measure_s"] = round(time.perf_counter() - started, 1)
    return report


def spread(values: list[float]) -> dict[str, float]:
    return {
        "min": round(min(values), 4),
        "median": round(statistics.median(values), 4),
        "max": round(max(values), 4),
    }


def measure_builds(builds: int, chain_level: float | None, items_per_call: int) -> dict[str, Any]:
    """Seeds 0..builds-1 built and measured one after another in one copy of the checkout."""
    started = time.perf_counter()
    report: dict[str, Any] = {
        "machine": machine(),
        "big_model": "ORACLE (stub server answering with CLINC150 gold labels)",
        "chain_level": chain_level,
        "builds": [],
    }
    with tempfile.TemporaryDirectory(prefix="cascade-builds-") as tmp:
        copy = Path(tmp) / "checkout"
        copy_checkout(copy)
        if chain_level is not None:
            set_chain_level(copy, chain_level)
        print(
            f"copied the checkout to {copy} in {time.perf_counter() - started:.0f}s",
            file=sys.stderr,
        )
        for seed in range(builds):
            built = build_in_copy(copy, seed)
            measured = measure_copy(copy, items_per_call)
            row = {"seed": seed, **built}
            for design in ("tier1", "tier1+minilm"):
                m = measured[design]
                row[design] = {
                    k: m[k]
                    for k in ("thresholds", "kept", "kept_accuracy", "kept_accuracy_ci95",
                              "escalation_rate_in_scope", "escalation_rate_all",
                              "escalation_rate_oos", "second_tier_share")
                }  # fmt: skip
            row["measure_s"] = measured["measure_s"]
            report["builds"].append(row)
            print(f"build {seed}: {json.dumps(row)}", file=sys.stderr, flush=True)
    for design in ("tier1", "tier1+minilm"):
        rows = [b[design] for b in report["builds"]]
        report[design] = {
            key: spread([r[key] for r in rows])
            for key in ("kept_accuracy", "escalation_rate_in_scope", "escalation_rate_all",
                        "second_tier_share")
        }  # fmt: skip
        report[design]["lowest_ci95_low"] = min(r["kept_accuracy_ci95"][0] for r in rows)
        report[design]["builds_at_0.97"] = sum(r["kept_accuracy"] >= 0.97 for r in rows)
    report["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    report["wall_s"] = round(time.perf_counter() - started, 1)
    return report


def print_builds(report: dict[str, Any]) -> None:
    """The per-build table and the spread, for people (the JSON follows)."""
    m = report["machine"]
    level = report["chain_level"] if report["chain_level"] is not None else "manifest default"
    print(
        f"machine: {m['cpu_model']}, {m['cpu_count']} cores ({m['cpu_affinity']} usable), "
        f"Python {m['python']}; load {m['loadavg_start']} -> {m['loadavg_end']}; "
        f"chain confidence level: {level}; {report['wall_s']} s"
    )
    for design in ("tier1", "tier1+minilm"):
        print(f"\n== {design}: CLINC150 test, 5,500 turns, oracle big model ==")
        print(
            "seed  thresholds              kept acc  95% Wilson       esc in-scope  esc all  2nd tier"
        )
        for b in report["builds"]:
            r = b[design]
            lo, hi = r["kept_accuracy_ci95"]
            thresholds = " / ".join(f"{t:.4f}" for t in r["thresholds"])
            print(
                f"{b['seed']:<4}  {thresholds:<22}  {r['kept_accuracy']:.4f}    [{lo:.4f}, {hi:.4f}]  "
                f"{r['escalation_rate_in_scope']:.4f}        {r['escalation_rate_all']:.4f}   "
                f"{r['second_tier_share']:.4f}"
            )
        s = report[design]
        for key in ("kept_accuracy", "escalation_rate_in_scope", "escalation_rate_all",
                    "second_tier_share"):  # fmt: skip
            print(f"  {key}: min {s[key]['min']:.4f}, median {s[key]['median']:.4f}, "
                  f"max {s[key]['max']:.4f}")  # fmt: skip
        print(f"  builds at >= 0.97: {s['builds_at_0.97']} of {len(report['builds'])}; "
              f"lowest interval bound {s['lowest_ci95_low']:.4f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threshold", type=float, default=None)
    parser.add_argument("--items-per-call", type=int, default=20)
    parser.add_argument(
        "--builds", type=int, default=0,
        help="measure this many builds (seed 0 plain, 1..N-1 perturbed) in a copy of the checkout",
    )  # fmt: skip
    parser.add_argument(
        "--chain-level", type=float, default=None,
        help="with --builds: calibration.chain_confidence_level of the copy's turn_intent_minilm",
    )  # fmt: skip
    parser.add_argument("--output", type=Path, help="with --builds: also write the JSON here")
    args = parser.parse_args()
    if not args.builds:
        print(json.dumps(measure_here(args.threshold, args.items_per_call)))
        return
    if args.threshold is not None:
        parser.error("--builds measures the calibrated thresholds; drop --threshold")
    report = measure_builds(args.builds, args.chain_level, args.items_per_call)
    report["command"] = " ".join([".venv/bin/python bench/cascade.py", *sys.argv[1:]])
    print_builds(report)
    if args.output is not None:
        args.output.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
