"""Three distillation rounds on CLINC150 (or BANKING77): do escalations fall at equal kept accuracy?

    .venv/bin/python bench/distill_rounds.py [--base-per-intent 40] [--traffic-per-intent 20]
                                             [--traffic-oos 100] [--target 0.95]
                                             [--tiers tfidf,minilm] [--data banking77]
                                             [--oracle all]

The skill is trained from a CSV with ``orchestrator skills train``'s default two tiers (TF-IDF,
then the shared encoder's tier calibrated as its chain; ``--tiers tfidf`` for one): the items
the big model sees, and the escalation rate measured, are those the whole chain leaves unsure.

The big model is played by an ORACLE: every escalated item is answered with its CLINC150 gold
label (a real model would make some mistakes; this measures the loop, not a model's quality).

Data, with nothing leaking between roles:

- round 0 trains on the first ``--base-per-intent`` rows per intent of CLINC150 ``train`` plus
  ``oos_train`` (a 5 % stratified slice of it is the trainer's own check split);
- rounds 1-3 each send fresh traffic: the next ``--traffic-per-intent`` rows per intent of
  ``train`` (disjoint slices, never in the base set) and ``--traffic-oos`` out-of-scope turns; the
  current prod version answers them, items under its threshold go to the oracle, and its answers
  become examples;
- each round then runs :func:`orchestrator.learning.distill.distill` (base + every example so far -> a
  canary), and promotes it;
- every version is calibrated on ``val`` + ``oos_val`` (weighted to 18 % out-of-scope, as
  turn_intent) at the same target, and measured on ``test`` + the rest of ``oos_test`` (never
  used to choose anything).

Where the traffic's out-of-scope turns come from: CLINC150 has 100 ``oos_train`` rows (all in
round 0's set), 100 ``oos_val`` (they calibrate) and 1,000 ``oos_test``. Real traffic holds
out-of-scope turns, and a loop that never sees one cannot learn them, so each round takes 100 of
``oos_test`` (rows ``i`` with ``i % 10 == round - 1``: spread over the file) and the test keeps the
other 700 (13.5 % of its 5,200 items). Round 0 trains on the same rows either way;
``--traffic-oos 0`` gives the earlier bench (no out-of-scope traffic, all 1,000 in test).

``--data banking77`` runs the same loop on BANKING77 (``bench/data/banking77``, 77 intents, no
out-of-scope label): each intent's train rows, in file order, give 10 % to calibrate, 40 % to
round 0 and 16.7 % to each round's traffic; ``test.csv`` measures (``--base-per-intent``,
``--traffic-per-intent`` and ``--traffic-oos`` are CLINC150's).

Two measures of each version on the test items:

- **as deployed**: with its calibrated thresholds. Each round's calibration lands at a slightly
  different selective accuracy on test (above the target, by a different amount each time), and a
  version that keeps a higher accuracy escalates more, so these rates mix the model's progress
  with calibration noise;
- **at equal kept accuracy** (the issue's words): the fewest escalations each version needs to
  keep round 0's selective accuracy on the test items, both thresholds chosen on those items with
  no margin. This compares the versions' risk-coverage curves at one point; it is a measurement
  only (a deployed skill's thresholds come from its calibration split, never from test labels).

``--oracle all`` is a ceiling, not the loop: the oracle answers every traffic turn, sure or not,
so each round learns from all its traffic. It bounds what any choice of which items to send the big
model could teach the same model in three rounds of this traffic.

Skills run in-process (no Ray). Takes about 3-4 minutes on 2 cores.
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
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("ORCHESTRATOR_LOG_LEVEL", "WARNING")

import numpy as np

from orchestrator.learning.calibrate import calibrate, predict_labels
from orchestrator.learning.chain_calibrate import calibrate_after, choose_chain_thresholds
from orchestrator.learning.chain_eval import chain_report, find_chain
from orchestrator.learning.distill import distill, promote
from orchestrator.learning.evaluate import load_version
from orchestrator.learning.train import train_text_classifier
from orchestrator.registry.calibrations import stored_threshold
from orchestrator.store.examples import Example, ExampleStore
from skills.data import OOS_INTENT, clinc150, clinc150_eval

NAME = "clinc_intent"
ROUNDS = 3
OOS_SHARE = 0.18
Pairs = list[tuple[str, str]]


def slices(
    per_base: int, per_round: int, oos_per_round: int = 0
) -> tuple[Pairs, list[Pairs], Pairs]:
    """(base rows, [traffic of round 1..3], test items): disjoint slices of CLINC150 (see the
    module docstring for where each round's ``oos_per_round`` out-of-scope turns come from)."""
    seen: dict[str, int] = defaultdict(int)
    base: Pairs = []
    traffic: list[Pairs] = [[] for _ in range(ROUNDS)]
    for text, label in clinc150("train"):
        n = seen[label]
        seen[label] += 1
        if n < per_base:
            base.append((text, label))
        elif (n - per_base) // per_round < ROUNDS:
            traffic[(n - per_base) // per_round].append((text, label))
    oos_test = clinc150("oos_test")
    sent: set[int] = set()  # oos_test rows that go to traffic: round k takes every stride-th from k
    if oos_per_round:
        stride = len(oos_test) // oos_per_round
        if stride < ROUNDS + 1:
            raise ValueError(
                f"--traffic-oos {oos_per_round} leaves too few oos_test rows to measure"
            )
        for k in range(ROUNDS):
            picked = range(k, stride * oos_per_round, stride)
            traffic[k] += [oos_test[i] for i in picked]
            sent.update(picked)
    test_oos = [row for i, row in enumerate(oos_test) if i not in sent]
    return base + clinc150("oos_train"), traffic, clinc150("test") + test_oos


BANKING77 = Path(__file__).resolve().parent / "data" / "banking77"
#: BANKING77's split of each intent's train rows (file order): calibration, base, then each round
BANKING77_SHARES = (0.1, 0.4, 0.5 / ROUNDS)


def banking77_slices() -> tuple[Pairs, list[Pairs], Pairs, Pairs]:
    """(base rows, [traffic of round 1..3], calibration rows, test items) of BANKING77: every
    intent's train rows cut in file order by :data:`BANKING77_SHARES` (no intent has fewer than
    35), test.csv measured. No out-of-scope label: every turn is in scope."""

    def read(name: str) -> Pairs:
        with (BANKING77 / name).open(encoding="utf-8", newline="") as fh:
            return [(row["text"], row["category"]) for row in csv.DictReader(fh)]

    per_intent: dict[str, Pairs] = defaultdict(list)
    for row in read("train.csv"):
        per_intent[row[1]].append(row)
    val_share, base_share, round_share = BANKING77_SHARES
    base: Pairs = []
    val: Pairs = []
    traffic: list[Pairs] = [[] for _ in range(ROUNDS)]
    for rows in per_intent.values():
        n = len(rows)
        cuts = [round(n * (val_share + base_share + k * round_share)) for k in range(ROUNDS + 1)]
        start = round(n * val_share)
        val += rows[:start]
        base += rows[start : cuts[0]]
        for k in range(ROUNDS):
            traffic[k] += rows[cuts[k] : cuts[k + 1]]
    return base, traffic, val, read("test.csv")


def unsure(version_key: str, skills_dir: Path, texts: list[str]) -> np.ndarray:
    """Which items the version (with its chain, when it has one) leaves to the big model."""
    version = load_version(version_key, skills_dir)
    chain = find_chain(version, skills_dir)
    _, confidence = predict_labels(version.create(), {"text": texts})
    if chain is None:
        return confidence < (stored_threshold(version) or 0.0)
    second, t1, t2 = chain
    out = confidence < t1
    rest = [i for i in range(len(texts)) if out[i]]
    _, c2 = predict_labels(second.create(), {"text": [texts[i] for i in rest]})
    out[rest] = c2 < t2
    return out


def at_accuracy(
    version_key: str, skills_dir: Path, test: list[tuple[str, str]], accuracy: float
) -> dict[str, float]:
    """The fewest escalations the version (with its chain) needs to keep ``accuracy`` on the test
    items: both thresholds chosen on them, no margin (see the module docstring)."""
    version = load_version(version_key, skills_dir)
    texts = [t for t, _ in test]
    gold = np.array([y for _, y in test], dtype=object)
    p1, c1 = predict_labels(version.create(), {"text": texts})
    right1 = np.asarray(p1, dtype=object) == gold
    chain = find_chain(version, skills_dir)
    p2, c2 = (p1, c1) if chain is None else predict_labels(chain[0].create(), {"text": texts})
    right2 = np.asarray(p2, dtype=object) == gold
    pair = choose_chain_thresholds(
        c1, right1, c2, right2, accuracy, after=version.key, confidence_level=None
    )
    first, second = np.asarray(c1), np.asarray(c2)
    kept = (first >= pair.first_threshold) | (second >= pair.threshold)
    in_scope = gold != OOS_INTENT
    return {
        "escalation_all": round(float((~kept).mean()), 4),
        "escalation_in_scope": round(float((~kept[in_scope]).mean()), 4),
        "selective_accuracy": round(float(pair.selective_accuracy), 4),
    }


def measure(version_key: str, skills_dir: Path, test: list[tuple[str, str]]) -> dict[str, float]:
    version = load_version(version_key, skills_dir)
    threshold = stored_threshold(version) or 0.0
    texts = [t for t, _ in test]
    gold = np.array([y for _, y in test], dtype=object)
    in_scope = gold != OOS_INTENT
    chain = find_chain(version, skills_dir)
    if chain is not None:
        whole = chain_report(version, chain, {"text": texts}, list(gold))
        escalated = unsure(version_key, skills_dir, texts)
        return {
            "threshold": round(chain[1], 4),
            "accuracy": whole["accuracy"],
            "escalation_all": round(float(escalated.mean()), 4),
            "escalation_in_scope": round(float(escalated[in_scope].mean()), 4),
            "selective_accuracy": whole["selective_accuracy"],
        }
    predicted, confidence = predict_labels(version.create(), {"text": texts})
    correct = np.array([p == y for p, y in zip(predicted, gold, strict=True)])
    kept = confidence >= threshold
    return {
        "threshold": round(threshold, 4),
        "accuracy": round(float(correct.mean()), 4),
        "escalation_all": round(float((~kept).mean()), 4),
        "escalation_in_scope": round(float((~kept[in_scope]).mean()), 4),
        "selective_accuracy": round(float(correct[kept].mean()), 4) if kept.any() else float("nan"),
    }


def run_rounds(
    base_per_intent: int = 40,
    traffic_per_intent: int = 20,
    target: float = 0.95,
    tiers: str = "tfidf,minilm",
    traffic_oos: int = 100,
    data: str = "clinc150",
    oracle: str = "unsure",
) -> dict[str, Any]:
    """Round 0 and three distillation rounds (see the module docstring); prints each row as it
    finishes and returns the summary (the ``--json`` object). ``bench/run_all.py`` calls it."""
    args = argparse.Namespace(
        base_per_intent=base_per_intent,
        traffic_per_intent=traffic_per_intent,
        target=target,
        tiers=tiers,
        traffic_oos=traffic_oos,
    )
    started = time.perf_counter()
    answered = "every traffic turn (a ceiling)" if oracle == "all" else "every escalated item"
    # cross-fitted in five parts either way (the fraction only sets the count of parts)
    name, val_fraction = (NAME, 0.05) if data == "clinc150" else ("banking77_intent", 0.2)
    if data == "banking77":
        base, traffic, val, test = banking77_slices()
        val_data: tuple[list[str], list[str], dict[str, float] | None] = (
            [t for t, _ in val],
            [y for _, y in val],
            None,
        )
        print(
            f"big model: ORACLE (answers {answered} with its BANKING77 gold label)\n"
            f"per intent of train.csv: {BANKING77_SHARES[0]:.0%} calibrate ({len(val)} rows), "
            f"{BANKING77_SHARES[1]:.0%} base ({len(base)} rows), {BANKING77_SHARES[2]:.1%} per "
            f"round ({len(traffic[0])} items); target {args.target}; measured on test.csv "
            f"({len(test)} items)",
            flush=True,
        )
    else:
        base, traffic, test = slices(
            args.base_per_intent, args.traffic_per_intent, args.traffic_oos
        )
        val = clinc150_eval("val")
        val_data = ([t for t, _ in val], [y for _, y in val], {OOS_INTENT: OOS_SHARE})
        print(
            f"big model: ORACLE (answers {answered} with its CLINC150 gold label)\n"
            f"base: {args.base_per_intent}/intent of train + oos_train = {len(base)} rows; "
            f"traffic per round: {args.traffic_per_intent}/intent of train + {args.traffic_oos} "
            f"of oos_test (disjoint, unseen) = {len(traffic[0])} items; calibrated on "
            f"val+oos_val (oos weighted {OOS_SHARE:.0%}) at target {args.target}; measured on "
            f"test + the rest of oos_test ({len(test)} items)",
            flush=True,
        )
    rows = []
    with tempfile.TemporaryDirectory(prefix="distill_bench_") as tmp:
        skills_dir = Path(tmp) / "skills"
        base_csv = Path(tmp) / "base.csv"
        with base_csv.open("w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(["text", "intent"])
            writer.writerows(base)
        t0 = time.perf_counter()
        report = train_text_classifier(
            base_csv,
            name=name,
            text_column="text",
            label_column="intent",
            skills_dir=skills_dir,
            val_fraction=val_fraction,
            target_accuracy=args.target,
            tiers=args.tiers,
        )
        calibrate(
            load_version(report["skill"], skills_dir),
            val_data[0],
            val_data[1],
            args.target,
            label_shares=val_data[2],
            on_unreachable="escalate_all",
        )
        if "second_tier" in report:  # the pair on the same split, as distill does
            calibrate_after(
                load_version(report["second_tier"]["skill"], skills_dir),
                load_version(report["skill"], skills_dir),
                val_data[0],
                val_data[1],
                args.target,
                label_shares=val_data[2],
            )
        prod = str(report["skill"])
        rows.append(
            {
                "round": 0,
                "version": prod,
                "train_rows": len(base),  # cross-fitted: every row trains and is held out once
                "traffic": 0,
                "escalated_to_oracle": 0,
                **measure(prod, skills_dir, test),
                "seconds": round(time.perf_counter() - t0, 1),
            }
        )
        reference = float(rows[0]["selective_accuracy"])
        rows[-1]["at_reference"] = at_accuracy(prod, skills_dir, test, reference)
        _print_row(rows[-1], header=True)
        with ExampleStore(Path(tmp) / "examples.db") as store:
            for round_no, items in enumerate(traffic, start=1):
                t0 = time.perf_counter()
                version = load_version(prod, skills_dir)
                texts = [t for t, _ in items]
                _, confidence = predict_labels(version.create(), {"text": texts})
                to_oracle = (
                    list(range(len(items)))
                    if oracle == "all"
                    else [i for i, u in enumerate(unsure(prod, skills_dir, texts)) if u]
                )
                store.add(
                    Example(
                        skill=prod,
                        inputs={"text": items[i][0]},
                        outputs={"intent": items[i][1]},  # the oracle's answer: the gold label
                        source="llm:oracle",
                        small_confidence=float(confidence[i]),
                    )
                    for i in to_oracle
                )
                result = distill(
                    name,
                    examples=store,
                    skills_dir=skills_dir,
                    base_rows=base,
                    target_accuracy=args.target,
                    calibration_data=val_data,
                    val_fraction=val_fraction,
                    eval_data=([t for t, _ in test], [y for _, y in test]),
                )
                promote(name, skills_dir=skills_dir)
                prod = result.canary
                rows.append(
                    {
                        "round": round_no,
                        "version": prod,
                        "train_rows": result.data["train_rows"],
                        "traffic": len(items),
                        "escalated_to_oracle": len(to_oracle),
                        **measure(prod, skills_dir, test),
                        "at_reference": at_accuracy(prod, skills_dir, test, reference),
                        "seconds": round(time.perf_counter() - t0, 1),
                    }
                )
                _print_row(rows[-1])
    summary = {
        "bench": "distill_rounds",
        "data": data,
        "big_model": f"ORACLE ({'BANKING77' if data == 'banking77' else 'CLINC150'} gold labels)",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "target_accuracy": args.target,
        "tiers": args.tiers,
        "traffic_oos": args.traffic_oos if data == "clinc150" else 0,
        "oracle": oracle,
        "test_items": len(test),
        "test_out_of_scope": sum(1 for _, y in test if y == OOS_INTENT),
        #: round 0's selective accuracy on test: every version's escalations "at equal accuracy"
        "reference_accuracy": rows[0]["selective_accuracy"],
        "rounds": rows,
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(f"total {summary['seconds']} s")
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base-per-intent", type=int, default=40)
    parser.add_argument("--traffic-per-intent", type=int, default=20)
    parser.add_argument("--target", type=float, default=0.95)
    parser.add_argument("--tiers", default="tfidf,minilm")
    parser.add_argument(
        "--traffic-oos", type=int, default=100, help="out-of-scope turns per round (of oos_test)"
    )
    parser.add_argument(
        "--data", choices=("clinc150", "banking77"), default="clinc150", help="the skill's data"
    )
    parser.add_argument(
        "--oracle",
        choices=("unsure", "all"),
        default="unsure",
        help="traffic the oracle answers: what the chain leaves unsure (the loop), or every turn "
        "(a ceiling)",
    )
    parser.add_argument("--json", action="store_true", help="also print one JSON line")
    args = parser.parse_args()
    summary = run_rounds(
        args.base_per_intent,
        args.traffic_per_intent,
        args.target,
        args.tiers,
        args.traffic_oos,
        args.data,
        args.oracle,
    )
    if args.json:
        print(json.dumps(summary))


def _print_row(row: dict[str, Any], header: bool = False) -> None:
    if header:
        print(
            f"{'round':>5} {'version':<20} {'train':>6} {'traffic':>7} {'->oracle':>8} "
            f"{'thresh':>7} {'test esc all':>12} {'esc in-scope':>12} {'sel.acc':>8} "
            f"{'acc':>7} {'s':>6} {'esc all / in-scope at round 0 sel.acc':>38}"
        )
    same = row["at_reference"]
    assert isinstance(same, dict)
    print(
        f"{row['round']:>5} {row['version']:<20} {row['train_rows']:>6} {row['traffic']:>7} "
        f"{row['escalated_to_oracle']:>8} {row['threshold']:>7.4f} "
        f"{row['escalation_all']:>12.2%} {row['escalation_in_scope']:>12.2%} "
        f"{row['selective_accuracy']:>8.2%} {row['accuracy']:>7.2%} {row['seconds']:>6} "
        f"{same['escalation_all']:>18.2%} / {same['escalation_in_scope']:<17.2%}",
        flush=True,
    )


if __name__ == "__main__":
    main()
