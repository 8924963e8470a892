"""`skills train` -> folder -> registry -> predict -> `skills eval`, on real data (CLINC150 intents,
UCI Bank Marketing rows), the way a new user would run it; and the errors bad CSVs get."""

from __future__ import annotations

import csv
import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import typer
import yaml
from typer.testing import CliRunner

from orchestrator.cli.skills import calibrate_command, eval_command, train_app
from orchestrator.learning.build import build_skills
from orchestrator.learning.datasets import DatasetError
from orchestrator.learning.train import train_tabular_classifier, train_text_classifier
from orchestrator.registry.build_record import load_build_record
from orchestrator.registry.calibrations import stored_threshold
from orchestrator.registry.registry import Registry
from skills.data import bank_marketing, clinc150

INTENTS = 10
ROWS_PER_INTENT = 60


def _cli() -> typer.Typer:
    """The commands as `orchestrator skills ...` registers them."""
    app = typer.Typer()
    skills = typer.Typer()
    app.add_typer(skills, name="skills")
    skills.add_typer(train_app, name="train")
    skills.command("eval")(eval_command)
    skills.command("calibrate")(calibrate_command)
    return app


runner = CliRunner()


def _invoke(*args: Any) -> Any:
    return runner.invoke(_cli(), [str(a) for a in args])


