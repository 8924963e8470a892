"""The provider bake-off on real data: the embedded model vs the small tiers on their unsure items.

```
.venv/bin/python bench/provider_bakeoff.py [--skill turn_intent] [--limit 100] [--json]
.venv/bin/python bench/provider_bakeoff.py --domains banking,meta [--limit 100]
```

- ``--skill NAME`` (default ``turn_intent``): a built-in skill (built first if stale), measured
  on CLINC150 test + oos_test written as a labelled CSV. turn_intent's small tiers are
  turn_intent and turn_intent_minilm (calibrated together): the unsure items are those both are
  unsure of, exactly what the turn graph's cascade sends to the big model.
- ``--domains a,b``: a CSV text classifier trained here (TF-IDF tier) from CLINC150 train rows of
  those domains (15 intents each), calibrated to 97 %, measured on their test rows: the shape of
  the skill in issue #15 (a CSV skill at ~50 % on its escalated items).

The big model is the embedded SmolLM2-135M (llama.cpp on loopback, one call at a time), asked the
cascade's way (:mod:`orchestrator.learning.bakeoff`). Prints the side-by-side table, then the
whole report as one JSON line. Measurements go to a throwaway store. Figures move with the
machine: record them with the machine they ran on.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("ORCHESTRATOR_LOG_LEVEL", "WARNING")


def write_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return path


def builtin_skill(name: str, tmp: Path) -> tuple[Path, Path]:
    """The skills folder (``name`` built if stale) and CLINC150 test + oos_test as a CSV."""
    from orchestrator.learning.build import build_skills
    from skills.data import clinc150_eval

    build_skills(ROOT / "skills", [name])
    return ROOT / "skills", write_csv(tmp / "clinc150_test.csv", clinc150_eval("test"))


def domain_skill(domains: list[str], tmp: Path) -> tuple[Path, Path, str]:
    """A CSV text classifier of CLINC150's ``domains`` (trained here), and their test rows."""
    from orchestrator.learning.train import train_text_classifier
    from skills.data import DATASETS_DIR, clinc150

    intents = json.loads((DATASETS_DIR / "clinc150" / "domains.json").read_text(encoding="utf-8"))
    unknown = [d for d in domains if d not in intents]
    if unknown:
        raise SystemExit(f"unknown domain(s) {unknown}; CLINC150 has {sorted(intents)}")
    labels = {intent for d in domains for intent in intents[d]}
    train = write_csv(tmp / "train.csv", [r for r in clinc150("train") if r[1] in labels])
    test = write_csv(tmp / "test.csv", [r for r in clinc150("test") if r[1] in labels])
    name = "clinc_" + "_".join(domains)
    # the TF-IDF tier only: the shape of the skill in the issue (one tier, then the big model)
    train_text_classifier(train, name=name, skills_dir=tmp / "skills", tiers=("tfidf",))
    return tmp / "skills", test, name


