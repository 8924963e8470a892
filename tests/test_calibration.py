"""Calibration math on synthetic confidences, and storing a threshold with a skill version."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from pydantic import BaseModel

from orchestrator import Predictions, skill
from orchestrator.learning.calibrate import (
    CalibrationError,
    calibrate,
    choose_threshold,
    default_min_kept,
    selective_curve,
    share_weights,
    write_calibration,
)
from orchestrator.registry.build_record import load_build_record
from orchestrator.registry.calibrations import stored_calibration, stored_threshold
from orchestrator.registry.registry import Registry, SkillVersion

ROOT = Path(__file__).resolve().parent.parent


def _synthetic(n: int = 5000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Confidences that are calibrated probabilities: item i is right with probability c_i."""
    rng = np.random.default_rng(seed)
    confidence = rng.beta(5, 1.5, n)
    correct = rng.random(n) < confidence
    return confidence, correct


def test_curve_by_hand() -> None:
    curve = selective_curve([0.9, 0.8, 0.8, 0.5, 0.1], [True, True, False, True, False])
    # equal confidences form one point: keeping >= 0.8 keeps both 0.8 items
    assert curve.thresholds.tolist() == [0.9, 0.8, 0.5, 0.1]
    assert curve.kept.tolist() == [1, 3, 4, 5]
    assert curve.coverage.tolist() == pytest.approx([0.2, 0.6, 0.8, 1.0])
    assert curve.selective_accuracy.tolist() == pytest.approx([1.0, 2 / 3, 0.75, 0.6])
    assert curve.at(0.85) == (pytest.approx(0.2), pytest.approx(1.0), 1)
    assert curve.at(0.8) == (pytest.approx(0.6), pytest.approx(2 / 3), 3)
    assert curve.at(0.95)[2] == 0


def test_curve_is_monotone_in_coverage() -> None:
    confidence, correct = _synthetic()
    curve = selective_curve(confidence, correct)
    assert np.all(np.diff(curve.thresholds) < 0)
    assert np.all(np.diff(curve.coverage) > 0) and curve.coverage[-1] == pytest.approx(1.0)
    assert curve.selective_accuracy[-1] == pytest.approx(correct.mean())
    # calibrated confidences: the most confident tenth is more accurate than the whole
    assert curve.at(np.quantile(confidence, 0.9))[1] > correct.mean() + 0.1


@pytest.mark.parametrize("target", [0.9, 0.95, 0.97])
def test_threshold_meets_target_and_is_the_lowest(target: float) -> None:
    confidence, correct = _synthetic()
    result = choose_threshold(confidence, correct, target)
    keep = confidence >= result.threshold
    assert result.reachable
    assert correct[keep].mean() >= target
    assert result.coverage == pytest.approx(keep.mean())
    assert result.selective_accuracy == pytest.approx(correct[keep].mean())
    assert result.kept == keep.sum() and result.items == len(confidence)
    # the next lower confidence would break the target
    lower = confidence[confidence < result.threshold].max()
    assert correct[confidence >= lower].mean() < target


def test_a_pocket_just_below_a_dip_is_not_chosen() -> None:
    # 100 right at the top, 8 wrong (dip to 92.6 %), then 60 right: back to 95.2 % at 168 kept
    confidence = np.linspace(1.0, 0.0, 168, endpoint=False)
    correct = np.array([True] * 100 + [False] * 8 + [True] * 60)
    assert correct.mean() > 0.95  # the plain rule would keep everything
    result = choose_threshold(confidence, correct, 0.95)
    # 100/105 = 95.2 % is the last point before the dip under 95 % (100/106)
    assert result.kept == 105 and result.selective_accuracy == pytest.approx(100 / 105)
    assert result.threshold == pytest.approx(confidence[104])


def test_a_few_wrong_items_at_the_very_top_do_not_cap_coverage() -> None:
    confidence = np.linspace(1.0, 0.0, 1000, endpoint=False)
    correct = np.ones(1000, dtype=bool)
    correct[[0, 3, 7]] = False  # three of the most confident answers are wrong
    correct[500:] = False
    result = choose_threshold(confidence, correct, 0.97)
    assert default_min_kept(0.97) == 34
    # 497/k stays >= 97 % up to k = 512; sets under half that size do not veto it
    assert result.reachable and result.kept == 512
    assert choose_threshold(confidence, correct, 0.97, min_kept=1).kept == 512


def test_all_correct_gives_threshold_zero() -> None:
    result = choose_threshold([0.2, 0.5, 0.9], [True, True, True], 0.99)
    assert (result.threshold, result.coverage, result.selective_accuracy) == (0.0, 1.0, 1.0)


