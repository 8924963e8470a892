"""What a distillation reports: prod and the new version side by side on the same held-out items
(shadow evaluation), and each version's escalation rate from the job ledgers.

Example::

    shadow, agreement = shadow_evaluate([prod, canary], texts, labels)
    shadow[1].selective_accuracy, shadow[1].escalation_rate
    ledger_by_version("tickets", jobs_db="jobs.db")["tickets@1.0.0"]["escalation_rate"]
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.errors import DistillError

if TYPE_CHECKING:
    from orchestrator.accounting.ledger import Ledger
    from orchestrator.registry.registry import SkillVersion

__all__ = [
    "OOS_LABEL",
    "DistillReport",
    "VersionEval",
    "ledger_by_version",
    "shadow_chains",
    "shadow_evaluate",
]

#: Label of out-of-scope items; with it in the evaluation data the in-scope escalation rate shows.
OOS_LABEL = "oos"


# ---------------------------------------------------------------------------------------------
# Ledger: escalation rate per version


def ledger_by_version(
    name: str, ledgers: Iterable[Ledger | Mapping[str, Any]] = (), jobs_db: Path | str | None = None
) -> dict[str, dict[str, Any]]:
    """``name@version`` -> items, escalated, escalation_rate summed over job ledgers (objects, raw
    dicts, and/or the ``jobs.ledger`` column of a job-store SQLite file)."""
    raws: list[Mapping[str, Any]] = []
    for ledger in ledgers:
        raws.append(ledger if isinstance(ledger, Mapping) else ledger.to_dict())
    if jobs_db is not None and Path(jobs_db).is_file():
        try:
            with sqlite3.connect(f"file:{Path(jobs_db)}?mode=ro", uri=True) as db:
                rows = db.execute("SELECT ledger FROM jobs WHERE ledger IS NOT NULL").fetchall()
        except sqlite3.Error:
            rows = []
        for (text,) in rows:
            try:
                raws.append(json.loads(text))
            except (TypeError, ValueError):
                continue
    out: dict[str, dict[str, Any]] = {}
    for raw in raws:
        items = raw.get("skill_items") or {}
        escalated = raw.get("skill_escalated") or {}
        for key, count in items.items():
            if key.partition("@")[0] != name:
                continue
            entry = out.setdefault(key, {"items": 0, "escalated": 0, "jobs": 0})
            entry["items"] += int(count)
            entry["escalated"] += int(escalated.get(key, 0))
            entry["jobs"] += 1
    for entry in out.values():
        entry["escalation_rate"] = (
            round(entry["escalated"] / entry["items"], 4) if entry["items"] else None
        )
    return dict(sorted(out.items()))


# ---------------------------------------------------------------------------------------------
# Shadow evaluation


@dataclass
class VersionEval:
    """One version on the shadow evaluation items."""

    key: str
    aliases: list[str]
    threshold: float
    items: int
    accuracy: float
    coverage: float
    kept: int
    selective_accuracy: float | None
    escalation_rate: float
    in_scope_escalation_rate: float | None = None
    in_scope_accuracy: float | None = None


def _evaluate_one(version: SkillVersion, texts: list[str], labels: list[str]) -> tuple[Any, Any]:
    import numpy as np

    from orchestrator.learning.calibrate import predict_labels, same_label

    field_ = next(iter(version.skill_cls.Input.model_fields))
    predicted, confidence = predict_labels(version.create(), {field_: texts})
    correct = np.array([same_label(p, e) for p, e in zip(predicted, labels, strict=True)])
    return predicted, (confidence, correct)


def shadow_chains(
    skills_dir: Any, versions: Sequence[SkillVersion], texts: list[str], labels: list[str]
) -> dict[str, dict[str, Any]]:
    """Each version that has a calibrated chain, run as the cascade runs it on the same items."""
    from orchestrator.learning.calibrate import columns_for
    from orchestrator.learning.chain_eval import chain_report, find_chain

    out: dict[str, dict[str, Any]] = {}
    for version in versions:
        pair = find_chain(version, skills_dir)
        if pair is not None:
            batch = columns_for(version.skill_cls, texts)
            report = chain_report(version, pair, batch, labels)
            out[version.key] = {k: v for k, v in report.items() if k != "tiers"}
    return out


def shadow_evaluate(
    versions: Sequence[SkillVersion], texts: list[str], labels: list[str]
) -> tuple[list[VersionEval], float | None]:
    """Each version on the same items at its own calibrated threshold; also the share of items
    the first two versions label alike."""
    import numpy as np

    from orchestrator.registry.calibrations import stored_threshold

    if not texts:
        raise DistillError("the shadow evaluation set is empty")
    in_scope = np.array([label != OOS_LABEL for label in labels])
    has_oos = not in_scope.all()
    results: list[VersionEval] = []
    answers: list[list[Any]] = []
    for version in versions:
        predicted, (confidence, correct) = _evaluate_one(version, texts, labels)
        answers.append([None if p is None else str(p) for p in predicted])
        threshold = stored_threshold(version)
        cut = 0.0 if threshold is None else float(threshold)
        kept = confidence >= cut
        k = int(kept.sum())
        results.append(
            VersionEval(
                key=version.key,
                aliases=list(version.manifest.aliases) if version.manifest else [],
                threshold=round(cut, 6),
                items=len(texts),
                accuracy=round(float(correct.mean()), 4),
                coverage=round(k / len(texts), 4),
                kept=k,
                selective_accuracy=round(float(correct[kept].mean()), 4) if k else None,
                escalation_rate=round(1 - k / len(texts), 4),
                in_scope_escalation_rate=(
                    round(float((~kept[in_scope]).mean()), 4)
                    if has_oos and in_scope.any()
                    else None
                ),
                in_scope_accuracy=(
                    round(float(correct[in_scope].mean()), 4)
                    if has_oos and in_scope.any()
                    else None
                ),
            )
        )
    agreement = None
    if len(answers) >= 2:
        same = [a == b for a, b in zip(answers[0], answers[1], strict=True)]
        agreement = round(sum(same) / len(same), 4)
    return results, agreement


# ---------------------------------------------------------------------------------------------
# Report


@dataclass
class DistillReport:
    """What :func:`distill` did and how the canary compares with prod."""

    skill: str
    prod: str
    canary: str
    canary_folder: str
    data: dict[str, int]
    training: dict[str, Any]
    eval_source: str
    shadow: list[VersionEval]
    agreement: float | None
    #: per version with a calibrated chain (a second tier trained after it): the cascade's
    #: figures on the shadow items (``chain_eval.chain_report``, per-tier details left out)
    chains: dict[str, dict[str, Any]] = field(default_factory=dict)
    ledger: dict[str, dict[str, Any]] = field(default_factory=dict)
    examples_per_version: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["shadow"] = [asdict(v) for v in self.shadow]
        return out

    def render(self) -> str:
        """A plain-text table: the shadow comparison, then the ledger per version."""
        lines = [
            f"distilled {self.skill}: {self.canary} (canary, {self.canary_folder}) vs "
            f"{self.prod} (prod)",
            "training rows: "
            + ", ".join(f"{k}={v}" for k, v in self.data.items() if k != "train_rows")
            + f" -> {self.data.get('train_rows')}",
            f"shadow evaluation on {self.eval_source} (same items for both):",
        ]
        header = (
            f"  {'version':<28} {'aliases':<16} {'threshold':>9} {'accuracy':>8} {'coverage':>8} "
            f"{'sel.acc':>8} {'escal.':>7} {'escal.in':>8}"
        )
        lines.append(header)
        for v in self.shadow:
            lines.append(
                f"  {v.key:<28} {','.join(v.aliases) or '-':<16} {v.threshold:>9.4f} "
                f"{v.accuracy:>8.2%} {v.coverage:>8.2%} "
                f"{_pct(v.selective_accuracy):>8} {v.escalation_rate:>7.2%} "
                f"{_pct(v.in_scope_escalation_rate):>8}"
            )
        if self.agreement is not None:
            lines.append(f"  prod and canary give the same label on {self.agreement:.2%} of items")
        for chain in self.chains.values():
            lines.append(
                f"  with its chain {' -> '.join(chain['chain'])}: coverage {chain['coverage']:.2%}, "
                f"selective accuracy {_pct(chain['selective_accuracy'])}, escalated "
                f"{chain['escalated']} of {chain['kept'] + chain['escalated']}"
            )
        if self.ledger:
            lines.append("ledger (jobs run so far), per version:")
            for key, entry in self.ledger.items():
                lines.append(
                    f"  {key:<28} items={entry['items']} escalated={entry['escalated']} "
                    f"rate={_pct(entry['escalation_rate'])}"
                )
        else:
            lines.append("ledger: no job ledgers found for this skill")
        if self.examples_per_version:
            lines.append(
                "examples learned per version: "
                + ", ".join(f"{k}={n}" for k, n in self.examples_per_version.items())
            )
        lines += [f"note: {n}" for n in self.notes]
        lines.append(f"next: `orchestrator skills promote {self.skill}` to make {self.canary} prod")
        return "\n".join(lines)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"