def cascade_runs(
    skills_dir: Path, csv_path: Path, tiers: list[str], settings: Any, gateway: Any, per_call: int
) -> list[dict[str, Any]]:
    """Every CSV row through a one-step graph of the small ``tiers`` (skill, then chain) with
    escalation on, twice: forced (what ``--escalate`` did before measurements counted) and routed
    by the stored measurement. Every unsure row is sent in the forced run: use it with
    ``--domains`` (tens of unsure rows), not turn_intent on CLINC150 (~1,400)."""
    from orchestrator import GraphSpec, LocalExecutor, Registry, Runtime
    from orchestrator.learning.calibrate import label_field_of

    version = Registry.from_folder(skills_dir).resolve(tiers[0])
    [field] = list(version.skill_cls.Input.model_fields)
    label = label_field_of(version.skill_cls)
    escalation = {"threshold": "calibrated", "chain": tiers[1:], "items_per_call": per_call,
                  "max_concurrency": 1, "timeout_s": 180.0}  # fmt: skip
    spec = GraphSpec.from_dict(
        {
            "name": "bakeoff_cascade",
            "inputs": {field: "str"},
            "steps": [
                {
                    "id": "s",
                    "skill": version.key,
                    "inputs": {field: f"input.{field}"},
                    "escalation": escalation,
                }
            ],
            "outputs": {"answer": f"s.{label}"},
        }
    )
    with csv_path.open(encoding="utf-8") as lines:
        items = [
            {"id": i, field: r["text"], "label": r["label"]}
            for i, r in enumerate(csv.DictReader(lines))
        ]
    runs = []
    for force in (True, False):
        config = settings.model_copy(update={"escalate": True, "force_escalation": force})
        started = time.perf_counter()
        with Runtime(
            registry=Registry.from_folder(skills_dir),
            executor=LocalExecutor(),
            gateway=gateway,
            settings=config,
        ) as runtime:
            result = runtime.run(spec, items)
        ledger = result.ledger
        runs.append(
            {
                "run": "--escalate (forced: as before)" if force else "--escalate (measured)",
                "items": ledger.items,
                "escalated": ledger.escalated,
                "llm_calls": ledger.llm_calls,
                "answered_by_big_model": ledger.answered.get("big_model", 0),
                "held_back": ledger.answered.get("held_back", 0),
                "degraded": ledger.degraded,
                "accuracy": round(result.accuracy or 0.0, 4),
                "kept_accuracy": round(result.kept_accuracy or 0.0, 4),
                "wall_s": round(time.perf_counter() - started, 1),
            }
        )
    return runs


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def print_table(report: dict[str, Any]) -> None:
    small = report["small"]
    print(
        f"\n{report['skill']}: {small['items']} unsure items measured "
        f"({report['unsure']} unsure of {report['rows']} rows; tiers {' -> '.join(small['tiers'])}"
        f", thresholds {', '.join(f'{t:.4f}' for t in small['thresholds'])})"
    )
    header = ("answered by", "accuracy", "correct", "failures", "calls", "tokens", "cost $",
              "p50 s/call", "p95 s/call", "verdict")  # fmt: skip
    rows = [
        ("small model", f"{small['accuracy']:.3f}", f"{small['correct']}/{small['items']}", "0",
         "0", "0", "0", f"{small['latency_p50_s']:.4f}", f"{small['latency_p95_s']:.4f}", "")
    ]  # fmt: skip
    for p in report["providers"]:
        rows.append(
            (f"{p['provider']} ({p['model']})", f"{p['provider_accuracy']:.3f}",
             f"{p['provider_correct']}/{p['items']}", str(p["failures"]), str(p["calls"]),
             str(p["prompt_tokens"] + p["completion_tokens"]), f"{p['cost_usd']:.4f}",
             f"{p['latency_p50_s']:.2f}", f"{p['latency_p95_s']:.2f}",
             f"{p['verdict']} (gain {p['gain']:+.3f}, p={p['p_value']:.3g})")
        )  # fmt: skip
    widths = [max(len(str(r[i])) for r in (header, *rows)) for i in range(len(header))]
    for row in (header, *rows):
        print(" | ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)))
    print(f"recommended (margin {report['margin']}): {report['recommended']}")
    if report["left_out_labels"]:
        print(f"rows left out (labels the skill does not know): {report['left_out_labels']}")


def measure(
    gateway: Any,
    *,
    skill: str = "turn_intent",
    domains: list[str] | None = None,
    limit: int | None = 100,
    items_per_call: int = 10,
    margin: float = 0.05,
    cascade: bool = False,
) -> dict[str, Any]:
    """The bake-off's report (the ``--json`` object) of ``gateway``'s providers against the small
    tiers of ``skill`` (or of a CSV skill of CLINC150's ``domains``, trained here), on at most
    ``limit`` unsure items; ``cascade`` adds the forced and measured ``--escalate`` runs.
    ``bench/run_all.py`` calls it with the big model it started for its other sections."""
    from orchestrator.config import Settings
    from orchestrator.learning.bakeoff import BakeOffOptions, run_bakeoff

    with tempfile.TemporaryDirectory(prefix="bakeoff-bench-") as folder:
        tmp = Path(folder)
        if domains:
            skills_dir, csv_path, skill = domain_skill(domains, tmp)
        else:
            skills_dir, csv_path = builtin_skill(skill, tmp)
        settings = Settings(skills_dir=skills_dir, data_dir=tmp / "data")
        options = BakeOffOptions(
            margin=margin,
            limit=limit,
            items_per_call=items_per_call,
            max_concurrency=1,  # the embedded server answers one request at a time
            timeout_s=180.0,
        )
        started = time.perf_counter()
        report = run_bakeoff(
            skill, csv_path, options=options, settings=settings, gateway=gateway
        ).to_dict()
        if cascade:
            tiers = report["small"]["tiers"]
            report["cascade"] = cascade_runs(
                skills_dir, csv_path, tiers, settings, gateway, items_per_call
            )
        report["wall_s"] = round(time.perf_counter() - started, 1)
    report["machine"] = machine()
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--skill", default="turn_intent", help="a built-in skill")
    parser.add_argument("--domains", help="train a CSV skill from these CLINC150 domains instead")
    parser.add_argument("--limit", type=int, default=100, help="unsure items sent (seeded sample)")
    parser.add_argument("--items-per-call", type=int, default=10)
    parser.add_argument("--margin", type=float, default=0.05)
    parser.add_argument(
        "--cascade",
        action="store_true",
        help="then run every CSV row through the skill with --escalate, forced and measured",
    )
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    args = parser.parse_args()

    from orchestrator.llm.embedded import EmbeddedModel
    from orchestrator.llm.gateway import LLMGateway
    from orchestrator.telemetry.logs import configure_logging

    configure_logging("console", "WARNING")  # the table and the JSON line only, on stdout
    with EmbeddedModel() as model:
        report = measure(
            LLMGateway([model.provider]),
            skill=args.skill,
            domains=args.domains.split(",") if args.domains else None,
            limit=args.limit,
            items_per_call=args.items_per_call,
            margin=args.margin,
            cascade=args.cascade,
        )
    if not args.json:
        print_table(report)
        for run in report.get("cascade", []):
            print(", ".join(f"{k}: {v}" for k, v in run.items()))
        print(f"wall {report['wall_s']} s on {report['machine']}")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
