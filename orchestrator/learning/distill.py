"""Distillation: retrain a skill on what the big model (and reviewers) answered for it, register the
result as a ``canary`` version, compare it with ``prod`` in shadow, then promote or roll back.

``orchestrator distill SKILL`` / :func:`distill`:

1. Labelled examples for ``SKILL`` come from the :class:`~orchestrator.store.examples.ExampleStore`
   (every version's escalations). They are deduplicated by input text (normalized): a human
   answer beats a big-model one, and among equals the later one wins; an example also replaces a
   base row with the same text (:func:`~orchestrator.learning.distill_data.merge_examples`).
2. The base data (``--base-csv``, else the ``base_data`` the skill's manifest declares in its
   ``distill:`` block, see :mod:`orchestrator.learning.distill_data`) plus the examples train a
   new text-classifier version (:func:`orchestrator.learning.train.train_text_classifier`: TF-IDF
   + logistic regression, ONNX, calibrated) in ``SKILLS/NAME_vX_Y_Z/`` under the ``canary``
   alias; ``prod`` does not move. With declared ``calibration_data`` the canary is calibrated on
   those rows (weighted to their ``label_shares``) instead of its own validation split.
3. Shadow evaluation: ``prod`` and the canary answer the same held-out items (``--eval-csv``, else
   the declared ``eval_data``, else the canary's own validation split, which prod may have seen):
   accuracy, coverage at each one's calibrated threshold, selective accuracy, escalation rate (and
   the in-scope one when there is an ``oos`` label), agreement. The report also shows the
   escalation rate per version from the job ledgers and the examples per version
   (:mod:`orchestrator.learning.distill_report`).

``orchestrator skills promote SKILL`` moves ``prod`` to the canary (the old prod gets the alias
``previous``); ``orchestrator skills rollback SKILL`` moves ``prod`` back to ``previous``. Both
only edit the ``aliases:`` lists of the manifests (:mod:`orchestrator.registry.aliases`).

Example::

    with ExampleStore() as store:
        report = distill("tickets", examples=store, base_csv="tickets.csv")
    print(report.render())
    promote("tickets")
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.errors import DistillError
from orchestrator.learning.calibrate import DEFAULT_CONFIDENCE_LEVEL
from orchestrator.learning.distill_data import (
    Columns,
    DeclaredData,
    Pairs,
    columns_of,
    declared_data,
    merge_examples,
    read_pairs,
    write_pairs,
)
from orchestrator.learning.distill_report import (
    DistillReport,
    VersionEval,
    ledger_by_version,
    shadow_chains,
    shadow_evaluate,
)
from orchestrator.registry.aliases import promote, rollback

if TYPE_CHECKING:
    from orchestrator.accounting.ledger import Ledger
    from orchestrator.registry.registry import SkillVersion
    from orchestrator.store.examples import ExampleStore

__all__ = [
    "DistillError",
    "DistillReport",
    "VersionEval",
    "distill",
    "ledger_by_version",
    "merge_examples",
    "promote",
    "rollback",
    "shadow_evaluate",
]

DEFAULT_TARGET = 0.97
#: The training keys the report keeps (the rest of the training report describes the folder).
TRAINING_SUMMARY = (
    "threshold",
    "reachable",
    "target_accuracy",
    "val_rows",
    "cross_fit_parts",
    "val_coverage",
    "val_selective_accuracy",
    "train_rows",
    "seconds",
)

#: Calibration rows given to :func:`distill`: (texts, labels, label shares or None).
CalibrationData = tuple[list[str], list[str], Mapping[str, float] | None]


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
    calibration_data: CalibrationData | None = None,
    eval_csv: Path | str | None = None,
    eval_data: tuple[list[str], list[str]] | None = None,
    val_fraction: float | None = None,
    ledgers: Iterable[Ledger | Mapping[str, Any]] = (),
    jobs_db: Path | str | None = None,
) -> DistillReport:
    """Retrain skill ``name`` on base data + its learned examples; register it as ``canary``;
    compare it with ``prod`` in shadow (see the module docstring). Each of ``base_rows`` /
    ``base_csv``, ``calibration_data`` ((texts, labels, label shares)) and ``eval_data`` /
    ``eval_csv`` defaults to what the skill's manifest declares; ``target_accuracy`` to prod's
    calibrated target (else 0.97)."""
    started = time.perf_counter()
    run = _begin(name, skills_dir)
    rows, counts, base_source = _training_rows(run, examples, base_rows, base_csv)
    if calibration_data is None:
        calibration_data = _declared_calibration(run.declared)
    target = target_accuracy or _prod_target(run.prod)
    if val_fraction is None:
        val_fraction = 0.05 if calibration_data else 0.2
    training = _train_canary(run, rows, new_version, val_fraction, target, confidence_level)
    if calibration_data is not None:
        _calibrate_canary(run, training, calibration_data, target, confidence_level)
    prod = run.load(run.prod.key)  # re-read both: their build records changed
    canary = run.load(str(training["skill"]))
    eval_texts, eval_labels, eval_source = _shadow_items(run, canary, eval_data, eval_csv)
    shadow, agreement = shadow_evaluate([prod, canary], eval_texts, eval_labels)
    chains = shadow_chains(run.root, [prod, canary], eval_texts, eval_labels)
    if training.get("warning"):
        run.notes.append(str(training["warning"]))
    summary = {k: training[k] for k in TRAINING_SUMMARY if k in training}
    return DistillReport(
        skill=name,
        prod=prod.key,
        canary=canary.key,
        canary_folder=str(training["folder"]),
        data=dict(counts),
        training={**summary, "base": base_source},
        eval_source=eval_source,
        shadow=shadow,
        agreement=agreement,
        chains=chains,
        ledger=ledger_by_version(name, ledgers, jobs_db),
        examples_per_version={
            k: n for k, n in examples.counts().items() if k.partition("@")[0] == name
        },
        notes=run.notes,
        seconds=round(time.perf_counter() - started, 2),
    )


# ---------------------------------------------------------------------------------------------
# Steps of distill


@dataclass
class _Run:
    """What every step of one distillation reads: the skill, its prod, its data columns, the data
    its manifest declares; and the notes the report collects."""

    name: str
    root: Path
    prod: SkillVersion
    columns: Columns
    declared: DeclaredData | None
    notes: list[str] = field(default_factory=list)

    def load(self, ref: str) -> SkillVersion:
        """A version of the skill, as the registry loads it now."""
        from orchestrator.learning.evaluate import load_version

        return load_version(ref, self.root)


def _begin(name: str, skills_dir: Path | str | None) -> _Run:
    """Find the skill (UnknownSkillError with suggestions), its prod and what distill needs."""
    from orchestrator.learning.evaluate import load_version
    from orchestrator.registry.folders import require_versions, resolve_skills_dir

    root = resolve_skills_dir(skills_dir)
    versions = require_versions(root, name)
    prod = load_version(name, root)  # the prod alias, else the newest version
    return _Run(name, root, prod, columns_of(prod), declared_data(prod, versions))


def _training_rows(
    run: _Run,
    examples: ExampleStore,
    base_rows: Sequence[tuple[str, str]] | None,
    base_csv: Path | str | None,
) -> tuple[Pairs, dict[str, int], str]:
    """(rows, counts, what the base rows are): the base data merged with the learned examples."""
    learned = examples.for_skill(run.name)
    if not learned:
        raise DistillError(
            f"no labelled examples for skill {run.name!r} in {examples.path}; run jobs with "
            "escalation on (big-model answers are stored there) or add reviewed examples first"
        )
    base, base_source = _base_data(run, base_rows, base_csv)
    rows, counts = merge_examples(base, learned, run.columns.text_field, run.columns.label_field)
    run.notes += _unknown_labels(run.prod, rows)
    return rows, counts, base_source


def _base_data(
    run: _Run, base_rows: Sequence[tuple[str, str]] | None, base_csv: Path | str | None
) -> tuple[Pairs, str]:
    """The original training rows and what they are: given rows, a CSV, or the declared ones."""
    if base_rows is not None:
        return [(str(t), str(y)) for t, y in base_rows], "given rows"
    if base_csv is not None:
        return read_pairs(base_csv, run.columns), str(base_csv)
    found = run.declared.rows("base_data") if run.declared is not None else None
    if found is None:
        found = _trained_csv(run)
    if found is None:
        raise DistillError(
            f"skill {run.name!r}: give the original training data (--base-csv with columns "
            f"{run.columns.text_column!r} and {run.columns.label_column!r}) to retrain on "
            "together with the examples, or declare distill.base_data in its manifest.yaml"
        )
    return found


def _trained_csv(run: _Run) -> tuple[Pairs, str] | None:
    """The CSV prod was trained from (``skills train`` pins it in the manifest), while it is
    still where it was and unchanged: a CSV-trained skill distils with no flags."""
    from orchestrator.registry.build_record import sha256_file

    manifest = run.prod.manifest
    if manifest is None:
        return None
    for shown, digest in manifest.inputs.data.items():
        path = Path(shown) if Path(shown).is_absolute() else run.root.resolve().parent / shown
        if not path.is_file():
            continue
        if sha256_file(path) != digest:
            run.notes.append(f"{shown} changed since {run.prod.key} was trained: not used")
            continue
        return read_pairs(path, run.columns), f"{shown} (what {run.prod.key} was trained on)"
    return None


def _unknown_labels(prod: SkillVersion, rows: Pairs) -> list[str]:
    """A note when the training rows hold labels prod does not know."""
    known = getattr(prod.skill_cls, "labels", None)
    if not known:
        return []
    new_labels = sorted({y for _, y in rows} - {str(k) for k in known})
    return [f"labels prod does not know: {', '.join(new_labels[:8])}"] if new_labels else []


def _prod_target(prod: SkillVersion) -> float:
    """The accuracy prod was calibrated to, else the default."""
    from orchestrator.registry.calibrations import stored_calibration

    calibration = stored_calibration(prod.build) or {}
    return float(calibration.get("target_accuracy") or DEFAULT_TARGET)


def _declared_calibration(declared: DeclaredData | None) -> CalibrationData | None:
    """The declared calibration rows as (texts, labels, label shares), if any."""
    if declared is None or declared.spec.calibration_data is None:
        return None
    pairs, _ = declared.rows("calibration_data") or ([], "")
    shares = declared.spec.calibration_data.label_shares
    return [t for t, _ in pairs], [y for _, y in pairs], shares


def _train_canary(
    run: _Run,
    rows: Pairs,
    new_version: str | None,
    val_fraction: float,
    target: float,
    confidence_level: float | None,
) -> dict[str, Any]:
    """Train the merged rows into a new version of prod's skill (the canary); its report."""
    from orchestrator.learning.train import train_text_classifier

    with tempfile.TemporaryDirectory(prefix=f"distill_{run.name}_") as tmp:
        csv_path = Path(tmp) / f"{run.name}_distill.csv"
        write_pairs(csv_path, rows, run.columns)
        return train_text_classifier(
            csv_path,
            name=run.name,
            text_column=run.columns.text_column,
            label_column=run.columns.label_column,
            version=new_version,
            skills_dir=run.root,
            val_fraction=val_fraction,
            target_accuracy=target,
            confidence_level=confidence_level,
            description=run.prod.skill_cls.description,
            cross_fit=_cross_fitted(run.prod),
        )


