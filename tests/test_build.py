"""Builds: a build never writes a tracked file; stale inputs rebuild; calibration is part of the
build and is recomputed, never dropped, when the artifacts change.

Each test builds a small project of its own in a temporary git repository: one keyword skill
trained from a CSV by a script, a graph that asks for its calibrated threshold.
"""

from __future__ import annotations

import hashlib
import subprocess
import textwrap
from pathlib import Path

import pytest
import yaml

from orchestrator.errors import ArtifactError, OrchestratorError, SkillDefinitionError
from orchestrator.graph.compiler import compile_graph
from orchestrator.graph.spec import load_graph
from orchestrator.learning.build import build_skills, is_current
from orchestrator.registry.build_record import load_build_record
from orchestrator.registry.manifest import load_manifest
from orchestrator.registry.registry import Registry

SKILL = """
from typing import Literal

from pydantic import BaseModel
from orchestrator.skill import Predictions, Skill


class Text(BaseModel):
    text: str


class Label(BaseModel):
    label: Literal["yes", "no"]


class Keyword(Skill):
    name = "keyword"
    version = "1.0.0"
    description = "label of a text's first known word"
    Input = Text
    Output = Label

    def setup(self):
        import json
        self.words = json.loads(self.artifact("words.json").read_text())

    def predict(self, batch):
        out, conf = [], []
        for text in batch["text"]:
            hit = next((self.words[w] for w in text.split() if w in self.words), ["no", 0.5])
            out.append(hit[0])
            conf.append(hit[1])
        return Predictions({"label": out}, conf)
"""

#: Counts words per label; the seed jitters every confidence a little (other bytes, same model),
#: as training on another CPU does.
TRAIN = """
import csv, json, os, random
from pathlib import Path
from orchestrator.registry.build_record import build_seed, record_build

FOLDER = Path(__file__).parent
rows = list(csv.DictReader(open("data/rows.csv", encoding="utf-8")))
seed = build_seed(FOLDER)
jitter = random.Random(seed)
counts = {}
for row in rows[::2]:
    for word in row["text"].split():
        counts.setdefault(word, {}).setdefault(row["label"], 0)
        counts[word][row["label"]] += 1
words = {}
for word, by in sorted(counts.items()):
    label = max(by, key=by.get)
    share = by[label] / sum(by.values())
    words[word] = [label, round(share - (jitter.random() * 1e-3 if seed else 0.0), 6)]
out = FOLDER / "artifacts"
out.mkdir(exist_ok=True)
(out / "words.json").write_text(json.dumps(words, sort_keys=True))
with open(out / "val.csv", "w", encoding="utf-8", newline="") as fh:
    writer = csv.writer(fh)
    writer.writerow(["text", "label"])
    writer.writerows([r["text"], r["label"]] for r in rows[1::2])
record_build(FOLDER, ["words.json", "val.csv"], {"words": len(words)})
"""

GRAPH = """
name: keywords
version: "1"
inputs: {text: str}
steps:
  - id: kw
    skill: keyword@prod
    inputs: {text: input.text}
    escalation: {threshold: calibrated}
outputs: {label: kw.label}
"""


