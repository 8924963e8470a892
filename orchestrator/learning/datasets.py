"""Labelled CSV files for training and evaluation: reading, column and label checks, the
stratified validation split. Every data problem is a :class:`DatasetError` saying what to fix."""

from __future__ import annotations

import csv
import difflib
import io
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.errors import DatasetError

if TYPE_CHECKING:
    pass

__all__ = [
    "CsvTable",
    "DatasetError",
    "check_labels",
    "non_empty_column",
    "read_csv",
    "require_columns",
    "rows_needed_per_label",
    "stratified_split",
]

SEED = 0
ONNX_FILE = "model.onnx"
#: The validation rows, kept so ``skills calibrate NAME`` can re-choose the threshold.
VAL_FILE = "val.csv"
TARGET_OPSET = 17
#: Fewest rows a label needs, whatever the validation fraction.
MIN_ROWS_PER_LABEL = 5
#: ONNX vs scikit-learn: largest probability gap allowed (text: float32 sums of TF-IDF weights).
TEXT_MAX_GAP = 1e-4
#: Tabular: trees compare float32 inputs with float32 thresholds, so a value right at a split can
#: go the other way; allow a small share of flips.
TABULAR_MIN_AGREEMENT = 0.99
TABULAR_MAX_GAP = 1e-3


# ---------------------------------------------------------------------------------------------
# CSV


@dataclass(frozen=True)
class CsvTable:
    """A CSV read as text: header, rows (dicts of strings) and each row's line number."""

    path: Path
    columns: list[str]
    rows: list[dict[str, str]]
    lines: list[int]

    def column(self, name: str) -> list[str]:
        require_columns(self, [name])
        return [row[name] for row in self.rows]


def read_csv(path: Path | str) -> CsvTable:
    """Read a CSV (UTF-8, optional BOM; delimiter ``,`` ``;`` tab or ``|``, from the header)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"CSV file {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    first = text.split("\n", 1)[0]
    delimiter = max(",;\t|", key=first.count) if any(d in first for d in ",;\t|") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise DatasetError(f"{path} is empty; it needs a header row and data rows") from None
    columns = [c.strip() for c in header]
    dupes = sorted(c for c, n in Counter(columns).items() if n > 1)
    if dupes:
        raise DatasetError(f"{path} has duplicate column names: {', '.join(dupes)}")
    rows: list[dict[str, str]] = []
    lines: list[int] = []
    ragged: list[int] = []
    try:
        for record in reader:
            if not any(cell.strip() for cell in record):
                continue  # blank line
            if len(record) != len(columns):
                ragged.append(reader.line_num)
                continue
            rows.append(dict(zip(columns, record, strict=True)))
            lines.append(reader.line_num)
    except csv.Error as exc:
        raise DatasetError(f"{path} line {reader.line_num}: {exc}") from None
    if ragged:
        raise DatasetError(
            f"{path}: {len(ragged)} row(s) do not have {len(columns)} fields like the header "
            f"(lines {_few(ragged)}); quote fields that contain {delimiter!r}"
        )
    if not rows:
        raise DatasetError(f"{path} has a header but no data rows")
    return CsvTable(path, columns, rows, lines)


def require_columns(table: CsvTable, names: Sequence[str]) -> None:
    """Raise DatasetError naming the missing columns, what there is, and a close match."""
    for name in names:
        if name not in table.columns:
            close = difflib.get_close_matches(name, table.columns, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise DatasetError(
                f"column {name!r} is not in {table.path}{hint} Columns: {', '.join(table.columns)}"
            )


def _few(numbers: Sequence[int], shown: int = 5) -> str:
    head = ", ".join(str(n) for n in numbers[:shown])
    return head + (f", ... ({len(numbers)} in all)" if len(numbers) > shown else "")


def non_empty_column(table: CsvTable, column: str, what: str) -> list[str]:
    values = [v.strip() for v in table.column(column)]
    empty = [line for v, line in zip(values, table.lines, strict=True) if not v]
    if empty:
        raise DatasetError(
            f"{table.path}: {what} column {column!r} is empty on {len(empty)} row(s) "
            f"(lines {_few(empty)}); fill or remove them"
        )
    return values


def check_labels(
    labels: Sequence[str], val_fraction: float, where: str, *, cross_fit: bool = False
) -> dict[str, int]:
    """Counts per label; DatasetError unless there are 2+ labels, each with enough rows (see
    :func:`rows_needed_per_label`)."""
    if not 0.05 <= val_fraction <= 0.5:
        raise DatasetError(f"--val-fraction {val_fraction} must be between 0.05 and 0.5")
    counts = Counter(labels)
    if len(counts) < 2:
        only = next(iter(counts), "")
        raise DatasetError(
            f"{where} has a single label ({only!r}); a classifier needs at least 2 labels"
        )
    need = rows_needed_per_label(val_fraction, cross_fit=cross_fit)
    short = sorted((n, label) for label, n in counts.items() if n < need)
    if short:
        listed = ", ".join(f"{label!r} ({n})" for n, label in short[:8])
        more = f" and {len(short) - 8} more" if len(short) > 8 else ""
        why = (
            "so that each part the rows are cut in for cross-fitting holds one"
            if cross_fit
            else f"so that the validation part, --val-fraction {val_fraction}, holds at least "
            "one and training keeps the rest"
        )
        raise DatasetError(
            f"{where}: {len(short)} label(s) have too few rows: {listed}{more}. Each label needs "
            f"at least {need} rows ({why}); add rows or drop those labels"
        )
    return dict(sorted(counts.items()))


def rows_needed_per_label(val_fraction: float, *, cross_fit: bool = False) -> int:
    """Fewest rows a label needs. One held-out part of ``val_fraction`` needs ``1 / val_fraction``
    rows to hold one. Cross-fitting cuts the rows in at most 5 parts whatever the fraction (0.05
    too), so it needs one row per part, never more than :data:`MIN_ROWS_PER_LABEL`."""
    if cross_fit:
        from orchestrator.learning.held_out import fold_count

        return max(MIN_ROWS_PER_LABEL, fold_count(val_fraction))
    return max(MIN_ROWS_PER_LABEL, math.ceil(1.0 / val_fraction - 1e-9))


def stratified_split(
    n: int, labels: Sequence[str], val_fraction: float
) -> tuple[list[int], list[int]]:
    """Stratified (train, val) row indexes, seed 0."""
    from sklearn.model_selection import train_test_split

    train, val = train_test_split(
        list(range(n)), test_size=val_fraction, stratify=list(labels), random_state=SEED
    )
    return sorted(train), sorted(val)
