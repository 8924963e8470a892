"""The rows a distillation trains, calibrates and compares on: learned examples merged into the
base data, labelled CSVs, and the data a skill declares in the ``distill:`` block of its manifest.

A skill folder may name, for each role, a function of no arguments returning ``(text, label)``
pairs (:class:`~orchestrator.registry.manifest.DistillSpec`)::

    distill:
      base_data: {function: "skills.tickets.distill:base_rows", source: tickets 2023}
      eval_data: {function: "skills.tickets.distill:held_out_rows", source: tickets 2024}

``distill`` then needs no ``--base-csv`` or ``--eval-csv`` for that skill. The library knows no
skill by name: the block is the only way a skill's own data reaches it.
"""

from __future__ import annotations

import csv
import importlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from orchestrator.errors import DistillError, SkillDefinitionError
from orchestrator.registry.kinds import normalize_text
from orchestrator.registry.manifest import MANIFEST_FILENAME, DistillData, DistillSpec

if TYPE_CHECKING:
    from orchestrator.registry.manifest import SkillManifest
    from orchestrator.registry.registry import SkillVersion
    from orchestrator.store.examples import Example

__all__ = [
    "Columns",
    "DeclaredData",
    "Pairs",
    "columns_of",
    "declared_data",
    "merge_examples",
    "read_pairs",
    "write_pairs",
]

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
# Columns and CSVs


class Columns(NamedTuple):
    """Where a one-text-field classifier's text and label are: skill fields and CSV columns."""

    text_field: str
    label_field: str
    text_column: str
    label_column: str


def columns_of(version: SkillVersion) -> Columns:
    """The text and label of a one-text-field classifier; DistillError for any other skill."""
    from orchestrator.learning.calibrate import label_field_of
    from orchestrator.learning.evaluate import skill_config

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
    if config is None:
        return Columns(text_field, label_field, text_field, label_field)
    if config.get("kind") != "text-classifier":
        raise DistillError(
            f"skill {version.key} is a {config.get('kind')}; distill retrains text classifiers"
        )
    text_column = config["inputs"][0].get("column", text_field)
    return Columns(text_field, label_field, text_column, config["label_column"])


def read_pairs(path: Path | str, columns: Columns) -> Pairs:
    """The (text, label) rows of a labelled CSV with the skill's columns; blank rows left out."""
    from orchestrator.learning.datasets import read_csv, require_columns

    table = read_csv(path)
    require_columns(table, [columns.text_column, columns.label_column])
    return [
        (row[columns.text_column], row[columns.label_column].strip())
        for row in table.rows
        if row[columns.text_column].strip() and row[columns.label_column].strip()
    ]


def write_pairs(path: Path, rows: Pairs, columns: Columns) -> None:
    """Write rows as a CSV with the skill's text and label columns (what training reads)."""
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow([columns.text_column, columns.label_column])
        writer.writerows(rows)


# ---------------------------------------------------------------------------------------------
# Data a skill declares


@dataclass(frozen=True)
class DeclaredData:
    """A skill's ``distill:`` block and the manifest that declares it (named in errors)."""

    spec: DistillSpec
    manifest: Path

    def rows(self, role: str) -> tuple[Pairs, str] | None:
        """(rows, what they are) from the function declared for ``role`` (``base_data``,
        ``calibration_data`` or ``eval_data``); None when the block declares none."""
        hook: DistillData | None = getattr(self.spec, role)
        if hook is None:
            return None
        where = f"distill.{role} in {self.manifest}"
        return _pairs(_call(hook.function, where), where), hook.source or hook.function


def declared_data(
    prod: SkillVersion, versions: Mapping[str, tuple[Path, SkillManifest]]
) -> DeclaredData | None:
    """The ``distill:`` block of prod's manifest, else of the first other version (in folder
    order) that has one: a version trained by distill does not copy it, so after a promotion the
    skill keeps the data its original folder declares."""
    candidates = [(prod.folder, prod.manifest), *versions.values()]
    for folder, manifest in candidates:
        if folder is not None and manifest is not None and manifest.distill is not None:
            return DeclaredData(manifest.distill, folder / MANIFEST_FILENAME)
    return None


def _call(function: str, where: str) -> Any:
    module_name, _, attr = function.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise SkillDefinitionError(
            f"{where}: cannot import {module_name!r} ({exc}); name an importable "
            "'module:function' there"
        ) from None
    for part in attr.split("."):
        target = getattr(target, part, None)
    if not callable(target):
        raise SkillDefinitionError(
            f"{where}: {function} is not a function of {module_name}; name one that returns "
            "[(text, label), ...]"
        )
    return target()


def _pairs(rows: Any, where: str) -> Pairs:
    try:
        return [(str(text), str(label)) for text, label in rows]
    except (TypeError, ValueError):
        raise SkillDefinitionError(
            f"{where}: the function must return (text, label) pairs, got {type(rows).__name__}"
        ) from None