def _cross_fitted(version: SkillVersion) -> bool:
    """Whether ``version`` was cross-fitted (it keeps held-out answers): its canary is trained
    the same way."""
    spec = version.manifest.calibration if version.manifest is not None else None
    return spec is not None and spec.validation.predictions is not None


def _calibrate_canary(
    run: _Run,
    training: dict[str, Any],
    data: CalibrationData,
    target: float,
    confidence_level: float | None,
) -> None:
    """Recalibrate the canary on the given rows, instead of its validation split; the results go
    into ``training``, a note into the run when no threshold reaches the target."""
    from orchestrator.learning.calibrate import calibrate

    texts, labels, shares = data
    result = calibrate(
        run.load(str(training["skill"])),
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
    if not result.reachable:
        run.notes.append(f"canary cannot reach {target:.0%} on the calibration split")
    if "second_tier" in training:  # the pair is chosen on the same rows, together
        from orchestrator.learning.chain_calibrate import calibrate_after

        pair = calibrate_after(
            run.load(str(training["second_tier"]["skill"])),
            run.load(str(training["skill"])),
            texts,
            labels,
            target,
            label_shares=shares,
            source="distill calibration split",
            by="distill",
        )
        training["chain"] = pair.summary()


def _shadow_items(
    run: _Run,
    canary: SkillVersion,
    eval_data: tuple[list[str], list[str]] | None,
    eval_csv: Path | str | None,
) -> tuple[list[str], list[str], str]:
    """(texts, labels, what they are) both versions answer: given, a CSV, declared, or the
    canary's validation split (with a note: prod may have been trained on it)."""
    from orchestrator.learning.datasets import VAL_FILE

    if eval_data is not None:
        texts, labels = list(eval_data[0]), list(eval_data[1])
        return texts, labels, f"{len(texts)} given items"
    if eval_csv is not None:
        pairs, source = read_pairs(eval_csv, run.columns), str(eval_csv)
    elif run.declared is not None and (found := run.declared.rows("eval_data")) is not None:
        pairs, source = found
    else:
        assert canary.artifacts_dir is not None
        pairs = read_pairs(canary.artifacts_dir / VAL_FILE, run.columns)
        source = f"the canary's validation split ({len(pairs)} rows)"
        run.notes.append(
            "shadow items are the canary's validation split, which prod may have been trained "
            "on; give --eval-csv with held-out rows for a fair comparison"
        )
    return [t for t, _ in pairs], [y for _, y in pairs], source
