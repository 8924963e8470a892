"""Distillation: retrain a skill on what the big model (and reviewers) answered for it, register the
result as a ``canary`` version, compare it with ``prod`` in shadow, then promote or roll back.

``orchestrator distill SKILL`` / :func:`distill`:

1. Labelled examples for ``SKILL`` come from the :class:`~orchestrator.examples.ExampleStore`
   (every version's escalations). They are deduplicated by input text (normalized): a human
   answer beats a big-model one, and among equals the later one wins; an example also replaces a
   base row with the same text.
2. The base data (``--base-csv``; for ``turn_intent`` CLINC150 train + oos_train) plus the
   examples train a new text-classifier version (:func:`orchestrator.training.
   train_text_classifier`: TF-IDF + logistic regression, ONNX, calibrated) in
   ``SKILLS/NAME_vX_Y_Z/`` under the ``canary`` alias; ``prod`` does not move.
3. Shadow evaluation: ``prod`` and the canary answer the same held-out items (``--eval-csv``; for
   ``turn_intent`` CLINC150 test + oos_test; else the canary's own validation split, which prod
   may have seen): accuracy, coverage at each one's calibrated threshold, selective accuracy,
   escalation rate (and the in-scope one when there is an ``oos`` label), agreement. The report
   also shows the escalation rate per version from the job ledgers and the examples per version.

``orchestrator skills promote SKILL`` moves ``prod`` to the canary (the old prod gets the alias
``previous``); ``orchestrator skills rollback SKILL`` moves ``prod`` back to ``previous``. Both
only edit the ``aliases:`` lists of the manifests.

Example::

    with ExampleStore() as store:
        report = distill("turn_intent", examples=store)
    print(report.render())
    promote("turn_intent")
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from orchestrator.calibration import DEFAULT_CONFIDENCE_LEVEL
from orchestrator.cli_errors import fail_command
from orchestrator.errors import DistillError, OrchestratorError
from orchestrator.skill_kinds import normalize_text

if TYPE_CHECKING:
    from orchestrator.examples import Example, ExampleStore
    from orchestrator.ledger import Ledger
    from orchestrator.manifest import SkillManifest
    from orchestrator.registry import SkillVersion

__all__ = [
    "DistillError",
    "DistillReport",
    "VersionEval",
    "distill",
    "distill_command",
    "ledger_by_version",
    "merge_examples",
    "promote",
    "promote_command",
    "rollback",
    "rollback_command",
    "shadow_evaluate",
]

PROD = "prod"
CANARY = "canary"
#: The alias the previous prod keeps after a promotion: where ``rollback`` goes back to.
PREVIOUS = "previous"
#: Label of out-of-scope items; with it in the evaluation data the in-scope escalation rate shows.
OOS_LABEL = "oos"
DEFAULT_TARGET = 0.97

Pairs = list[tuple[str, str]]


# ---------------------------------------------------------------------------------------------
# Examples


def _priority(source: str) -> int:
    return 1 if source.startswith("human:") else 0


def merge_examples(
    base: Sequence[tuple[str, str]], examples: Iterable[Example], text_field: str, label_field: str
) -> tuple[Pairs, dict[str, int]]:
    """Base rows + examples, deduplicated by normalized text; (rows, counts).

    Examples are read oldest first: a later answer replaces an earlier one unless the earlier is
    a human's and the later is not. An example replaces a base row with the same text.
    """
    learned: dict[str, tuple[str, str, int]] = {}
    seen = skipped = 0
    for example in examples:
        seen += 1
        text = example.inputs.get(text_field)
        label = example.outputs.get(label_field)
        if not isinstance(text, str) or not text.strip() or label is None or str(label) == "":
            skipped += 1
            continue
        key = normalize_text(text).strip()
        priority = _priority(example.source)
        old = learned.get(key)
        if old is None or priority >= old[2]:
            learned[key] = (text, str(label), priority)
    rows: Pairs = []
    base_seen: set[str] = set()
    replaced = duplicate_base = 0
    for text, label in base:
        key = normalize_text(text).strip()
        if key in learned:
            replaced += 1
            continue
        if key in base_seen:
            duplicate_base += 1
            continue
        base_seen.add(key)
        rows.append((text, label))
    base_rows = len(rows)
    rows += [(text, label) for text, label, _ in learned.values()]
    counts = {
        "base_rows": base_rows,
        "examples": seen,
        "examples_unusable": skipped,
        "examples_used": len(learned),
        "human_examples": sum(1 for *_, p in learned.values() if p == 1),
        "base_rows_replaced": replaced,
        "base_duplicates_dropped": duplicate_base,
        "train_rows": len(rows),
    }
    return rows, counts


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

    from orchestrator.calibration import predict_labels, same_label

    field_ = next(iter(version.skill_cls.Input.model_fields))
    predicted, confidence = predict_labels(version.create(), {field_: texts})
    correct = np.array([same_label(p, e) for p, e in zip(predicted, labels, strict=True)])
    return predicted, (confidence, correct)


def shadow_evaluate(
    versions: Sequence[SkillVersion], texts: list[str], labels: list[str]
) -> tuple[list[VersionEval], float | None]:
    """Each version on the same items at its own calibrated threshold; also the share of items
    the first two versions label alike."""
    import numpy as np

    from orchestrator.calibration import stored_threshold

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


# ---------------------------------------------------------------------------------------------
# distill


def _versions(skills_dir: Path, name: str) -> dict[str, tuple[Path, SkillManifest]]:
    from orchestrator.skill_folders import existing_versions

    return existing_versions(skills_dir, name)


def _require_skill(skills_dir: Path, name: str) -> dict[str, tuple[Path, SkillManifest]]:
    from orchestrator.evaluation import load_version

    found = _versions(skills_dir, name)
    if not found:
        load_version(name, skills_dir)  # raises UnknownSkillError with suggestions
        raise DistillError(f"no skill {name!r} in {skills_dir}")  # pragma: no cover
    return found


def _columns(version: SkillVersion) -> tuple[str, str, str, str]:
    """(input field, label field, text CSV column, label CSV column) of a one-text-field skill."""
    from orchestrator.calibration import label_field_of
    from orchestrator.evaluation import skill_config

    fields = version.skill_cls.Input.model_fields
    if len(fields) != 1:
        raise DistillError(
            f"skill {version.key} takes {len(fields)} input fields ({', '.join(fields)}); "
            "distill retrains one-text-field classifiers only"
        )
    text_field = next(iter(fields))
    annotation = fields[text_field].annotation
    if annotation is not str:
        raise DistillError(f"skill {version.key}'s input {text_field!r} is not text")
    label_field = label_field_of(version.skill_cls)
    config = skill_config(version)
    if config is not None:
        if config.get("kind") != "text-classifier":
            raise DistillError(
                f"skill {version.key} is a {config.get('kind')}; distill retrains text classifiers"
            )
        return (
            text_field,
            label_field,
            config["inputs"][0].get("column", text_field),
            config["label_column"],
        )
    return text_field, label_field, text_field, label_field


def _read_pairs(path: Path | str, text_column: str, label_column: str) -> Pairs:
    from orchestrator.csv_table import read_csv, require_columns

    table = read_csv(path)
    require_columns(table, [text_column, label_column])
    return [
        (row[text_column], row[label_column].strip())
        for row in table.rows
        if row[text_column].strip() and row[label_column].strip()
    ]


def _write_pairs(path: Path, rows: Pairs, text_column: str, label_column: str) -> None:
    import csv

    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow([text_column, label_column])
        writer.writerows(rows)


def distill(
    name: str,
    *,
    examples: ExampleStore,
    skills_dir: Path | str | None = None,
    base_csv: Path | str | None = None,
    base_rows: Sequence[tuple[str, str]] | None = None,
    new_version: str | None = None,
    target_accuracy: float | None = None,
    confidence_level: float | None = DEFAULT_CONFIDENCE_LEVEL,
    calibration_data: tuple[list[str], list[str], Mapping[str, float] | None] | None = None,
    eval_csv: Path | str | None = None,
    eval_data: tuple[list[str], list[str]] | None = None,
    val_fraction: float | None = None,
    ledgers: Iterable[Ledger | Mapping[str, Any]] = (),
    jobs_db: Path | str | None = None,
) -> DistillReport:
    """Retrain skill ``name`` on base data + its learned examples; register it as ``canary``;
    compare it with ``prod`` in shadow. See the module docstring.

    ``base_rows`` / ``base_csv``: the original training data ((text, label) pairs, or a CSV with
    the skill's text and label columns); ``turn_intent`` defaults to CLINC150 train + oos_train.
    ``calibration_data``: (texts, labels, label shares) to calibrate the canary on instead of its
    own validation split (``turn_intent``: CLINC150 val + oos_val weighted to 18 % oos).
    ``eval_csv`` / ``eval_data``: the shadow items (``turn_intent``: CLINC150 test + oos_test).
    ``target_accuracy`` defaults to prod's calibrated target (else 0.97).
    """
    from orchestrator.calibration import calibrate, stored_calibration
    from orchestrator.evaluation import load_version
    from orchestrator.skill_folders import resolve_skills_dir
    from orchestrator.training import train_text_classifier

    started = time.perf_counter()
    root = resolve_skills_dir(skills_dir)
    _require_skill(root, name)
    prod = load_version(name, root)  # the prod alias, else the newest version
    text_field, label_field, text_column, label_column = _columns(prod)
    notes: list[str] = []

    learned = examples.for_skill(name)
    if not learned:
        raise DistillError(
            f"no labelled examples for skill {name!r} in {examples.path}; run jobs with "
            "escalation on (big-model answers are stored there) or add reviewed examples first"
        )

    if base_rows is not None:
        base = [(str(t), str(y)) for t, y in base_rows]
        base_source = "given rows"
    elif base_csv is not None:
        base = _read_pairs(base_csv, text_column, label_column)
        base_source = str(base_csv)
    elif name == "turn_intent":
        from skills.data import clinc150

        base = clinc150("train") + clinc150("oos_train")
        base_source = "CLINC150 train + oos_train"
    else:
        raise DistillError(
            f"skill {name!r}: give the original training data (--base-csv with columns "
            f"{text_column!r} and {label_column!r}) to retrain on together with the examples"
        )
    rows, counts = merge_examples(base, learned, text_field, label_field)
    known = getattr(prod.skill_cls, "labels", None)
    if known:
        new_labels = sorted({y for _, y in rows} - {str(k) for k in known})
        if new_labels:
            notes.append(f"labels prod does not know: {', '.join(new_labels[:8])}")

    if calibration_data is None and name == "turn_intent":
        from skills.data import clinc150_eval

        pairs = clinc150_eval("val")
        calibration_data = ([t for t, _ in pairs], [y for _, y in pairs], {OOS_LABEL: 0.18})
    prod_calibration = stored_calibration(prod.build) or {}
    target = target_accuracy or float(prod_calibration.get("target_accuracy") or DEFAULT_TARGET)
    fraction = val_fraction if val_fraction is not None else (0.05 if calibration_data else 0.2)

    with tempfile.TemporaryDirectory(prefix=f"distill_{name}_") as tmp:
        csv_path = Path(tmp) / f"{name}_distill.csv"
        _write_pairs(csv_path, rows, text_column, label_column)
        training = train_text_classifier(
            csv_path,
            name=name,
            text_column=text_column,
            label_column=label_column,
            version=new_version,
            skills_dir=root,
            val_fraction=fraction,
            target_accuracy=target,
            confidence_level=confidence_level,
            description=prod.skill_cls.description,
        )
    canary_key = str(training["skill"])
    canary_folder = Path(training["folder"])
    if calibration_data is not None:
        texts, labels, shares = calibration_data
        canary = load_version(canary_key, root)
        result = calibrate(
            canary,
            texts,
            labels,
            target,
            label_shares=shares,
            confidence_level=confidence_level,
            source="distill calibration split",
            on_unreachable="escalate_all",
        )
        training["threshold"] = result.threshold
        training["val_coverage"] = round(result.coverage, 4)
        training["val_selective_accuracy"] = round(result.selective_accuracy, 4)
        training["calibrated_on"] = f"{len(texts)} given items"
        if not result.reachable:
            notes.append(f"canary cannot reach {target:.0%} on the calibration split")
    prod = load_version(prod.key, root)
    canary = load_version(canary_key, root)

    if eval_data is not None:
        eval_texts, eval_labels = list(eval_data[0]), list(eval_data[1])
        eval_source = f"{len(eval_texts)} given items"
    elif eval_csv is not None:
        pairs = _read_pairs(eval_csv, text_column, label_column)
        eval_texts, eval_labels = [t for t, _ in pairs], [y for _, y in pairs]
        eval_source = str(eval_csv)
    elif name == "turn_intent":
        from skills.data import clinc150_eval

        pairs = clinc150_eval("test")
        eval_texts, eval_labels = [t for t, _ in pairs], [y for _, y in pairs]
        eval_source = "CLINC150 test + oos_test"
    else:
        from orchestrator.csv_table import VAL_FILE

        assert canary.artifacts_dir is not None
        pairs = _read_pairs(canary.artifacts_dir / VAL_FILE, text_column, label_column)
        eval_texts, eval_labels = [t for t, _ in pairs], [y for _, y in pairs]
        eval_source = f"the canary's validation split ({len(pairs)} rows)"
        notes.append(
            "shadow items are the canary's validation split, which prod may have been trained "
            "on; give --eval-csv with held-out rows for a fair comparison"
        )
    shadow, agreement = shadow_evaluate([prod, canary], eval_texts, eval_labels)
    if training.get("warning"):
        notes.append(str(training["warning"]))
    data = {**counts}
    training_summary: dict[str, Any] = {
        k: training[k]
        for k in (
            "threshold",
            "reachable",
            "target_accuracy",
            "val_rows",
            "val_coverage",
            "val_selective_accuracy",
            "train_rows",
            "seconds",
        )
        if k in training
    }
    training_summary["base"] = base_source
    return DistillReport(
        skill=name,
        prod=prod.key,
        canary=canary_key,
        canary_folder=str(canary_folder),
        data=data,
        training=training_summary,
        eval_source=eval_source,
        shadow=shadow,
        agreement=agreement,
        ledger=ledger_by_version(name, ledgers, jobs_db),
        examples_per_version={
            k: n for k, n in examples.counts().items() if k.partition("@")[0] == name
        },
        notes=notes,
        seconds=round(time.perf_counter() - started, 2),
    )


# ---------------------------------------------------------------------------------------------
# promote / rollback


def _with_alias(
    versions: dict[str, tuple[Path, SkillManifest]], alias: str
) -> list[tuple[str, Path, SkillManifest]]:
    return [(v, f, m) for v, (f, m) in versions.items() if alias in m.aliases]


def _set(folder: Path, manifest: SkillManifest, add: Sequence[str], drop: Sequence[str]) -> None:
    from orchestrator.skill_folders import set_aliases

    aliases = [a for a in manifest.aliases if a not in drop and a not in add]
    set_aliases(folder, [*add, *aliases])


def promote(name: str, *, skills_dir: Path | str | None = None) -> dict[str, Any]:
    """Move ``prod`` to the canary version; the old prod keeps the alias ``previous``."""
    from orchestrator.skill_folders import resolve_skills_dir

    root = resolve_skills_dir(skills_dir)
    versions = _require_skill(root, name)
    canaries = _with_alias(versions, CANARY)
    if not canaries:
        raise DistillError(
            f"skill {name!r} has no canary version to promote; run `orchestrator distill {name}` "
            "(or train a new version) first"
        )
    new_version, new_folder, _ = canaries[-1]
    prods = [p for p in _with_alias(versions, PROD) if p[0] != new_version]
    for _, folder, manifest in _with_alias(versions, PREVIOUS):
        _set(folder, manifest, [], [PREVIOUS])
    versions = _versions(root, name)  # re-read: aliases changed
    for version, folder, _ in prods:
        _set(folder, versions[version][1], [PREVIOUS], [PROD])
    _set(new_folder, _versions(root, name)[new_version][1], [PROD], [CANARY])
    return {
        "skill": name,
        "prod": f"{name}@{new_version}",
        "previous": f"{name}@{prods[0][0]}" if prods else None,
        "folder": str(new_folder),
    }


def rollback(name: str, *, skills_dir: Path | str | None = None) -> dict[str, Any]:
    """Move ``prod`` back to the version that held it before the last promotion."""
    from orchestrator.skill_folders import resolve_skills_dir

    root = resolve_skills_dir(skills_dir)
    versions = _require_skill(root, name)
    previous = _with_alias(versions, PREVIOUS)
    if not previous:
        raise DistillError(
            f"skill {name!r} has nothing to roll back to: no version holds the {PREVIOUS!r} alias "
            "(it is set by `orchestrator skills promote` and used up by a rollback)"
        )
    back_version, back_folder, _ = previous[-1]
    current = [p for p in _with_alias(versions, PROD) if p[0] != back_version]
    for _, folder, manifest in current:
        _set(folder, manifest, [], [PROD])
    _set(back_folder, _versions(root, name)[back_version][1], [PROD], [PREVIOUS])
    return {
        "skill": name,
        "prod": f"{name}@{back_version}",
        "rolled_back": f"{name}@{current[0][0]}" if current else None,
        "folder": str(back_folder),
    }


# ---------------------------------------------------------------------------------------------
# Command line (registered by orchestrator.cli)


SkillsDirOption = Annotated[
    Path | None, typer.Option(help="skills folder (default: ORCHESTRATOR_SKILLS_DIR or skills/)")
]


def distill_command(
    skill: Annotated[str, typer.Argument(help="skill to retrain, e.g. turn_intent")],
    base_csv: Annotated[
        Path | None,
        typer.Option(help="original training data (default for turn_intent: CLINC150 train)"),
    ] = None,
    eval_csv: Annotated[
        Path | None,
        typer.Option(help="held-out labelled rows for the shadow comparison with prod"),
    ] = None,
    version: Annotated[
        str | None, typer.Option(help="version of the new canary (default: next minor)")
    ] = None,
    target_accuracy: Annotated[
        float | None, typer.Option(help="calibration target (default: prod's, else 0.97)")
    ] = None,
    examples_db: Annotated[
        Path | None, typer.Option(help="examples SQLite file (default: the data dir's)")
    ] = None,
    jobs_db: Annotated[
        Path | None,
        typer.Option(help="job store SQLite file whose ledgers give escalation per version"),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print the JSON report only")] = False,
    skills_dir: SkillsDirOption = None,
) -> None:
    """Retrain SKILL on its original data + the big model's and reviewers' answers, register it
    as canary, and compare it with prod on held-out data."""
    from orchestrator.audit import default_db_path
    from orchestrator.examples import ExampleStore

    try:
        with ExampleStore(examples_db) as store:
            report = distill(
                skill,
                examples=store,
                skills_dir=skills_dir,
                base_csv=base_csv,
                new_version=version,
                target_accuracy=target_accuracy,
                eval_csv=eval_csv,
                jobs_db=jobs_db if jobs_db is not None else default_db_path(),
            )
    except OrchestratorError as exc:
        raise fail_command(exc) from None
    if not json_out:
        print(report.render())
    print(json.dumps(report.to_dict()))


def promote_command(
    skill: Annotated[str, typer.Argument(help="skill whose canary becomes prod")],
    skills_dir: SkillsDirOption = None,
) -> None:
    """Move prod to the canary version (the old prod stays as 'previous' for rollback)."""
    try:
        result = promote(skill, skills_dir=skills_dir)
    except OrchestratorError as exc:
        raise fail_command(exc) from None
    print(json.dumps(result))


def rollback_command(
    skill: Annotated[str, typer.Argument(help="skill whose prod goes back to 'previous'")],
    skills_dir: SkillsDirOption = None,
) -> None:
    """Move prod back to the version it had before the last promotion."""
    try:
        result = rollback(skill, skills_dir=skills_dir)
    except OrchestratorError as exc:
        raise fail_command(exc) from None
    print(json.dumps(result))
