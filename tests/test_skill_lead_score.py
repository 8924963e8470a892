"""lead_score: the ONNX skill against its scikit-learn twin, on every held-out Bank Marketing row.

The artifacts are built (trained, ~15 s) by the fixture when missing or stale, never skipped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from orchestrator.learning.build import build_skills
from orchestrator.registry.build_record import load_build_record, sha256_file
from orchestrator.registry.manifest import ARTIFACTS_DIRNAME, load_manifest
from skills.lead_score import LeadScore
from skills.lead_score.skill import FEATURES
from skills.lead_score.train import ONNX_FILE, SKLEARN_FILE, features, labels, split_data

FOLDER = Path(__file__).resolve().parent.parent / "skills" / "lead_score"

Rows = list[dict[str, Any]]


@pytest.fixture(scope="module")
def artifacts() -> Path:
    build_skills(FOLDER.parent, ["lead_score"])  # trains only if missing or stale
    return FOLDER / ARTIFACTS_DIRNAME


@pytest.fixture(scope="module")
def score(artifacts: Path) -> LeadScore:
    skill = LeadScore(artifacts_dir=artifacts)
    skill.ensure_setup()
    return skill


@pytest.fixture(scope="module")
def heldout() -> Rows:
    return split_data()[1]


def columns(rows: Rows) -> dict[str, list[Any]]:
    return {f: [row[f] for row in rows] for f in FEATURES}


def test_definition_honours_the_contract() -> None:
    LeadScore.check_definition()
    inputs = {f: i.annotation for f, i in LeadScore.Input.model_fields.items()}
    assert inputs == {
        "age": int,
        "job": str,
        "marital": str,
        "education": str,
        "default": str,
        "housing": str,
        "loan": str,
        "contact": str,
        "month": str,
        "day_of_week": str,
        "campaign": int,
        "pdays": int,
        "previous": int,
        "poutcome": str,
        "emp_var_rate": float,
        "cons_price_idx": float,
        "cons_conf_idx": float,
        "euribor3m": float,
        "nr_employed": float,
    }
    outputs = {f: i.annotation for f, i in LeadScore.Output.model_fields.items()}
    assert outputs == {"subscribe_probability": float, "will_subscribe": bool}
    assert (LeadScore.name, LeadScore.version) == ("lead_score", "1.0.0")


def test_every_dataset_row_is_a_valid_input(heldout: Rows) -> None:
    for row in heldout:
        LeadScore.Input.model_validate({f: row[f] for f in FEATURES}, strict=True)


def test_build_record_describes_the_built_artifacts(artifacts: Path) -> None:
    manifest = load_manifest(FOLDER)
    assert (manifest.name, manifest.version) == (LeadScore.name, LeadScore.version)
    assert manifest.entrypoint == "skills.lead_score.skill:LeadScore"
    assert "prod" in manifest.aliases
    build = load_build_record(FOLDER)
    assert build is not None and set(build.artifacts) == {ONNX_FILE, SKLEARN_FILE}
    for filename, record in build.artifacts.items():
        assert sha256_file(artifacts / filename) == record.sha256
        assert (artifacts / filename).stat().st_size == record.bytes


def test_onnx_agrees_with_sklearn_on_every_heldout_row(
    score: LeadScore, artifacts: Path, heldout: Rows
) -> None:
    pipeline = joblib.load(artifacts / SKLEARN_FILE)
    result = score.predict(columns(heldout))
    probability = np.asarray(result.outputs["subscribe_probability"])
    expected = pipeline.predict_proba(features(heldout))[:, 1]
    np.testing.assert_allclose(probability, expected, atol=1e-5, rtol=0)
    assert result.outputs["will_subscribe"] == (probability >= LeadScore.threshold).tolist()
    np.testing.assert_allclose(result.confidence, np.maximum(probability, 1 - probability))


def test_ranking_is_above_floors_and_matches_the_build_record(
    score: LeadScore, heldout: Rows
) -> None:
    outcome = labels(heldout)
    probability = np.asarray(score.predict(columns(heldout)).outputs["subscribe_probability"])
    auc = roc_auc_score(outcome, probability)
    assert auc >= 0.75
    recorded = load_build_record(FOLDER).metrics
    assert recorded["roc_auc"] == pytest.approx(auc, abs=1e-3)
    assert recorded["pr_auc"] > 3 * recorded["base_rate"]
    assert recorded["base_rate"] == pytest.approx(outcome.mean(), abs=1e-4)


def test_outputs_have_plain_python_types(score: LeadScore, heldout: Rows) -> None:
    result = score.predict(columns(heldout[:3]))
    assert all(type(p) is float for p in result.outputs["subscribe_probability"])
    assert all(type(w) is bool for w in result.outputs["will_subscribe"])
    assert len(result) == 3


def test_an_unseen_category_is_scored_not_refused(score: LeadScore, heldout: Rows) -> None:
    row = dict(heldout[0], job="astronaut", month="smarch")
    result = score.predict(columns([row]))
    assert 0.0 <= result.outputs["subscribe_probability"][0] <= 1.0


def test_an_empty_batch_gives_empty_predictions(score: LeadScore) -> None:
    result = score.predict({f: [] for f in FEATURES})
    assert result.outputs == {"subscribe_probability": [], "will_subscribe": []}
    assert len(result) == 0