def test_unreachable_target_is_a_clear_error_or_escalates_everything() -> None:
    confidence, correct = _synthetic(500)
    with pytest.raises(CalibrationError, match=r"no threshold reaches 99\.90% accuracy"):
        choose_threshold(confidence, correct, 0.999)
    result = choose_threshold(confidence, correct, 0.999, on_unreachable="escalate_all")
    assert (result.threshold, result.reachable, result.coverage, result.kept) == (
        1.0,
        False,
        0.0,
        0,
    )
    with pytest.raises(CalibrationError, match="split of 50 items"):
        choose_threshold(np.linspace(1, 0, 50), [True] * 49 + [False], 0.995)


def test_bad_inputs() -> None:
    with pytest.raises(CalibrationError, match="empty"):
        choose_threshold([], [], 0.9)
    with pytest.raises(CalibrationError, match="one of each"):
        choose_threshold([0.5, 0.6], [True], 0.9)
    with pytest.raises(CalibrationError, match=r"\(0, 1\]"):
        choose_threshold([0.5], [True], 1.5)


def test_confidence_level_is_more_conservative() -> None:
    confidence, correct = _synthetic(2000, seed=1)
    plain = choose_threshold(confidence, correct, 0.95)
    bounded = choose_threshold(confidence, correct, 0.95, confidence_level=0.9)
    assert bounded.threshold > plain.threshold
    assert bounded.selective_accuracy > plain.selective_accuracy


def test_label_shares_reweight_the_split() -> None:
    labels = ["a"] * 90 + ["oos"] * 10
    weights = share_weights(labels, {"oos": 0.5})
    assert weights[90:].sum() == pytest.approx(weights[:90].sum())
    assert weights.sum() == pytest.approx(100)
    with pytest.raises(CalibrationError, match="no item"):
        share_weights(labels, {"missing": 0.2})
    # weighting the wrong (oos) items up lowers the accuracy of keeping everything
    correct = np.array([True] * 90 + [False] * 10)
    confidence = np.linspace(1.0, 0.5, 100)
    plain = selective_curve(confidence, correct)
    weighted = selective_curve(confidence, correct, weights)
    assert plain.selective_accuracy[-1] == pytest.approx(0.9)
    assert weighted.selective_accuracy[-1] == pytest.approx(0.5)


class _Item(BaseModel):
    text: str


class _Guess(BaseModel):
    label: str


@skill(
    name="guess",
    version="1.0.0",
    description="Reads 'label:confidence' from the text (a test double).",
    batched=True,
    input=_Item,
    output=_Guess,
)
def _guess(batch: dict[str, list[str]]) -> Predictions:
    parts = [t.split(":") for t in batch["text"]]
    return Predictions({"label": [p[0] for p in parts]}, [float(p[1]) for p in parts])


def test_calibrate_a_skill_version() -> None:
    rng = np.random.default_rng(3)
    confidence = rng.random(400)
    truth = ["x" if rng.random() < c else "y" for c in confidence]
    texts = [f"x:{c}" for c in confidence]
    result = calibrate(SkillVersion(_guess), texts, truth, 0.9, split="val", source="synthetic")
    keep = confidence >= result.threshold
    assert np.mean(np.array(truth)[keep] == "x") >= 0.9
    assert result.record()["source"] == "synthetic" and result.record()["split"] == "val"


def test_calibration_is_stored_in_the_build_record_and_nothing_else_changes(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "skills" / "lead_score"
    shutil.copytree(ROOT / "skills" / "lead_score", folder)
    manifest_before = (folder / "manifest.yaml").read_bytes()
    before = load_build_record(folder)
    result = choose_threshold(*_synthetic(), 0.95)
    write_calibration(folder, result)
    after = load_build_record(folder)
    assert (folder / "manifest.yaml").read_bytes() == manifest_before  # the manifest is untouched
    block = after.calibration
    assert after.model_copy(update={"calibration": before.calibration}) == before  # only it moved
    assert block["threshold"] == result.threshold and block["target_accuracy"] == 0.95
    assert block["val_coverage"] == round(result.coverage, 4) and block["split"] == "val"
    assert block["by"] == "hand" and stored_calibration(after) is not None
    # retrained artifacts make the stored calibration stale
    changed = dict(after.artifacts)
    changed["model.onnx"] = changed["model.onnx"].model_copy(update={"sha256": "0" * 64})
    assert stored_calibration(after.model_copy(update={"artifacts": changed})) is None


def test_stored_threshold_of_a_registered_version(tmp_path: Path) -> None:
    root = tmp_path / "skills"
    shutil.copytree(ROOT / "skills" / "lead_score", root / "lead_score")
    write_calibration(root / "lead_score", choose_threshold([0.2, 0.5, 0.9], [True] * 3, 0.9))
    version = Registry.from_folder(root).resolve("lead_score")
    assert stored_threshold(version) == 0.0
