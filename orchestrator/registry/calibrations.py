"""Calibrations as a build stored them: the thresholds a graph's ``calibrated`` steps run with.

A skill's build record (``artifacts/build.json``) keeps its own calibration and, per skill it may
follow in a cascade, a chain calibration (:mod:`orchestrator.learning.chain_calibrate`). Each is
keyed to the artifact fingerprints it was measured on: once the artifacts change it reads as
missing, never as a stale number.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from orchestrator.registry.build_record import BuildRecord, artifacts_fingerprint

if TYPE_CHECKING:
    from orchestrator.registry.registry import SkillVersion

__all__ = [
    "stored_calibration",
    "stored_chain_record",
    "stored_chain_thresholds",
    "stored_threshold",
]


def stored_calibration(build: BuildRecord | None) -> dict[str, Any] | None:
    """The build's calibration, or None if there is none or it is stale (the artifacts changed
    since it was measured)."""
    if build is None:
        return None
    record = build.calibration
    if not isinstance(record, Mapping) or "threshold" not in record:
        return None
    fingerprint = record.get("artifacts_fingerprint")
    if fingerprint is not None and fingerprint != artifacts_fingerprint(build):
        return None
    return dict(record)


def stored_threshold(version: SkillVersion) -> float | None:
    """The calibrated threshold stored with ``version``, or None (not calibrated, or stale)."""
    record = stored_calibration(version.build)
    return float(record["threshold"]) if record is not None else None


def stored_chain_record(version: SkillVersion, first: SkillVersion) -> dict[str, Any] | None:
    """The chain calibration stored with ``version`` for a chain after ``first``, or None (never
    calibrated after it, or either skill's artifacts changed since)."""
    build = version.build
    if build is None:
        return None
    record = build.calibration_after.get(first.key)
    if not isinstance(record, Mapping):
        return None
    if record.get("artifacts_fingerprint") != artifacts_fingerprint(build):
        return None
    if record.get("after_fingerprint") != artifacts_fingerprint(first.build):
        return None
    return dict(record)


def stored_chain_thresholds(
    version: SkillVersion, first: SkillVersion
) -> tuple[float, float] | None:
    """(first, second) thresholds stored with ``version`` for a chain after ``first``, or None
    (never calibrated after it, unreachable, or either skill's artifacts changed since)."""
    record = stored_chain_record(version, first)
    if record is None or not record.get("reachable", False):
        return None
    return float(record["first_threshold"]), float(record["threshold"])
