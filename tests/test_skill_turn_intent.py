"""turn_intent: the ONNX skill against its scikit-learn twin, on every CLINC150 test and val item.

The artifacts are built (trained, ~1 min) by the fixture when missing or stale, never skipped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import joblib
import numpy as np
import onnx
import pytest

from orchestrator.learning.build import build_skills
from orchestrator.registry.build_record import load_build_record, sha256_file
from orchestrator.registry.manifest import ARTIFACTS_DIRNAME, load_manifest
from orchestrator.skill import Predictions
from skills.data import OOS_INTENT, clinc150_eval
from skills.turn_intent import TurnIntent
from skills.turn_intent.train import ONNX_FILE, SKLEARN_FILE, intent_metrics

FOLDER = Path(__file__).resolve().parent.parent / "skills" / "turn_intent"


@pytest.fixture(scope="module")
def artifacts() -> Path:
    build_skills(FOLDER.parent, ["turn_intent"])  # trains only if missing or stale
    return FOLDER / ARTIFACTS_DIRNAME


@pytest.fixture(scope="module")
def intent(artifacts: Path) -> TurnIntent:
    skill = TurnIntent(artifacts_dir=artifacts)
    skill.ensure_setup()
    return skill


@pytest.fixture(scope="module")
def pipeline(artifacts: Path) -> Any:
    return joblib.load(artifacts / SKLEARN_FILE)


@pytest.fixture(scope="module")
def test_set() -> tuple[list[str], list[str]]:
    pairs = clinc150_eval("test")
    return [text for text, _ in pairs], [label for _, label in pairs]


@pytest.fixture(scope="module")
def predicted(intent: TurnIntent, test_set: tuple[list[str], list[str]]) -> Predictions:
    return intent.predict({"text": test_set[0]})


def test_definition_honours_the_contract() -> None:
    TurnIntent.check_definition()
    assert {f: i.annotation for f, i in TurnIntent.Input.model_fields.items()} == {"text": str}
    assert {f: i.annotation for f, i in TurnIntent.Output.model_fields.items()} == {"intent": str}
    assert (TurnIntent.name, TurnIntent.version) == ("turn_intent", "1.0.0")


def test_build_record_describes_the_built_artifacts(artifacts: Path) -> None:
    manifest = load_manifest(FOLDER)
    assert (manifest.name, manifest.version) == (TurnIntent.name, TurnIntent.version)
    assert manifest.entrypoint == "skills.turn_intent.skill:TurnIntent"
    assert "prod" in manifest.aliases
    build = load_build_record(FOLDER)
    assert build is not None and set(build.artifacts) == {ONNX_FILE, SKLEARN_FILE, "val.csv"}
    for filename, record in build.artifacts.items():
        assert sha256_file(artifacts / filename) == record.sha256
        assert (artifacts / filename).stat().st_size == record.bytes


#: Texts with no known word n-gram, or none at all: a zero feature block must stay zero, as in
#: scikit-learn (the graph divides by the block's norm).
NO_FEATURES = ["", " ", "?!", "12345", "zzzzqqqxxj"]


@pytest.mark.parametrize("split", ["test", "val"])
def test_onnx_agrees_with_sklearn_on_every_eval_item(
    intent: TurnIntent, pipeline: Any, split: str
) -> None:
    texts = [text for text, _ in clinc150_eval(split)] + NO_FEATURES
    result = intent.predict({"text": texts})
    expected = pipeline.predict_proba(texts)
    expected_labels = pipeline.classes_[expected.argmax(axis=1)].tolist()

    disagree = [
        t
        for t, a, b in zip(texts, result.outputs["intent"], expected_labels, strict=True)
        if a != b
    ]
    assert disagree == []
    np.testing.assert_allclose(result.confidence, expected.max(axis=1), atol=1e-5)
    # Every class probability, not only the winner's.
    _, probabilities = intent.session.run(None, intent.feed({"text": texts}))
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)


def test_graph_has_no_dense_feature_copies(artifacts: Path) -> None:
    # The features are only read by the TfIdfVectorizers' consumers: no Concat of all 32k features,
    # no Normalizer rewriting them, no LinearClassifier (a MatMul per block instead).
    ops = {node.op_type for node in onnx.load(artifacts / ONNX_FILE).graph.node}
    assert {"MatMul", "Softmax"} <= ops
    assert not ops & {"Concat", "Normalizer", "LinearClassifier"}


def test_accuracy_is_above_floors_and_matches_the_build_record(
    predicted: Predictions, test_set: tuple[list[str], list[str]]
) -> None:
    metrics = intent_metrics(predicted.outputs["intent"], test_set[1])
    assert metrics["in_scope_accuracy"] >= 0.88
    assert metrics["oos_recall"] >= 0.2
    recorded = load_build_record(FOLDER).metrics
    for key, value in metrics.items():
        assert recorded[key] == pytest.approx(value, abs=1e-4)
    assert {"val_in_scope_accuracy", "val_oos_recall", "val_accuracy"} <= set(recorded)


def test_confident_predictions_are_mostly_right(
    predicted: Predictions, test_set: tuple[list[str], list[str]]
) -> None:
    right = np.asarray(predicted.outputs["intent"]) == np.asarray(test_set[1])
    confidence = np.asarray(predicted.confidence)
    assert ((confidence >= 0) & (confidence <= 1)).all()
    assert right[confidence >= 0.5].mean() > right[confidence < 0.5].mean() + 0.2


def test_a_result_does_not_depend_on_its_batch(intent: TurnIntent) -> None:
    # Rows are padded to the longest one inside the graph; padding must not add n-grams.
    short = ["hi", "balance?", "put mambo #5 on my playlist", ""]
    long = "please move two hundred dollars from my checking account into my savings account now"
    alone = [intent.predict({"text": [text]}) for text in short]
    together = intent.predict({"text": [*short, long]})
    for i, one in enumerate(alone):
        assert one.outputs["intent"][0] == together.outputs["intent"][i]
        assert one.confidence[0] == pytest.approx(together.confidence[i], abs=1e-6)


def test_case_and_whitespace_do_not_matter(intent: TurnIntent) -> None:
    variants = ["what is my balance", "What Is My BALANCE", "what  is\tmy\nbalance"]
    result = intent.predict({"text": variants})
    assert result.outputs["intent"] == ["balance"] * 3
    assert np.ptp(result.confidence) == 0


def test_out_of_scope_and_empty_text_get_a_label(intent: TurnIntent) -> None:
    result = intent.predict({"text": ["", "?!", "tell me about the mating habits of octopuses"]})
    assert len(result) == 3
    assert all(isinstance(label, str) for label in result.outputs["intent"])
    assert OOS_INTENT in TurnIntent.Output.model_fields["intent"].description


def test_an_empty_batch_gives_empty_predictions(intent: TurnIntent) -> None:
    result = intent.predict({"text": []})
    assert result.outputs == {"intent": []}
    assert len(result) == 0
