"""Where ``orchestrator distill turn_intent`` finds its data (the ``distill:`` block of the
manifest names these functions): CLINC150, the data turn_intent is built from.

Each returns ``(text, intent)`` pairs, intent ``"oos"`` for out-of-scope utterances.
"""

from __future__ import annotations

from skills.data import clinc150, clinc150_eval

__all__ = ["base_data", "calibration_data", "eval_data"]


def base_data() -> list[tuple[str, str]]:
    """The original training rows: CLINC150 train + oos_train."""
    return clinc150("train") + clinc150("oos_train")


def calibration_data() -> list[tuple[str, str]]:
    """The rows a new version is calibrated on: CLINC150 val + oos_val."""
    return clinc150_eval("val")


def eval_data() -> list[tuple[str, str]]:
    """The held-out rows prod and the new version are compared on: CLINC150 test + oos_test."""
    return clinc150_eval("test")
