"""Distillation on a small CLINC150 subset: examples -> distill -> canary folder in the registry,
shadow report with both versions, promote / rollback moving prod, and the errors."""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from typer.testing import CliRunner

from orchestrator.accounting.ledger import Ledger
from orchestrator.cli.distill import distill_command, promote_command, rollback_command
from orchestrator.errors import SkillDefinitionError, UnknownSkillError
from orchestrator.learning.distill import (
    DistillError,
    distill,
    merge_examples,
    promote,
    rollback,
)
from orchestrator.learning.train import train_text_classifier
from orchestrator.registry.manifest import load_manifest
from orchestrator.registry.registry import Registry
from orchestrator.store.examples import Example, ExampleStore
from skills.data import clinc150

INTENTS = 8


def _subset(split: str, per_intent: int, skip: int = 0) -> list[tuple[str, str]]:
    """The first ``per_intent`` rows (after ``skip``) of the first INTENTS intents of a split."""
    rows = clinc150(split)
    intents = sorted({y for _, y in clinc150("train")})[:INTENTS]
    seen: dict[str, int] = defaultdict(int)
    out = []
    for text, label in rows:
        if label in intents:
            seen[label] += 1
            if skip < seen[label] <= skip + per_intent:
                out.append((text, label))
    return out


def _write(path: Path, rows: list[tuple[str, str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Prod mini@1.0.0 on 20 rows per intent; 15 more per intent as escalated examples; then one
    distill run (shared by the tests below, which only read or move aliases)."""
    root = tmp_path_factory.mktemp("distill")
    skills = root / "skills"
    base = _subset("train", 20)
    base_csv = _write(root / "base.csv", base)
    train_text_classifier(
        base_csv, name="mini", skills_dir=skills, target_accuracy=0.9, val_fraction=0.25
    )
    store = ExampleStore(root / "examples.db")
    learned = _subset("train", 15, skip=20)
    store.add(
        Example("mini@1.0.0", {"text": t}, {"label": y}, "llm:oracle", 0.3) for t, y in learned
    )
    # a human correction of an earlier llm answer wins
    store.add([Example("mini@1.0.0", {"text": learned[0][0]}, {"label": learned[0][1]}, "human:a")])
    eval_csv = _write(root / "eval.csv", _subset("test", 10))
    ledger = Ledger(job_id="j1", graph="g")
    ledger.skill_items["mini@1.0.0"] = 100
    ledger.skill_escalated["mini@1.0.0"] = 40
    report = distill(
        "mini",
        examples=store,
        skills_dir=skills,
        base_csv=base_csv,
        eval_csv=eval_csv,
        target_accuracy=0.9,
        ledgers=[ledger],
    )
    return {
        "root": root,
        "skills": skills,
        "store": store,
        "report": report,
        "base_csv": base_csv,
    }


def test_merge_examples_dedupes_and_human_wins() -> None:
    base = [("Hello there", "greet"), ("bye", "leave"), ("hello   there", "greet")]
    examples = [
        Example("s@1", {"text": "BYE"}, {"label": "llm_says"}, "llm:x"),
        Example("s@1", {"text": "bye"}, {"label": "human_says"}, "human:r"),
        Example("s@1", {"text": "bye"}, {"label": "llm_later"}, "llm:x"),
        Example("s@1", {"text": "new one"}, {"label": "a"}, "llm:x"),
        Example("s@1", {"other": "x"}, {"label": "a"}, "llm:x"),
    ]
    rows, counts = merge_examples(base, examples, "text", "label")
    assert ("hello there" in {t.lower() for t, _ in rows}) or ("Hello there", "greet") in rows
    assert dict((t.lower(), y) for t, y in rows)["bye"] == "human_says"
    assert counts["base_rows"] == 1  # "bye" replaced, duplicate "hello there" dropped
    assert counts["examples_used"] == 2 and counts["examples_unusable"] == 1
    assert counts["base_rows_replaced"] == 1 and counts["base_duplicates_dropped"] == 1
    assert counts["train_rows"] == 3


def test_distill_registers_canary_and_reports_both(setup: dict[str, Any]) -> None:
    report = setup["report"]
    assert report.prod == "mini@1.0.0" and report.canary == "mini@1.1.0"
    assert Path(report.canary_folder).name == "mini_v1_1_0"
    assert report.data["examples_used"] == INTENTS * 15
    assert report.data["human_examples"] == 1
    assert report.data["train_rows"] == INTENTS * 35
    # prod was cross-fitted: so is the canary (in 5 parts: distill's --val-fraction 0.2)
    assert report.training["cross_fit_parts"] == 5
    keys = [v.key for v in report.shadow]
    assert keys == ["mini@1.0.0", "mini@1.1.0"]
    for v in report.shadow:
        assert v.items == INTENTS * 10
        assert 0.0 <= v.escalation_rate <= 1.0 and v.accuracy > 0.5
        assert v.coverage == pytest.approx(1 - v.escalation_rate, abs=1e-3)
    assert report.shadow[1].accuracy >= report.shadow[0].accuracy - 0.05
    assert report.ledger["mini@1.0.0"] == {
        "items": 100,
        "escalated": 40,
        "jobs": 1,
        "escalation_rate": 0.4,
    }
    assert report.examples_per_version == {"mini@1.0.0": INTENTS * 15 + 1}
    text = report.render()
    assert "mini@1.1.0" in text and "mini@1.0.0" in text and "ledger" in text
    json.dumps(report.to_dict())

    registry = Registry.from_folder(setup["skills"])
    assert registry.resolve("mini").version == "1.0.0"
    assert registry.resolve("mini@canary").version == "1.1.0"


def test_promote_and_rollback_move_prod(setup: dict[str, Any]) -> None:
    skills = setup["skills"]
    result = promote("mini", skills_dir=skills)
    assert result["prod"] == "mini@1.1.0" and result["previous"] == "mini@1.0.0"
    registry = Registry.from_folder(skills)
    assert registry.resolve("mini").version == "1.1.0"
    assert registry.aliases("mini") == {"prod": "1.1.0", "previous": "1.0.0"}
    with pytest.raises(DistillError, match="no canary"):
        promote("mini", skills_dir=skills)

    result = rollback("mini", skills_dir=skills)
    # the embedding tier distilled with it (same version) moves with it
    assert [t["prod"] for t in result.pop("tiers")] == ["mini_minilm@1.0.0"]
    assert result == {
        "skill": "mini",
        "prod": "mini@1.0.0",
        "rolled_back": "mini@1.1.0",
        "folder": result["folder"],
    }
    registry = Registry.from_folder(skills)
    assert registry.resolve("mini").version == "1.0.0"
    assert registry.aliases("mini") == {"prod": "1.0.0"}
    with pytest.raises(DistillError, match="nothing to roll back"):
        rollback("mini", skills_dir=skills)


def test_errors(setup: dict[str, Any], tmp_path: Path) -> None:
    skills = setup["skills"]
    with pytest.raises(UnknownSkillError, match="minii"):
        distill("minii", examples=setup["store"], skills_dir=skills)
    with (
        ExampleStore(tmp_path / "empty.db") as empty,
        pytest.raises(DistillError, match="no labelled examples"),
    ):
        distill("mini", examples=empty, skills_dir=skills, base_csv=setup["base_csv"])
    away = setup["base_csv"].rename(tmp_path / "away.csv")  # the CSV mini was trained from
    try:
        with pytest.raises(DistillError, match="--base-csv"):
            distill("mini", examples=setup["store"], skills_dir=skills)
    finally:
        away.rename(setup["base_csv"])
    with pytest.raises(UnknownSkillError):
        promote("nope", skills_dir=skills)
    with pytest.raises(UnknownSkillError):
        rollback("nope", skills_dir=skills)


def test_commands(setup: dict[str, Any]) -> None:
    app = typer.Typer()
    skills_app = typer.Typer()
    app.command("distill")(distill_command)
    app.add_typer(skills_app, name="skills")
    skills_app.command("promote")(promote_command)
    skills_app.command("rollback")(rollback_command)
    runner = CliRunner()
    skills = str(setup["skills"])
    out = runner.invoke(app, ["skills", "rollback", "mini", "--skills-dir", skills])
    assert out.exit_code == 2 and "nothing to roll back" in out.output
    away = setup["base_csv"].rename(setup["root"] / "away.csv")  # the CSV mini was trained from
    try:
        out = runner.invoke(
            app,
            [
                "distill",
                "mini",
                "--skills-dir",
                skills,
                "--examples-db",
                str(setup["root"] / "examples.db"),
            ],
        )
    finally:
        away.rename(setup["base_csv"])
    assert out.exit_code == 2 and "--base-csv" in out.output


# ---------------------------------------------------------------------------------------------
# Data a skill declares in its manifest (the `distill:` block)


def declared_base() -> list[tuple[str, str]]:
    """The base rows the test skill's manifest declares."""
    return _subset("train", 20)


def declared_calibration() -> list[tuple[str, str]]:
    """Calibration rows the test skill's manifest declares."""
    return _subset("val", 8)


def declared_eval() -> list[tuple[str, str]]:
    """Held-out rows the test skill's manifest declares."""
    return _subset("test", 10)


def _declare(folder: Path, block: dict[str, Any]) -> None:
    manifest = folder / "manifest.yaml"
    data = yaml.safe_load(manifest.read_text(encoding="utf-8"))
    manifest.write_text(yaml.safe_dump({**data, "distill": block}), encoding="utf-8")


def test_distill_uses_the_data_the_manifest_declares(setup: dict[str, Any], tmp_path: Path) -> None:
    skills = tmp_path / "skills"
    base_csv = _write(tmp_path / "base.csv", declared_base())
    train_text_classifier(  # one held-out part (faster here): the canary is trained the same way
        base_csv,
        name="mini",
        skills_dir=skills,
        target_accuracy=0.9,
        val_fraction=0.25,
        cross_fit=False,
    )
    _declare(
        skills / "mini",
        {
            "base_data": {"function": f"{__name__}:declared_base", "source": "20 rows per intent"},
            "calibration_data": {
                "function": f"{__name__}:declared_calibration",
                "label_shares": {_subset("val", 1)[0][1]: 0.2},
            },
            "eval_data": {"function": f"{__name__}:declared_eval"},
        },
    )
    report = distill("mini", examples=setup["store"], skills_dir=skills, target_accuracy=0.9)
    assert report.training["base"] == "20 rows per intent"
    assert report.data["base_rows"] == INTENTS * 20
    assert report.eval_source == f"{__name__}:declared_eval"  # no source: the function
    assert [v.items for v in report.shadow] == [INTENTS * 10] * 2
    canary = Registry.from_folder(skills).resolve("mini@canary")
    assert canary.manifest is not None and canary.manifest.calibration is not None
    assert canary.manifest.calibration.validation.predictions is None  # as prod: not cross-fitted
    calibration = canary.build
    assert calibration is not None and calibration.calibration is not None
    assert calibration.calibration["source"] == "distill calibration split"
    assert calibration.calibration["val_items"] == INTENTS * 8

    # The canary's folder does not copy the block: once it is prod, the original's still counts.
    promote("mini", skills_dir=skills)
    again = distill("mini", examples=setup["store"], skills_dir=skills, target_accuracy=0.9)
    assert again.prod == "mini@1.1.0" and again.training["base"] == "20 rows per intent"


def test_a_bad_distill_block_says_where_and_what_to_fix(
    setup: dict[str, Any], tmp_path: Path
) -> None:
    skills = tmp_path / "skills"
    base_csv = _write(tmp_path / "base.csv", declared_base())
    train_text_classifier(
        base_csv, name="mini", skills_dir=skills, val_fraction=0.25, cross_fit=False
    )
    _declare(skills / "mini", {"base_data": {"function": "no_colon_here"}})
    with pytest.raises(SkillDefinitionError, match=r"manifest\.yaml is malformed(.|\n)*'module"):
        load_manifest(skills / "mini")
    _declare(skills / "mini", {"base_data": {"function": "no_such_module_xyz:rows"}})
    with pytest.raises(SkillDefinitionError, match=r"distill\.base_data in .*manifest\.yaml"):
        distill("mini", examples=setup["store"], skills_dir=skills)
    _declare(skills / "mini", {"eval_data": {"function": f"{__name__}:INTENTS"}})
    base_csv.unlink()  # nor the CSV it was trained from: nothing to retrain on
    with pytest.raises(DistillError, match=r"declare distill\.base_data"):
        distill("mini", examples=setup["store"], skills_dir=skills)


def test_a_csv_trained_skill_distils_from_its_own_csv_with_no_flags(setup: dict[str, Any]) -> None:
    """#15: distill needs no --base-csv for a skill trained from a CSV it still finds, unchanged;
    both tiers are retrained."""
    report = distill("mini", examples=setup["store"], skills_dir=setup["skills"])
    assert report.training["base"].startswith("base.csv (what mini@")
    assert report.canary.startswith("mini@") and report.canary != report.prod
    canary = Registry.from_folder(setup["skills"]).resolve(
        report.canary.replace("mini", "mini_minilm")
    )
    assert canary.manifest is not None and "canary" in canary.manifest.aliases


def test_a_skill_with_a_rare_label_distils_as_it_trained(tmp_path: Path) -> None:
    """A label with 6 rows trains (cross-fitted: 5 parts) and distils with calibration data,
    where distill's default --val-fraction is 0.05: still 5 parts, so 6 rows are still enough."""
    base = _subset("train", 20)
    rare = base[-1][1]
    base = [row for row in base if row[1] != rare] + [row for row in base if row[1] == rare][:6]
    base_csv = _write(tmp_path / "base.csv", base)
    skills = tmp_path / "skills"
    train_text_classifier(base_csv, name="rare", skills_dir=skills, tiers="tfidf")
    val = _subset("val", 8)
    with ExampleStore(tmp_path / "examples.db") as store:
        store.add(
            Example("rare@1.0.0", {"text": t}, {"label": y}, "llm:oracle", 0.3)
            for t, y in _subset("train", 3, skip=20)
        )
        report = distill(
            "rare",
            examples=store,
            skills_dir=skills,
            base_csv=base_csv,
            target_accuracy=0.9,
            calibration_data=([t for t, _ in val], [y for _, y in val], None),
        )
    assert report.canary == "rare@1.1.0" and report.training["cross_fit_parts"] == 5
    assert report.data["train_rows"] == len(base) + INTENTS * 3
