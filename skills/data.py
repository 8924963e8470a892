"""Loaders for the datasets in ``skills/datasets/``, shared by training, tests, examples and benches.

Both datasets are byte-for-byte copies of their public sources (see ``datasets/README.md``).

Example::

    from skills.data import bank_marketing, clinc150, clinc150_eval

    train = clinc150("train") + clinc150("oos_train")   # [(text, intent), ...]
    test = clinc150_eval("test")                         # test + oos_test, intent "oos" = out of scope
    rows = bank_marketing()                              # [{"age": 56, ..., "subscribed": False}, ...]
"""

from __future__ import annotations

import csv
import json
from functools import cache
from pathlib import Path
from typing import Any

__all__ = [
    "BANK_CATEGORICAL",
    "BANK_NUMERIC",
    "CLINC150_SPLITS",
    "DATASETS_DIR",
    "OOS_INTENT",
    "bank_marketing",
    "clinc150",
    "clinc150_eval",
]

DATASETS_DIR = Path(__file__).parent / "datasets"

#: Splits of CLINC150's ``data_full.json``.
CLINC150_SPLITS = ("train", "val", "test", "oos_train", "oos_val", "oos_test")
#: Intent label of out-of-scope utterances in CLINC150.
OOS_INTENT = "oos"

#: Bank marketing numeric columns (identifier names; ``duration`` is dropped: it leaks the outcome).
BANK_NUMERIC = (
    "age",
    "campaign",
    "pdays",
    "previous",
    "emp_var_rate",
    "cons_price_idx",
    "cons_conf_idx",
    "euribor3m",
    "nr_employed",
)
#: Bank marketing columns holding whole numbers (the others in BANK_NUMERIC are floats).
_BANK_INT = frozenset({"age", "campaign", "pdays", "previous"})
#: Bank marketing categorical (string) columns.
BANK_CATEGORICAL = (
    "job",
    "marital",
    "education",
    "default",
    "housing",
    "loan",
    "contact",
    "month",
    "day_of_week",
    "poutcome",
)


@cache
def _clinc150_raw() -> dict[str, list[list[str]]]:
    path = DATASETS_DIR / "clinc150" / "data_full.json"
    return json.loads(path.read_text(encoding="utf-8"))


def clinc150(split: str) -> list[tuple[str, str]]:
    """One split of CLINC150 as ``(text, intent)`` pairs, in file order.

    ``split`` is one of ``train``, ``val``, ``test`` (150 in-scope intents) or ``oos_train``,
    ``oos_val``, ``oos_test`` (intent ``"oos"``).
    """
    if split not in CLINC150_SPLITS:
        raise ValueError(f"unknown CLINC150 split {split!r}; choose one of {CLINC150_SPLITS}")
    return [(text, intent) for text, intent in _clinc150_raw()[split]]


def clinc150_eval(split: str) -> list[tuple[str, str]]:
    """An evaluation set with out-of-scope items: ``"val"`` = val + oos_val, ``"test"`` = test +
    oos_test (in-scope items first)."""
    if split not in ("val", "test"):
        raise ValueError(f"clinc150_eval takes 'val' or 'test', not {split!r}")
    return clinc150(split) + clinc150(f"oos_{split}")


def _identifier(column: str) -> str:
    return column.replace(".", "_")


def bank_marketing() -> list[dict[str, Any]]:
    """The 41,188 rows of UCI Bank Marketing (``bank-additional-full.csv``), in file order.

    Column names become identifiers (``emp.var.rate`` -> ``emp_var_rate``), numbers are parsed
    (int or float, see :data:`BANK_NUMERIC`), categoricals stay strings (``"unknown"`` included),
    ``duration`` is dropped (it is only known after the call and leaks the outcome) and the target
    ``y`` becomes the bool ``subscribed``.
    """
    path = DATASETS_DIR / "bank_marketing" / "bank-additional-full.csv"
    rows: list[dict[str, Any]] = []
    with path.open(encoding="utf-8", newline="") as fh:
        for raw in csv.DictReader(fh, delimiter=";", quotechar='"'):
            row: dict[str, Any] = {}
            for column, value in raw.items():
                key = _identifier(column)
                if key == "duration":
                    continue
                if key == "y":
                    row["subscribed"] = value == "yes"
                elif key in _BANK_INT:
                    row[key] = int(value)
                elif key in BANK_NUMERIC:
                    row[key] = float(value)
                else:
                    row[key] = value
            rows.append(row)
    return rows