def _rows() -> str:
    """Two thirds of the rows have a word that always means one label; the rest a word that
    means 'yes' 70 % of the time."""
    lines = ["text,label"]
    for n in range(400):
        word = (n // 3) % 8
        if n % 3 < 2:
            lines.append(f"w{word} filler,{'yes' if word < 4 else 'no'}")
        else:
            lines.append(f"m{word % 5} filler,{'yes' if (n * 7) % 10 < 7 else 'no'}")
    return "\n".join(lines) + "\n"


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True, timeout=60
    )
    return done.stdout


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A git repository with skills/keyword (manifest, skill, train script), its data and a graph,
    everything committed; artifacts ignored as in this repository."""
    root = tmp_path / "proj"
    folder = root / "kwskills" / "keyword"
    folder.mkdir(parents=True)
    (root / "data").mkdir()
    (root / "graphs").mkdir()
    (root / "data" / "rows.csv").write_text(_rows(), encoding="utf-8")
    digest = hashlib.sha256((root / "data" / "rows.csv").read_bytes()).hexdigest()
    (root / "kwskills" / "__init__.py").write_text("")
    (folder / "__init__.py").write_text("")
    (folder / "skill.py").write_text(SKILL)
    (folder / "train.py").write_text(TRAIN)
    manifest = {
        "name": "keyword",
        "version": "1.0.0",
        "entrypoint": "kwskills.keyword.skill:Keyword",
        "aliases": ["prod"],
        "train": "python kwskills/keyword/train.py",
        "inputs": {
            "data": {"data/rows.csv": digest},
            "code": ["kwskills/keyword/train.py", "kwskills/keyword/skill.py"],
            "seed": 0,
            "packages": ["pydantic"],
        },
        "calibration": {
            "validation": {"file": "val.csv", "label_column": "label"},
            "target_accuracy": 0.9,
        },
    }
    (folder / "manifest.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    (root / "graphs" / "keywords.yaml").write_text(textwrap.dedent(GRAPH))
    (root / ".gitignore").write_text("kwskills/*/artifacts/\n__pycache__/\n")
    _git(root, "init", "-q")
    _git(root, "add", "-A")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "project")
    return root


def _build(root: Path, *names: str, **options: object) -> list:
    return build_skills(root / "kwskills", list(names) or None, **options)  # type: ignore[arg-type]


def _registry(root: Path) -> Registry:
    return Registry.from_folder(root / "kwskills")


def test_a_build_writes_only_ignored_files_and_calibrates_what_the_graph_needs(project):
    manifest_before = (project / "kwskills/keyword/manifest.yaml").read_bytes()
    [outcome] = _build(project)
    assert outcome.status == "built" and outcome.reason == "not built yet"
    assert outcome.calibrations and outcome.calibrations[0].startswith("calibrated alone")
    assert _git(project, "status", "--porcelain") == ""
    assert (project / "kwskills/keyword/manifest.yaml").read_bytes() == manifest_before
    record = load_build_record(project / "kwskills/keyword")
    assert record.calibration["by"] == "build" and record.calibration["target_accuracy"] == 0.9
    assert record.inputs["seed"] == 0 and record.inputs["data"] == {
        "data/rows.csv": load_manifest(project / "kwskills/keyword").inputs.data["data/rows.csv"]
    }
    compiled = compile_graph(load_graph(project / "graphs/keywords.yaml"), _registry(project))
    assert compiled.resolved.steps[0].threshold == record.calibration["threshold"]
    [again] = _build(project)
    assert again.status == "up_to_date" and again.calibrations == []


def test_the_chosen_threshold_has_its_wilson_bound_at_the_target_on_val(project):
    from orchestrator.learning.calibrate import predict_labels, wilson_lower_bound

    _build(project)
    version = _registry(project).resolve("keyword")
    rows = (project / "kwskills/keyword/artifacts/val.csv").read_text().splitlines()[1:]
    texts, labels = zip(*(r.split(",") for r in rows), strict=True)
    predicted, confidence = predict_labels(version.create(), {"text": list(texts)})
    record = version.build.calibration
    kept = confidence >= record["threshold"]
    right = sum(p == y for p, y, k in zip(predicted, labels, kept, strict=True) if k)
    bound = wilson_lower_bound(right / kept.sum(), kept.sum(), record["confidence_level"])
    assert bound >= 0.9 and 0 < kept.sum() < len(texts)


def test_a_perturbed_build_has_other_bytes_and_is_recalibrated(project):
    _build(project)
    folder = project / "kwskills/keyword"
    before = load_build_record(folder)
    [outcome] = _build(project, "keyword", seed=7)
    after = load_build_record(folder)
    assert outcome.reason == "seed 7" and after.inputs["seed"] == 7
    assert after.artifacts["words.json"].sha256 != before.artifacts["words.json"].sha256
    assert after.calibration["artifacts_fingerprint"] != before.calibration["artifacts_fingerprint"]
    assert after.calibration["threshold"] != before.calibration["threshold"]
    assert _git(project, "status", "--porcelain") == ""
    compiled = compile_graph(load_graph(project / "graphs/keywords.yaml"), _registry(project))
    assert compiled.resolved.steps[0].threshold == after.calibration["threshold"]
    # the next plain build sees the seed differ from the manifest's and builds it back
    assert is_current(folder, load_manifest(folder)) == "inputs changed: seed"
    [plain] = _build(project)
    assert plain.status == "built" and load_build_record(folder).inputs["seed"] == 0


def test_changed_code_makes_the_build_stale(project):
    _build(project)
    train = project / "kwskills/keyword/train.py"
    train.write_text(train.read_text() + "\n# a changed line\n")
    [outcome] = _build(project)
    assert outcome.status == "built" and outcome.reason == "inputs changed: code"


def test_data_that_differs_from_its_pin_stops_the_build(project):
    (project / "data/rows.csv").write_text(_rows() + "extra filler,yes\n", encoding="utf-8")
    with pytest.raises(SkillDefinitionError, match=r"data file data/rows.csv has sha256 .* pins"):
        _build(project)


def test_a_tampered_artifact_is_refused_and_rebuilt(project):
    _build(project)
    (project / "kwskills/keyword/artifacts/words.json").write_text("{}")
    with pytest.raises(ArtifactError, match="its build record says"):
        _registry(project).resolve("keyword").verify()
    [outcome] = _build(project)
    assert outcome.status == "built" and "its build record says" in outcome.reason
    _registry(project).resolve("keyword").verify()


def test_a_hand_calibration_is_kept_until_the_artifacts_change(project):
    from orchestrator.learning.calibrate import calibrate
    from orchestrator.learning.evaluate import validation_data

    _build(project)
    version = _registry(project).resolve("keyword")
    data, labels, source, _ = validation_data(version)
    calibrate(version, data, labels, 0.8, min_kept=5, source=source)
    [outcome] = _build(project)
    record = load_build_record(project / "kwskills/keyword")
    assert outcome.calibrations == [] and record.calibration["by"] == "hand"
    assert record.calibration["target_accuracy"] == 0.8
    _build(project, "keyword", seed=3)
    record = load_build_record(project / "kwskills/keyword")
    assert record.calibration["by"] == "build" and record.calibration["target_accuracy"] == 0.9


def test_a_graph_step_without_a_calibration_source_stops_the_build(project):
    manifest = project / "kwskills/keyword/manifest.yaml"
    data = yaml.safe_load(manifest.read_text())
    del data["calibration"]
    manifest.write_text(yaml.safe_dump(data))
    with pytest.raises(OrchestratorError, match=r"graph keywords \(keywords.yaml\), step 'kw'"):
        _build(project)


def test_a_folder_from_before_build_records_still_loads_and_is_rebuilt(project):
    _build(project)
    folder = project / "kwskills/keyword"
    record = load_build_record(folder)
    manifest = yaml.safe_load((folder / "manifest.yaml").read_text())
    manifest["artifacts"] = {k: v.model_dump() for k, v in record.artifacts.items()}
    manifest["metrics"] = {"words": 3, "calibration": record.calibration}
    (folder / "manifest.yaml").write_text(yaml.safe_dump(manifest))
    (folder / "artifacts/build.json").unlink()
    version = _registry(project).resolve("keyword")
    assert version.problem() is None and version.build.metrics == {"words": 3}
    assert version.build.calibration == record.calibration
    assert is_current(folder, load_manifest(folder)) == "built before build records"