def _write_csv(path: Path, header: list[str], rows: list[list[Any]], delimiter: str = ",") -> Path:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, delimiter=delimiter, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _clinc_rows(split: str, intents: list[str], per_intent: int) -> list[list[str]]:
    by_intent: dict[str, list[str]] = {}
    for text, intent in clinc150(split):
        if intent in intents:
            by_intent.setdefault(intent, []).append(text)
    return [[text, intent] for intent in intents for text in by_intent[intent][:per_intent]]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """CLINC150: 10 intents x 60 training rows, and their 30 test rows each."""
    folder = tmp_path_factory.mktemp("data")
    intents = sorted({intent for _, intent in clinc150("train")})[:: 150 // INTENTS][:INTENTS]
    header = ["utterance", "intent"]
    return {
        "train": _write_csv(
            folder / "train.csv", header, _clinc_rows("train", intents, ROWS_PER_INTENT)
        ),
        "test": _write_csv(folder / "test.csv", header, _clinc_rows("test", intents, 30)),
        "binary": _write_csv(
            folder / "binary.csv", ["text", "label"], _clinc_rows("train", intents[:2], 40)
        ),
    }


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, data: dict[str, Path]) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("user") / "skills_dir"
    result = _invoke(
        "skills", "train", "text-classifier", "--name", "intents", "--csv", data["train"],
        "--text-column", "utterance", "--label-column", "intent", "--skills-dir", root,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return {"root": root, "report": json.loads(result.stdout.strip().splitlines()[-1])}


def test_train_writes_a_skill_folder(trained: dict[str, Any]) -> None:
    report, folder = trained["report"], trained["root"] / "intents"
    assert report["skill"] == "intents@1.0.0" and report["aliases"] == ["prod"]
    assert report["rows"] == INTENTS * ROWS_PER_INTENT and report["labels"] == INTENTS
    # cross-fitted (the default): every row trains the skill and, held out once, calibrates it
    assert report["val_rows"] == report["train_rows"] == report["rows"]
    assert report["cross_fit_parts"] == 5
    assert report["onnx_agreement"] == 1.0 and report["onnx_max_probability_gap"] < 1e-4
    assert report["val_accuracy"] > 0.85
    assert report["reachable"] and report["val_selective_accuracy"] >= 0.97
    assert 0.0 < report["val_coverage"] <= 1.0 and report["seconds"] > 0
    assert set(report["label_counts"].values()) == {ROWS_PER_INTENT}
    assert (folder / "artifacts" / "model.onnx").is_file()
    assert (folder / "artifacts" / "val.csv").is_file() and (folder / "skill.json").is_file()
    manifest = yaml.safe_load((folder / "manifest.yaml").read_text())
    assert manifest["version"] == "1.0.0" and manifest["entrypoint"] == report["entrypoint"]
    assert "metrics" not in manifest and "artifacts" not in manifest  # machine-dependent: no
    assert manifest["calibration"]["validation"]["file"] == "val.csv"
    assert manifest["calibration"]["validation"]["predictions"] == "held_out.csv"
    assert manifest["calibration"]["target_accuracy"] == 0.97
    with (folder / "artifacts" / "held_out.csv").open(encoding="utf-8") as fh:
        held = list(csv.DictReader(fh))
    assert len(held) == report["rows"]  # one held-out answer per row, and their accuracy is val's
    right = np.mean([r["predicted"] == r["label"] for r in held])
    assert round(float(right), 4) == report["val_accuracy"]
    calibration = load_build_record(folder).calibration
    assert calibration["threshold"] == report["threshold"] and calibration["split"] == "val"
    assert calibration["target_accuracy"] == 0.97 and calibration["by"] == "build"
    assert not list(trained["root"].glob(".*"))  # no staging folder left behind


def test_registry_loads_it_and_it_predicts(trained: dict[str, Any], data: dict[str, Path]) -> None:
    registry = Registry.from_folder(trained["root"])
    version = registry.resolve("intents@prod")
    assert version.key == "intents@1.0.0" and version.problem() is None
    cls = version.skill_cls
    assert list(cls.Input.model_fields) == ["utterance"]
    labels = sorted(set(trained["report"]["label_counts"]))
    assert cls.Output.model_json_schema()["properties"]["intent"]["enum"] == labels
    skill = version.create()
    skill.ensure_setup()
    rows = _clinc_rows("test", labels, 3)
    predictions = skill.predict({"utterance": [text for text, _ in rows]})
    assert set(predictions.outputs["intent"]) <= set(labels)
    truth = [t for _, t in rows]
    assert np.mean(np.array(predictions.outputs["intent"]) == np.array(truth)) > 0.8
    assert len(predictions.confidence) == len(rows)
    assert skill.predict({"utterance": []}).outputs["intent"] == []


def test_eval_json_agrees_with_a_direct_computation(
    trained: dict[str, Any], data: dict[str, Path]
) -> None:
    result = _invoke(
        "skills", "eval", "intents", "--csv", data["test"], "--text-column", "utterance",
        "--label-column", "intent", "--skills-dir", trained["root"], "--json", "--no-chain",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)

    version = Registry.from_folder(trained["root"]).resolve("intents")
    with data["test"].open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    skill = version.create()
    skill.ensure_setup()
    predictions = skill.predict({"utterance": [r["utterance"] for r in rows]})
    truth = np.array([r["intent"] for r in rows])
    predicted = np.array(predictions.outputs["intent"])
    threshold = stored_threshold(version)
    assert threshold is not None and report["threshold"] == threshold
    keep = np.asarray(predictions.confidence) >= threshold
    right = predicted == truth
    assert report["rows"] == len(rows) and report["kept"] == keep.sum()
    assert report["accuracy"] == round(right.mean(), 4)
    assert report["coverage"] == round(keep.mean(), 4)
    assert report["selective_accuracy"] == round(right[keep].mean(), 4)
    assert report["escalated"] == len(rows) - keep.sum()
    assert report["threshold_source"] == "calibration"
    for label, counts in report["per_label"].items():
        assert counts["rows"] == (truth == label).sum()
        assert counts["correct"] == (right & (truth == label)).sum()
        assert counts["kept_correct"] == (right & keep & (truth == label)).sum()
        assert counts["predicted"] == (predicted == label).sum()
    # the text column defaults to the one the skill was trained on
    again = _invoke(
        "skills", "eval", "intents", "--csv", data["test"], "--label-column", "intent",
        "--skills-dir", trained["root"], "--json", "--threshold", "0.5",
    )  # fmt: skip
    assert json.loads(again.stdout)["threshold_source"] == "given"


def test_recalibrate_from_the_stored_validation_rows(
    trained: dict[str, Any], data: dict[str, Path]
) -> None:
    result = _invoke(
        "skills", "calibrate", "intents", "--target-accuracy", "0.99", "--min-kept", "20",
        "--confidence-level", "0.5", "--skills-dir", trained["root"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "selective accuracy" in result.stdout  # the Rich table of the curve
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["target_accuracy"] == 0.99 and summary["stored"]
    assert summary["val_selective_accuracy"] >= 0.99 and summary["curve"]
    version = Registry.from_folder(trained["root"]).resolve("intents")
    assert stored_threshold(version) == summary["threshold"]
    # its own split: the held-out answers, not the skill's on rows it was trained on (all right)
    assert summary["val_accuracy"] == trained["report"]["val_accuracy"] < 1.0
    evaluated = _invoke(
        "skills", "eval", "intents", "--csv", data["test"], "--label-column", "intent",
        "--skills-dir", trained["root"], "--json", "--no-chain",
    )  # fmt: skip
    assert json.loads(evaluated.stdout)["threshold"] == summary["threshold"]
    # an unreachable target is an error and leaves the stored threshold alone
    failed = _invoke(
        "skills", "calibrate", "intents", "--target-accuracy", "0.9999", "--skills-dir",
        trained["root"],
    )  # fmt: skip
    assert failed.exit_code == 2 and "no threshold reaches" in failed.output
    assert (
        stored_threshold(Registry.from_folder(trained["root"]).resolve("intents"))
        == (summary["threshold"])
    )


def test_a_new_version_becomes_the_canary(tmp_path: Path, data: dict[str, Path]) -> None:
    root = tmp_path / "skills_dir"
    common = {"name": "binary", "skills_dir": root}
    first = train_text_classifier(data["binary"], **common)
    second = train_text_classifier(data["binary"], **common)
    assert (first["skill"], first["aliases"]) == ("binary@1.0.0", ["prod"])
    assert (second["skill"], second["aliases"]) == ("binary@1.1.0", ["canary"])
    assert Path(second["folder"]).name == "binary_v1_1_0"
    registry = Registry.from_folder(root)
    assert registry.resolve("binary").version == "1.0.0"
    assert registry.resolve("binary@canary").version == "1.1.0"
    with pytest.raises(DatasetError, match=r"binary@1\.1\.0 already exists"):
        train_text_classifier(data["binary"], version="1.1.0", **common)
    # a two-label problem: the ONNX graph reproduces scikit-learn's sigmoid probabilities
    assert first["labels"] == 2 and first["onnx_agreement"] == 1.0
    assert first["onnx_max_probability_gap"] < 1e-4
    skill = registry.resolve("binary").create()
    skill.ensure_setup()
    texts = [row[0] for row in _clinc_rows("test", sorted(first["label_counts"]), 10)]
    predictions = skill.predict({"text": texts})
    assert set(predictions.outputs["label"]) == set(first["label_counts"])
    assert all(0.5 <= c <= 1.0 for c in predictions.confidence)


# --------------------------------------------------------------------------------------------
# Tabular

BANK_COLUMNS = ["age", "job", "marital", "education", "housing", "loan", "contact", "month"]
BANK_COLUMNS += ["campaign", "pdays", "poutcome", "emp_var_rate", "euribor3m", "nr_employed"]


@pytest.fixture(scope="module")
def bank(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    rows = bank_marketing()
    random.Random(0).shuffle(rows)
    train, test = rows[:1500], rows[1500:2000]
    folder = tmp_path_factory.mktemp("bank")

    def table(part: list[dict[str, Any]]) -> list[list[Any]]:
        return [[r[c] for c in BANK_COLUMNS] + ["yes" if r["subscribed"] else "no"] for r in part]

    train_rows = table(train)
    train_rows[0][0] = ""  # a missing number: imputed with the median
    train_rows[1][1] = ""  # a missing category: a category of its own
    header = [*BANK_COLUMNS, "y"]
    paths = {
        "train": _write_csv(folder / "bank.csv", header, train_rows, delimiter=";"),
        "test": _write_csv(folder / "bank_test.csv", header, table(test), delimiter=";"),
    }
    return {**paths, "test_rows": test}


def test_tabular_classifier_end_to_end(
    tmp_path: Path, bank: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # a skills folder that is an importable package: entrypoints are package paths
    monkeypatch.syspath_prepend(str(tmp_path))
    root = tmp_path / "trained_skills_pkg"
    root.mkdir()
    (root / "__init__.py").write_text("")
    result = _invoke(
        "skills", "train", "tabular-classifier", "--name", "bank_leads", "--csv", bank["train"],
        "--label-column", "y", "--skills-dir", root, "--target-accuracy", "0.9",
        "--confidence-level", "0.5",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["reachable"] and 0 < report["val_coverage"] < 1
    assert report["entrypoint"] == "trained_skills_pkg.bank_leads.skill:BankLeads"
    assert report["features"]["age"] == "number" and report["features"]["job"] == "category"
    assert report["features"]["euribor3m"] == "number" and len(report["features"]) == 14
    assert report["labels"] == 2 and report["onnx_agreement"] >= 0.99
    assert report["val_accuracy"] > 0.85

    version = Registry.from_folder(root).resolve("bank_leads@prod")
    skill = version.create()
    skill.ensure_setup()
    rows = bank["test_rows"]
    batch = {c: [r[c] for r in rows] for c in BANK_COLUMNS}
    batch["age"][0] = None  # missing at predict time too
    predictions = skill.predict(batch)
    assert set(predictions.outputs["y"]) <= {"yes", "no"}
    truth = np.array(["yes" if r["subscribed"] else "no" for r in rows])
    right = np.array(predictions.outputs["y"]) == truth
    assert right.mean() > 0.85

    evaluated = _invoke(
        "skills", "eval", "bank_leads", "--csv", bank["test"], "--label-column", "y",
        "--skills-dir", root, "--json",
    )  # fmt: skip
    assert evaluated.exit_code == 0, evaluated.output
    report = json.loads(evaluated.stdout)
    keep = np.asarray(skill.predict({c: [r[c] for r in rows] for c in BANK_COLUMNS}).confidence)
    keep = keep >= report["threshold"]
    full = np.array(skill.predict({c: [r[c] for r in rows] for c in BANK_COLUMNS}).outputs["y"])
    right = full == truth
    assert report["rows"] == len(rows) and report["kept"] == keep.sum()
    assert report["accuracy"] == round(right.mean(), 4)
    assert report["selective_accuracy"] == round(right[keep].mean(), 4)
    assert sum(c["rows"] for c in report["per_label"].values()) == len(rows)


def test_tabular_logreg_and_chosen_columns(tmp_path: Path, bank: dict[str, Any]) -> None:
    report = train_tabular_classifier(
        bank["train"],
        name="bank_small",
        label_column="y",
        feature_columns=["age", "job", "euribor3m", "poutcome"],
        model="logreg",
        skills_dir=tmp_path / "s",
    )
    assert report["features"] == {
        "age": "number",
        "job": "category",
        "euribor3m": "number",
        "poutcome": "category",
    }
    assert report["onnx_agreement"] >= 0.99


# --------------------------------------------------------------------------------------------
# Bad CSVs


@pytest.fixture
def bad(tmp_path: Path) -> dict[str, Path]:
    ok = [[f"please {w} number {i}", w] for w in ("call", "text") for i in range(10)]
    return {
        "missing": tmp_path / "nope.csv",
        "ok": _write_csv(tmp_path / "ok.csv", ["text", "label"], ok),
        "one_label": _write_csv(
            tmp_path / "one.csv", ["text", "label"], [[f"hi {i}", "a"] for i in range(20)]
        ),
        "few": _write_csv(tmp_path / "few.csv", ["text", "label"], [*ok, ["rare one", "rare"]]),
        "empty_text": _write_csv(tmp_path / "empty.csv", ["text", "label"], [*ok, ["  ", "call"]]),
        "header_only": _write_csv(tmp_path / "header.csv", ["text", "label"], []),
    }


@pytest.mark.parametrize(
    ("case", "options", "message"),
    [
        ("missing", {}, r"nope\.csv does not exist"),
        ("ok", {"text_column": "txt"}, r"column 'txt' is not in .*did you mean 'text'\?"),
        ("ok", {"label_column": "intent"}, r"column 'intent' is not in .* Columns: text, label"),
        ("one_label", {}, r"single label \('a'\); a classifier needs at least 2"),
        ("few", {}, r"'rare' \(1\)\. Each label needs at least 5 rows"),
        ("few", {"val_fraction": 0.1, "cross_fit": False}, r"at least 10 rows \(so that the val"),
        ("few", {"val_fraction": 0.05}, r"at least 5 rows \(so that each part"),
        ("empty_text", {}, r"text column 'text' is empty on 1 row\(s\) \(lines 22\)"),
        ("header_only", {}, r"header but no data rows"),
        ("ok", {"name": "Bad-Name"}, r"lowercase snake_case"),
    ],
)
def test_bad_csvs_get_clear_errors(
    tmp_path: Path, bad: dict[str, Path], case: str, options: dict[str, Any], message: str
) -> None:
    kwargs: dict[str, Any] = {"name": "calls", "skills_dir": tmp_path / "skills", **options}
    with pytest.raises(DatasetError, match=message):
        train_text_classifier(bad[case], **kwargs)
    assert not (tmp_path / "skills" / "calls").exists()


def test_bad_csvs_on_the_command_line(tmp_path: Path, bad: dict[str, Path]) -> None:
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("text,label\nhello,a\nhello there,a,extra\n", encoding="utf-8")
    result = _invoke(
        "skills", "train", "text-classifier", "--name", "calls", "--csv", ragged,
        "--skills-dir", tmp_path / "skills",
    )  # fmt: skip
    assert result.exit_code == 2
    assert "error (dataset_error)" in result.output and "lines 3" in result.output
    result = _invoke(
        "skills", "train", "tabular-classifier", "--name", "calls", "--csv", bad["few"],
        "--skills-dir", tmp_path / "skills",
    )  # fmt: skip
    assert result.exit_code == 2 and "at least 5 rows" in result.output
    result = _invoke("skills", "eval", "nothing", "--csv", bad["ok"], "--skills-dir", tmp_path)
    assert result.exit_code == 2 and "no skill 'nothing'" in result.output


def test_labels_counted_per_label(bad: dict[str, Path], tmp_path: Path) -> None:
    report = train_text_classifier(
        bad["ok"], name="calls", skills_dir=tmp_path / "skills", cross_fit=False
    )
    assert report["label_counts"] == dict(Counter({"call": 10, "text": 10}))
    assert report["val_rows"] == 4 and report["train_rows"] == 16  # one held-out part
    assert report["cross_fit_parts"] == 0


def test_five_rows_a_label_cross_fit_at_any_val_fraction(tmp_path: Path) -> None:
    """Cross-fitting cuts the rows in 5 parts, at --val-fraction 0.05 too: 5 rows a label are
    enough. Only one held-out part of 5 % needs 20 (one of them held out)."""
    rows = [[f"please {w} number {i}", w] for w in ("call", "text") for i in range(20)]
    rows += [[f"stop calling me now {i}", "stop"] for i in range(5)]
    path = _write_csv(tmp_path / "five.csv", ["text", "label"], rows)
    skills = tmp_path / "skills"
    report = train_text_classifier(
        path, name="calls", skills_dir=skills, val_fraction=0.05, tiers="tfidf"
    )
    assert report["cross_fit_parts"] == 5 and report["label_counts"]["stop"] == 5
    with pytest.raises(DatasetError, match=r"'stop' \(5\)\. Each label needs at least 20 rows"):
        train_text_classifier(
            path, name="held", skills_dir=skills, val_fraction=0.05, cross_fit=False
        )


def test_skills_in_the_builtin_folder_get_package_entrypoints() -> None:
    from orchestrator.registry.folders import module_for

    builtin = Path(__file__).resolve().parent.parent / "skills"
    assert module_for(builtin, "tickets", "{}") == ("skills.tickets.skill", "skill.py")
    module, filename = module_for(Path("/nowhere/skills"), "tickets", '{"a": 1}')
    assert module.startswith("skill_tickets_") and filename == f"{module}.py"


def test_a_skill_trained_from_a_csv_in_the_project_rebuilds_like_a_built_in_one(
    tmp_path: Path, data: dict[str, Path]
) -> None:
    """A fresh clone has the trained folder but not its artifacts: `skills build` retrains it
    from the CSV (pinned by sha256), calibrates it, and writes no file the clone tracks."""
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    csv_path = project / "data" / "train.csv"
    csv_path.write_bytes(data["train"].read_bytes())
    report = train_text_classifier(
        csv_path, name="intents", text_column="utterance", label_column="intent",
        skills_dir=project / "skills",
    )  # fmt: skip
    folder = project / "skills" / "intents"
    manifest = yaml.safe_load((folder / "manifest.yaml").read_text())
    assert manifest["inputs"]["data"] == {
        "data/train.csv": load_build_record(folder).inputs["data"]["data/train.csv"]
    }
    tracked = {
        p: p.read_bytes() for p in folder.rglob("*") if p.is_file() and "artifacts" not in p.parts
    }
    first = load_build_record(folder)
    import shutil

    shutil.rmtree(folder / "artifacts")  # what a clone has
    outcomes = {o.name: o for o in build_skills(project / "skills", graphs_dir=project / "graphs")}
    outcome = outcomes["intents"]
    assert outcome.status == "built" and outcome.reason == "not built yet"
    # the second tier (trained with it by default) stays valid: the first tier rebuilt the same
    assert set(outcomes) == {"intents", "intents_minilm"}
    again = load_build_record(folder)
    assert again.calibration is not None and again.calibration["by"] == "build"
    assert again.calibration["threshold"] == report["threshold"] == first.calibration["threshold"]
    assert {p: p.read_bytes() for p in tracked} == tracked  # the folder's definition is as it was
    current = build_skills(project / "skills", graphs_dir=project / "graphs")
    assert {o.status for o in current} == {"up_to_date"}
