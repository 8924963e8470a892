"""Train a skill from a labelled CSV, evaluate it, calibrate it: ``orchestrator skills train|eval|
calibrate``.

``train_text_classifier`` fits word 1-2 + char 2-5 TF-IDF and logistic regression (the recipe and
the ONNX export of ``skills.turn_intent``); ``train_tabular_classifier`` fits one-hot categoricals +
numbers (median-imputed) and gradient-boosted trees or logistic regression, exported by skl2onnx.
Both split off a stratified validation part (seed 0), check ONNX Runtime against scikit-learn on
it, choose the escalation threshold on it (:mod:`orchestrator.calibration`) and write a new skill
folder (see :mod:`orchestrator.skill_kinds`): the folder is the registration, nothing else
changes. The first version of a name gets the ``prod`` alias, later ones ``canary``.

Example::

    report = train_text_classifier("tickets.csv", name="tickets", skills_dir="skills")
    report["threshold"], report["val_selective_accuracy"]
    evaluate("tickets", "tickets_test.csv", skills_dir="skills")["selective_accuracy"]

Data problems raise :class:`DatasetError` with what to fix: a missing file or column, fewer than
two labels, too few rows per label, empty texts or labels, ragged rows.
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import importlib.util
import io
import json
import math
import re
import shutil
import time
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from orchestrator.calibration import DEFAULT_CONFIDENCE_LEVEL
from orchestrator.errors import OrchestratorError, SetupError, SkillDefinitionError
from orchestrator.manifest import (
    ARTIFACTS_DIRNAME,
    MANIFEST_FILENAME,
    SkillManifest,
    load_manifest,
    record_build,
)
from orchestrator.skill_kinds import (
    CONFIG_FILE,
    build_skill_class,
    class_name,
    field_name,
    normalize_text,
    to_category,
    to_number,
)

if TYPE_CHECKING:
    import numpy as np

    from orchestrator.calibration import Calibration
    from orchestrator.registry import SkillVersion

__all__ = [
    "DatasetError",
    "calibrate_command",
    "eval_command",
    "evaluate",
    "read_csv",
    "train_app",
    "train_tabular_classifier",
    "train_text_classifier",
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

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_VERSION = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+_-]*$")


class DatasetError(SetupError):
    """A training or evaluation CSV cannot be used as given; the message says what to fix."""

    code = "dataset_error"


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


def _non_empty(table: CsvTable, column: str, what: str) -> list[str]:
    values = [v.strip() for v in table.column(column)]
    empty = [line for v, line in zip(values, table.lines, strict=True) if not v]
    if empty:
        raise DatasetError(
            f"{table.path}: {what} column {column!r} is empty on {len(empty)} row(s) "
            f"(lines {_few(empty)}); fill or remove them"
        )
    return values


def check_labels(labels: Sequence[str], val_fraction: float, where: str) -> dict[str, int]:
    """Counts per label; DatasetError unless there are 2+ labels, each with enough rows."""
    if not 0.05 <= val_fraction <= 0.5:
        raise DatasetError(f"--val-fraction {val_fraction} must be between 0.05 and 0.5")
    counts = Counter(labels)
    if len(counts) < 2:
        only = next(iter(counts), "")
        raise DatasetError(
            f"{where} has a single label ({only!r}); a classifier needs at least 2 labels"
        )
    need = rows_needed_per_label(val_fraction)
    short = sorted((n, label) for label, n in counts.items() if n < need)
    if short:
        listed = ", ".join(f"{label!r} ({n})" for n, label in short[:8])
        more = f" and {len(short) - 8} more" if len(short) > 8 else ""
        raise DatasetError(
            f"{where}: {len(short)} label(s) have too few rows: {listed}{more}. Each label needs "
            f"at least {need} rows (so that the validation part, --val-fraction {val_fraction}, "
            "holds at least one and training keeps the rest); add rows or drop those labels"
        )
    return dict(sorted(counts.items()))


def rows_needed_per_label(val_fraction: float) -> int:
    return max(MIN_ROWS_PER_LABEL, math.ceil(1.0 / val_fraction - 1e-9))


def _split(n: int, labels: Sequence[str], val_fraction: float) -> tuple[list[int], list[int]]:
    """Stratified (train, val) row indexes, seed 0."""
    from sklearn.model_selection import train_test_split

    train, val = train_test_split(
        list(range(n)), test_size=val_fraction, stratify=list(labels), random_state=SEED
    )
    return sorted(train), sorted(val)


# ---------------------------------------------------------------------------------------------
# Skill folders: versions, aliases, entrypoint


@dataclass(frozen=True)
class _Target:
    folder: Path
    version: str
    aliases: list[str]
    #: Other versions' folders whose 'canary' alias moves to this one.
    demote_canary: list[Path]


def existing_versions(skills_dir: Path, name: str) -> dict[str, tuple[Path, SkillManifest]]:
    """Version -> (folder, manifest) of every folder under ``skills_dir`` that holds ``name``."""
    found: dict[str, tuple[Path, SkillManifest]] = {}
    if not skills_dir.is_dir():
        return found
    for path in sorted(skills_dir.glob(f"*/{MANIFEST_FILENAME}")):
        try:
            manifest = load_manifest(path.parent)
        except SkillDefinitionError:
            continue
        if manifest.name == name:
            found[manifest.version] = (path.parent, manifest)
    return found


def _version_key(version: str) -> tuple[Any, ...]:
    from packaging.version import InvalidVersion, Version

    try:
        return (1, Version(version))
    except InvalidVersion:
        return (0, version)


def _next_version(versions: Sequence[str]) -> str:
    if not versions:
        return "1.0.0"
    newest = max(versions, key=_version_key)
    parts = re.findall(r"\d+", newest)
    major = int(parts[0]) if parts else 1
    minor = int(parts[1]) + 1 if len(parts) > 1 else 1
    candidate = f"{major}.{minor}.0"
    while candidate in versions:
        minor += 1
        candidate = f"{major}.{minor}.0"
    return candidate


def _plan_target(skills_dir: Path, name: str, version: str | None, force: bool) -> _Target:
    if not _NAME.match(name):
        raise DatasetError(f"skill name {name!r} must be lowercase snake_case, e.g. 'tickets'")
    existing = existing_versions(skills_dir, name)
    version = version or _next_version(list(existing))
    if not _VERSION.match(version):
        raise DatasetError(f"version {version!r} is not a version string (e.g. 1.0.0)")
    if version in existing:
        folder, manifest = existing[version]
        if not force:
            raise DatasetError(
                f"skill {name}@{version} already exists in {folder}; give another --version "
                "(a new version becomes the canary) or --force to overwrite it"
            )
        return _Target(folder, version, list(manifest.aliases), [])
    folder = skills_dir / name
    if folder.exists():
        folder = skills_dir / f"{name}_v{re.sub(r'[^0-9A-Za-z]+', '_', version)}"
    if folder.exists():
        raise DatasetError(f"{folder} exists and does not hold {name}@{version}; move it away")
    has_prod = any("prod" in m.aliases for _, m in existing.values())
    if not has_prod:
        return _Target(folder, version, ["prod"], [])
    demote = [f for f, m in existing.values() if "canary" in m.aliases]
    return _Target(folder, version, ["canary"], demote)


def _module_for(skills_dir: Path, folder_name: str, config_text: str) -> tuple[str, str]:
    """(module name, file name) under which the folder's generated class is imported.

    In a skills folder that is an importable regular package (the built-in ``skills/``) it is
    ``<package>.<folder>.skill``, like the hand-written skills, so Ray workers import it too.
    Elsewhere the registry imports a top-level module from the folder itself; its name carries a
    digest of ``skill.json``, so two folders can only share a module when they define the same
    class.
    """
    package = _package_at(skills_dir)
    if package is not None and folder_name.isidentifier():
        return f"{package}.{folder_name}.skill", "skill.py"
    digest = hashlib.sha256(config_text.encode()).hexdigest()[:10]
    stem = re.sub(r"[^0-9a-z_]", "_", folder_name.lower())
    module = f"skill_{stem}_{digest}"
    return module, f"{module}.py"


def _package_at(skills_dir: Path) -> str | None:
    """The name of the regular package ``skills_dir`` is, when this process imports it from there
    (namespace packages do not count: whether one imports depends on the current directory)."""
    name = skills_dir.resolve().name
    if not name.isidentifier() or not (skills_dir / "__init__.py").is_file():
        return None
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    locations = spec.submodule_search_locations if spec is not None else None
    if locations and any(Path(p).resolve() == skills_dir.resolve() for p in locations):
        return name
    return None


_SHIM = '''"""Generated by `orchestrator skills train`: the class is built from {config} next to this."""

from pathlib import Path

from orchestrator.skill_kinds import load_skill_class

{cls} = load_skill_class(Path(__file__).with_name("{config}"), __name__, "{cls}")
'''


def _write_folder(
    stage: Path,
    *,
    skills_dir: Path,
    target: _Target,
    config: dict[str, Any],
    train_command: str | None,
) -> str:
    """Write skill.json, the module, __init__.py and a manifest without artifacts; returns the
    entrypoint."""
    config_text = json.dumps(config, indent=2, ensure_ascii=False) + "\n"
    module, filename = _module_for(skills_dir, target.folder.name, config_text)
    cls = class_name(config["name"])
    (stage / CONFIG_FILE).write_text(config_text, encoding="utf-8")
    (stage / filename).write_text(_SHIM.format(config=CONFIG_FILE, cls=cls), encoding="utf-8")
    (stage / "__init__.py").write_text("", encoding="utf-8")
    manifest = SkillManifest(
        name=config["name"],
        version=config["version"],
        entrypoint=f"{module}:{cls}",
        aliases=target.aliases,
        train=train_command,
    )
    import yaml

    (stage / MANIFEST_FILENAME).write_text(
        yaml.safe_dump(manifest.model_dump(mode="json", exclude_none=True), sort_keys=False),
        encoding="utf-8",
    )
    return f"{module}:{cls}"


def _set_aliases(folder: Path, aliases: list[str]) -> None:
    import yaml

    manifest = load_manifest(folder).model_copy(update={"aliases": aliases})
    (folder / MANIFEST_FILENAME).write_text(
        yaml.safe_dump(
            manifest.model_dump(mode="json", exclude_none=True), sort_keys=False, width=100
        ),
        encoding="utf-8",
    )


def _train_command(kind: str, args: dict[str, Any], csv_path: Path, skills_dir: Path) -> str | None:
    """The manifest's ``train`` command (run from the skills folder's parent by ``skills build``),
    when the CSV lies under that parent: a fresh clone can then rebuild the artifacts."""
    import shlex

    root = skills_dir.resolve().parent
    try:
        relative = csv_path.resolve().relative_to(root)
    except ValueError:
        return None
    parts = ["python", "-m", "orchestrator.training", kind, "--csv", str(relative)]
    for key, value in args.items():
        if value is not None:
            parts += [f"--{key.replace('_', '-')}", str(value)]
    parts += ["--skills-dir", skills_dir.resolve().name, "--force"]
    return " ".join(shlex.quote(p) for p in parts)


def _install(stage: Path, target: _Target) -> None:
    """Move the staged folder into place (replacing the old one under --force)."""
    if target.folder.exists():
        shutil.rmtree(target.folder)
    stage.rename(target.folder)
    for other in target.demote_canary:
        _set_aliases(other, [a for a in load_manifest(other).aliases if a != "canary"])


def _staging(skills_dir: Path, folder_name: str) -> Path:
    skills_dir.mkdir(parents=True, exist_ok=True)
    stage = skills_dir / f".{folder_name}.training"
    if stage.exists():
        shutil.rmtree(stage)
    (stage / ARTIFACTS_DIRNAME).mkdir(parents=True)
    return stage


def _default_skills_dir(skills_dir: Path | str | None) -> Path:
    if skills_dir is not None:
        return Path(skills_dir)
    from orchestrator.config import Settings

    return Settings().skills_dir


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _write_val_csv(path: Path, columns: list[str], rows: list[list[str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(rows)


def _output_field(label_column: str, inputs: Sequence[str]) -> str:
    from orchestrator.skill import RESERVED_OUTPUTS

    candidate = field_name(label_column)
    if candidate in RESERVED_OUTPUTS or candidate in inputs:
        return "label"
    return candidate


def _shown(labels: Sequence[str], n: int = 6) -> str:
    return ", ".join(labels[:n]) + (", ..." if len(labels) > n else "")


# ---------------------------------------------------------------------------------------------
# Text classifier


def train_text_classifier(
    csv_path: Path | str,
    *,
    name: str,
    text_column: str = "text",
    label_column: str = "label",
    version: str | None = None,
    skills_dir: Path | str | None = None,
    val_fraction: float = 0.2,
    target_accuracy: float = 0.97,
    confidence_level: float | None = DEFAULT_CONFIDENCE_LEVEL,
    description: str | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Train a TF-IDF + logistic regression text classifier from a CSV into a new skill folder.

    Returns the JSON report (also what ``skills train text-classifier`` prints).
    """

    started = time.perf_counter()
    csv_path = Path(csv_path)
    skills_dir = _default_skills_dir(skills_dir)
    table = read_csv(csv_path)
    require_columns(table, [text_column, label_column])
    texts = _non_empty(table, text_column, "text")
    labels = _non_empty(table, label_column, "label")
    counts = check_labels(labels, val_fraction, str(csv_path))
    target = _plan_target(skills_dir, name, version, force)
    train_idx, val_idx = _split(len(texts), labels, val_fraction)

    from skills.turn_intent.train import build_pipeline

    pipeline = build_pipeline()
    normalized = [normalize_text(t) for t in texts]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            pipeline.fit([normalized[i] for i in train_idx], [labels[i] for i in train_idx])
        except ValueError as exc:
            raise DatasetError(
                f"{csv_path}: cannot build features from column {text_column!r} ({exc}); the "
                "texts need words that occur in at least two training rows"
            ) from None
    converged = not any("converge" in str(w.message).lower() for w in caught)
    classes = [str(c) for c in pipeline.classes_]
    field = field_name(text_column)
    output = _output_field(label_column, [field])
    config = {
        "kind": "text-classifier",
        "name": name,
        "version": target.version,
        "description": description
        or (
            f"Classifies a text ({text_column!r} in {csv_path.name}) into one of {len(classes)} "
            f"labels: {_shown(classes)}. TF-IDF + logistic regression trained from a CSV; the "
            "confidence is the probability of the chosen label, so escalate items under the "
            "calibrated threshold."
        ),
        "inputs": [{"field": field, "column": text_column, "type": "text"}],
        "label_field": output,
        "label_column": label_column,
        "labels": classes,
        "model": "tfidf-word1-2-char2-5-logreg",
        "validation_file": VAL_FILE,
    }
    stage = _staging(skills_dir, target.folder.name)
    try:
        model = _text_onnx(pipeline, name)
        (stage / ARTIFACTS_DIRNAME / ONNX_FILE).write_bytes(model.SerializeToString())
        _write_val_csv(
            stage / ARTIFACTS_DIRNAME / VAL_FILE,
            [text_column, label_column],
            [[texts[i], labels[i]] for i in val_idx],
        )
        train_command = _train_command(
            "text-classifier",
            {
                "name": name,
                "text_column": text_column,
                "label_column": label_column,
                "version": target.version,
                "val_fraction": val_fraction,
                "target_accuracy": target_accuracy,
                "confidence_level": confidence_level,
            },
            csv_path,
            skills_dir,
        )
        entrypoint = _write_folder(
            stage, skills_dir=skills_dir, target=target, config=config, train_command=train_command
        )
        skill = build_skill_class(config, entrypoint.partition(":")[0], class_name(name))(
            artifacts_dir=stage / ARTIFACTS_DIRNAME
        )
        skill.ensure_setup()
        val_texts = [texts[i] for i in val_idx]
        val_labels = [labels[i] for i in val_idx]
        onnx_labels, onnx_probs = _session_outputs(skill, {field: val_texts})
        expected = pipeline.predict_proba([normalized[i] for i in val_idx])
        agreement, gap = _compare(onnx_labels, onnx_probs, expected, classes)
        if agreement < 1.0 or gap > TEXT_MAX_GAP:
            raise SetupError(
                f"the ONNX export disagrees with scikit-learn on the validation rows (label "
                f"agreement {agreement:.2%}, probability gap {gap:.1e}); please report this"
            )
        result = _finish(
            stage,
            target,
            skill,
            {field: val_texts},
            val_labels,
            target_accuracy,
            confidence_level,
            source=f"{csv_path.name} (validation part, {val_fraction:.0%})",
            metrics={
                "kind": "text-classifier",
                "rows": len(texts),
                "train_rows": len(train_idx),
                "val_rows": len(val_idx),
                "labels": len(classes),
                "onnx_agreement": round(agreement, 4),
                "onnx_max_probability_gap": float(f"{gap:.2e}"),
                "converged": converged,
                "source_csv": csv_path.name,
                "source_sha256": _file_digest(csv_path),
            },
        )
    finally:
        if stage.exists():
            shutil.rmtree(stage)
    result["label_counts"] = counts
    result["seconds"] = round(time.perf_counter() - started, 2)
    return result


def _text_onnx(pipeline: Any, name: str) -> Any:
    """turn_intent's export of the pipeline; a binary problem is first rewritten as two classes.

    scikit-learn keeps one weight row for two classes (p1 = sigmoid(z)); turn_intent's graph takes
    a softmax over one row per class, and softmax([-z/2, z/2]) = [1 - sigmoid(z), sigmoid(z)].
    """
    import copy

    import numpy as np
    from sklearn.pipeline import Pipeline

    from skills.turn_intent.train import to_onnx

    classifier = pipeline.named_steps["classifier"]
    if len(classifier.classes_) == 2:
        twin = copy.copy(classifier)
        twin.coef_ = np.vstack([-classifier.coef_ / 2, classifier.coef_ / 2])
        twin.intercept_ = np.concatenate([-classifier.intercept_ / 2, classifier.intercept_ / 2])
        pipeline = Pipeline([("features", pipeline.named_steps["features"]), ("classifier", twin)])
    model = to_onnx(pipeline)
    model.graph.name = name
    model.producer_name = "orchestrator.training"
    return model


def _session_outputs(skill: Any, batch: Mapping[str, Sequence[Any]]) -> tuple[Any, Any]:
    """The ONNX session's (labels, probabilities) for a batch, through the skill's own feed."""
    labels, probabilities = skill.session.run(None, skill.feed(batch))[:2]
    return labels, probabilities


def _compare(
    onnx_labels: Any, onnx_probs: Any, expected: np.ndarray, classes: list[str]
) -> tuple[float, float]:
    """Label agreement (near-ties excluded) and largest probability gap, ONNX vs scikit-learn."""
    import numpy as np

    predicted = np.asarray(classes, dtype=object)[expected.argmax(axis=1)]
    top2 = np.sort(expected, axis=1)[:, -2:]
    tie = (top2[:, 1] - top2[:, 0]) < 1e-5
    same = (np.asarray(onnx_labels).astype(str) == predicted.astype(str)) | tie
    gap = float(np.abs(np.asarray(onnx_probs, dtype=np.float64) - expected).max())
    return float(same.mean()), gap


def _finish(
    stage: Path,
    target: _Target,
    skill: Any,
    batch: Mapping[str, Sequence[Any]],
    val_labels: list[str],
    target_accuracy: float,
    confidence_level: float | None,
    *,
    source: str,
    metrics: dict[str, Any],
) -> dict[str, Any]:
    """Calibrate on the validation rows, record the build, install the folder, load it back."""
    import numpy as np

    from orchestrator.calibration import choose_threshold, predict_labels, same_label
    from orchestrator.calibration import write_calibration as store

    predicted, confidence = predict_labels(skill, batch)
    correct = np.array([same_label(p, e) for p, e in zip(predicted, val_labels, strict=True)])
    calibration: Calibration = choose_threshold(
        confidence,
        correct,
        target_accuracy,
        confidence_level=confidence_level,
        on_unreachable="escalate_all",
    )
    from dataclasses import replace

    calibration = replace(calibration, source=source)
    metrics = {"val_accuracy": round(float(correct.mean()), 4), **metrics}
    record_build(stage, [ONNX_FILE, VAL_FILE], metrics)
    store(stage, calibration)
    _install(stage, target)
    version = _load(target.folder)  # the folder must load the way the registry will load it
    if calibration.reachable:
        note = None
    else:
        note = (
            f"no threshold reaches {target_accuracy:.0%} on the validation rows (overall "
            f"accuracy {calibration.accuracy:.1%}); threshold 1.0: every item escalates until "
            "the skill is retrained on more data or calibrated to a lower --target-accuracy"
        )
    report: dict[str, Any] = {
        "skill": version.key,
        "kind": metrics["kind"],
        "folder": str(target.folder),
        "entrypoint": version.manifest.entrypoint if version.manifest else None,
        "aliases": target.aliases,
        "rows": metrics["rows"],
        "train_rows": metrics["train_rows"],
        "val_rows": metrics["val_rows"],
        "labels": metrics["labels"],
        "val_accuracy": metrics["val_accuracy"],
        "target_accuracy": target_accuracy,
        "confidence_level": confidence_level,
        "threshold": calibration.threshold,
        "reachable": calibration.reachable,
        "val_coverage": round(calibration.coverage, 4),
        "val_selective_accuracy": round(calibration.selective_accuracy, 4),
        "onnx_agreement": metrics["onnx_agreement"],
        "onnx_max_probability_gap": metrics["onnx_max_probability_gap"],
    }
    if note:
        report["warning"] = note
    return report


def _load(folder: Path) -> SkillVersion:
    from orchestrator.registry import Registry

    return Registry().load_folder(folder)


# ---------------------------------------------------------------------------------------------
# Tabular classifier

#: A categorical column with more distinct values than this share of rows (and over 50) looks
#: like an identifier or free text: skipped unless named in --feature-columns.
_ID_LIKE_SHARE = 0.5


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def detect_types(table: CsvTable, columns: Sequence[str]) -> dict[str, str]:
    """Column -> "number" (every non-empty cell parses as a number) or "category"."""
    types: dict[str, str] = {}
    for column in columns:
        cells = [v.strip() for v in table.column(column) if v.strip()]
        types[column] = "number" if cells and all(_is_number(v) for v in cells) else "category"
    return types


def train_tabular_classifier(
    csv_path: Path | str,
    *,
    name: str,
    label_column: str = "label",
    feature_columns: Sequence[str] | None = None,
    model: str = "gbm",
    version: str | None = None,
    skills_dir: Path | str | None = None,
    val_fraction: float = 0.2,
    target_accuracy: float = 0.97,
    confidence_level: float | None = DEFAULT_CONFIDENCE_LEVEL,
    description: str | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Train a classifier of rows (numeric + categorical columns) from a CSV into a skill folder.

    ``model``: ``gbm`` (GradientBoostingClassifier, 200 trees of depth 3, as lead_score) or
    ``logreg`` (standardized numbers, LogisticRegression: faster with many labels).
    """
    import numpy as np

    started = time.perf_counter()
    if model not in ("gbm", "logreg"):
        raise DatasetError(f"--model {model!r}: choose 'gbm' or 'logreg'")
    csv_path = Path(csv_path)
    skills_dir = _default_skills_dir(skills_dir)
    table = read_csv(csv_path)
    require_columns(table, [label_column])
    labels = _non_empty(table, label_column, "label")
    skipped: list[str] = []
    if feature_columns:
        columns = [c.strip() for c in feature_columns if c.strip()]
        require_columns(table, columns)
        if label_column in columns:
            raise DatasetError(f"the label column {label_column!r} cannot also be a feature")
        types = detect_types(table, columns)
    else:
        columns = [c for c in table.columns if c != label_column]
        types = detect_types(table, columns)
        for column in list(columns):
            distinct = len({v.strip() for v in table.column(column)})
            if types[column] == "category" and distinct > max(50, _ID_LIKE_SHARE * len(labels)):
                skipped.append(column)
                columns.remove(column)
    if not columns:
        raise DatasetError(f"{csv_path} has no feature columns besides {label_column!r}")
    fields = [field_name(c) for c in columns]
    clash = sorted(f for f, n in Counter(fields).items() if n > 1)
    if clash:
        raise DatasetError(f"columns {columns} give clashing field names {clash}; rename them")
    counts = check_labels(labels, val_fraction, str(csv_path))
    target = _plan_target(skills_dir, name, version, force)
    train_idx, val_idx = _split(len(labels), labels, val_fraction)

    kinds = [types[c] for c in columns]
    matrix = np.array(
        [
            [
                to_number(row[c]) if k == "number" else to_category(row[c])
                for c, k in zip(columns, kinds, strict=True)
            ]
            for row in table.rows
        ],
        dtype=object,
    )
    pipeline = _tabular_pipeline(kinds, model)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pipeline.fit(matrix[train_idx], [labels[i] for i in train_idx])
    converged = not any("converge" in str(w.message).lower() for w in caught)
    classes = [str(c) for c in pipeline.classes_]
    output = _output_field(label_column, fields)
    config = {
        "kind": "tabular-classifier",
        "name": name,
        "version": target.version,
        "description": description
        or (
            f"Classifies a row of {len(columns)} fields ({_shown(fields)}) from {csv_path.name} "
            f"into one of {len(classes)} labels: {_shown(classes)}. "
            f"{'Gradient-boosted trees' if model == 'gbm' else 'Logistic regression'} trained "
            "from a CSV; the confidence is the probability of the chosen label."
        ),
        "inputs": [
            {"field": f, "column": c, "type": k}
            for f, c, k in zip(fields, columns, kinds, strict=True)
        ],
        "label_field": output,
        "label_column": label_column,
        "labels": classes,
        "model": model,
        "validation_file": VAL_FILE,
    }
    stage = _staging(skills_dir, target.folder.name)
    try:
        onnx_model = _tabular_onnx(pipeline, fields, kinds, name)
        (stage / ARTIFACTS_DIRNAME / ONNX_FILE).write_bytes(onnx_model.SerializeToString())
        _write_val_csv(
            stage / ARTIFACTS_DIRNAME / VAL_FILE,
            [*columns, label_column],
            [[table.rows[i][c] for c in columns] + [labels[i]] for i in val_idx],
        )
        train_command = _train_command(
            "tabular-classifier",
            {
                "name": name,
                "label_column": label_column,
                "feature_columns": ",".join(columns),
                "model": model,
                "version": target.version,
                "val_fraction": val_fraction,
                "target_accuracy": target_accuracy,
                "confidence_level": confidence_level,
            },
            csv_path,
            skills_dir,
        )
        entrypoint = _write_folder(
            stage, skills_dir=skills_dir, target=target, config=config, train_command=train_command
        )
        skill = build_skill_class(config, entrypoint.partition(":")[0], class_name(name))(
            artifacts_dir=stage / ARTIFACTS_DIRNAME
        )
        skill.ensure_setup()
        batch = {
            f: [table.rows[i][c] for i in val_idx] for f, c in zip(fields, columns, strict=True)
        }
        onnx_labels, onnx_probs = _session_outputs(skill, batch)
        expected = pipeline.predict_proba(matrix[val_idx])
        agreement, gap = _compare(onnx_labels, onnx_probs, expected, classes)
        if agreement < TABULAR_MIN_AGREEMENT or gap > TABULAR_MAX_GAP:
            raise SetupError(
                f"the ONNX export disagrees with scikit-learn on the validation rows (label "
                f"agreement {agreement:.2%}, probability gap {gap:.1e}); try --model logreg"
            )
        result = _finish(
            stage,
            target,
            skill,
            batch,
            [labels[i] for i in val_idx],
            target_accuracy,
            confidence_level,
            source=f"{csv_path.name} (validation part, {val_fraction:.0%})",
            metrics={
                "kind": "tabular-classifier",
                "model": model,
                "rows": len(labels),
                "train_rows": len(train_idx),
                "val_rows": len(val_idx),
                "labels": len(classes),
                "features": len(columns),
                "onnx_agreement": round(agreement, 4),
                "onnx_max_probability_gap": float(f"{gap:.2e}"),
                "converged": converged,
                "source_csv": csv_path.name,
                "source_sha256": _file_digest(csv_path),
            },
        )
    finally:
        if stage.exists():
            shutil.rmtree(stage)
    result["features"] = dict(zip(fields, kinds, strict=True))
    if skipped:
        result["skipped_columns"] = skipped
    result["label_counts"] = counts
    result["seconds"] = round(time.perf_counter() - started, 2)
    return result


def _tabular_pipeline(kinds: Sequence[str], model: str) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    categorical = [i for i, k in enumerate(kinds) if k == "category"]
    numeric = [i for i, k in enumerate(kinds) if k == "number"]
    parts: list[tuple[str, Any, list[int]]] = []
    if categorical:
        parts.append(
            (
                "categorical",
                OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                categorical,
            )
        )
    if numeric:
        steps: list[tuple[str, Any]] = [
            ("impute", SimpleImputer(strategy="median", keep_empty_features=True))
        ]
        if model == "logreg":
            steps.append(("scale", StandardScaler()))
        parts.append(("numeric", Pipeline(steps), numeric))
    encode = ColumnTransformer(parts, sparse_threshold=0.0)
    classifier: Any
    if model == "gbm":
        classifier = GradientBoostingClassifier(
            n_estimators=200, max_depth=3, learning_rate=0.1, random_state=SEED
        )
    else:
        classifier = LogisticRegression(C=1.0, max_iter=2000, random_state=SEED)
    return Pipeline([("encode", encode), ("classifier", classifier)])


def _tabular_onnx(pipeline: Any, fields: Sequence[str], kinds: Sequence[str], name: str) -> Any:
    """skl2onnx conversion: one [N, 1] input per field (float32 numbers, string categories);
    outputs label and probabilities (zipmap off), opset imports sorted for stable bytes."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    initial_types = [
        (f, FloatTensorType([None, 1]) if k == "number" else StringTensorType([None, 1]))
        for f, k in zip(fields, kinds, strict=True)
    ]
    model = convert_sklearn(
        pipeline,
        name=name,
        initial_types=initial_types,
        options={id(pipeline.named_steps["classifier"]): {"zipmap": False}},
        target_opset=TARGET_OPSET,
    )
    imports = sorted((o.domain, o.version) for o in model.opset_import)
    del model.opset_import[:]
    for domain, opset in imports:
        model.opset_import.add(domain=domain, version=opset)
    return model


# ---------------------------------------------------------------------------------------------
# Evaluation


def load_version(ref: str, skills_dir: Path | str | None = None) -> SkillVersion:
    """Resolve ``name``, ``name@alias`` or ``name@version`` among the folders of that name only
    (a broken unrelated skill folder does not get in the way)."""
    from orchestrator.errors import UnknownSkillError
    from orchestrator.registry import Registry, parse_ref

    root = _default_skills_dir(skills_dir)
    name, _ = parse_ref(ref)
    folders = [folder for folder, _ in existing_versions(root, name).values()]
    if not folders:
        names = sorted(
            {p.parent.name for p in root.glob(f"*/{MANIFEST_FILENAME}")} if root.is_dir() else set()
        )
        close = difflib.get_close_matches(name, names, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise UnknownSkillError(
            f"no skill {name!r} in {root}{hint} Skills there: {', '.join(names) or 'none'}"
        )
    registry = Registry()
    for folder in folders:
        registry.load_folder(folder)
    return registry.resolve(ref)


def _config(version: SkillVersion) -> dict[str, Any] | None:
    if version.folder is None or not (version.folder / CONFIG_FILE).is_file():
        return None
    data: dict[str, Any] = json.loads((version.folder / CONFIG_FILE).read_text(encoding="utf-8"))
    return data


def _coerce(value: str, annotation: Any) -> Any:
    if annotation is bool:
        return value.strip().lower() in {"1", "true", "yes", "y"}
    if annotation is int:
        return int(float(value))
    if annotation is float:
        return to_number(value)
    return value


def batch_from_table(
    version: SkillVersion, table: CsvTable, text_column: str | None = None
) -> dict[str, list[Any]]:
    """The skill's input columns from a CSV: a trained skill's own column names (``text_column``
    overrides a one-field skill's), else columns named like the Input fields."""
    model_fields = version.skill_cls.Input.model_fields
    config = _config(version)
    sources = {f: f for f in model_fields}
    if config is not None:
        sources.update({i["field"]: i.get("column", i["field"]) for i in config["inputs"]})
    if text_column is not None:
        if len(model_fields) != 1:
            raise DatasetError(
                f"--text-column: skill {version.name!r} takes {len(model_fields)} input fields "
                f"({', '.join(model_fields)}); name the CSV columns after them instead"
            )
        sources = {next(iter(model_fields)): text_column}
    elif len(model_fields) == 1:
        only = next(iter(model_fields))
        if sources[only] not in table.columns and "text" in table.columns:
            sources[only] = "text"
    require_columns(table, list(sources.values()))
    return {
        f: [_coerce(row[c], model_fields[f].annotation) for row in table.rows]
        for f, c in sources.items()
    }


def evaluate(
    ref: str,
    csv_path: Path | str,
    *,
    skills_dir: Path | str | None = None,
    text_column: str | None = None,
    label_column: str = "label",
    threshold: float | None = None,
    output_field: str | None = None,
) -> dict[str, Any]:
    """Accuracy, coverage at the stored (or given) threshold, selective accuracy, per-label counts.

    The threshold is the version's calibration (``metrics.calibration.threshold``) unless given;
    with neither, every item is kept (threshold 0).
    """
    import numpy as np

    from orchestrator.calibration import predict_labels, same_label, stored_threshold

    started = time.perf_counter()
    version = load_version(ref, skills_dir)
    version.verify()
    table = read_csv(csv_path)
    expected = _non_empty(table, label_column, "label")
    batch = batch_from_table(version, table, text_column)
    predicted, confidence = predict_labels(version.create(), batch, output_field)
    correct = np.array([same_label(p, e) for p, e in zip(predicted, expected, strict=True)])
    source = "given"
    if threshold is None:
        threshold = stored_threshold(version)
        source = "calibration" if threshold is not None else "none (keep all)"
    cut = 0.0 if threshold is None else float(threshold)
    kept = confidence >= cut
    per_label: dict[str, dict[str, int]] = {}
    for label in sorted(set(expected) | {str(p) for p in predicted if p is not None}):
        truth = np.array([e == label for e in expected])
        guess = np.array([p is not None and str(p) == label for p in predicted])
        per_label[label] = {
            "rows": int(truth.sum()),
            "correct": int((truth & correct).sum()),
            "kept": int((truth & kept).sum()),
            "kept_correct": int((truth & kept & correct).sum()),
            "predicted": int(guess.sum()),
        }
    known = getattr(version.skill_cls, "labels", None)
    unseen = sorted(set(expected) - {str(k) for k in known}) if known else []
    n, k = len(expected), int(kept.sum())
    report: dict[str, Any] = {
        "skill": version.key,
        "csv": str(csv_path),
        "rows": n,
        "accuracy": round(float(correct.mean()), 4),
        "threshold": cut,
        "threshold_source": source,
        "coverage": round(k / n, 4),
        "kept": k,
        "escalated": n - k,
        "selective_accuracy": round(float(correct[kept].mean()), 4) if k else None,
        "per_label": per_label,
        "seconds": round(time.perf_counter() - started, 2),
    }
    if unseen:
        report["unseen_labels"] = unseen
    return report


# ---------------------------------------------------------------------------------------------
# Calibration data

#: Share of out-of-scope turns turn_intent's calibration split is reweighted to by default: the
#: traffic mix the project plans for (CLINC150's test split has it too; its val split has 3 %).
TURN_INTENT_OOS_SHARE = 0.18


def validation_data(version: SkillVersion) -> tuple[Any, list[str], str, dict[str, float] | None]:
    """The default calibration split of a skill: (inputs, labels, source, label_shares).

    A trained skill keeps its validation rows (``artifacts/val.csv``); ``turn_intent`` uses
    CLINC150 val + oos_val. Others need ``--csv``.
    """
    config = _config(version)
    if config is not None and version.artifacts_dir is not None:
        path = version.artifacts_dir / config.get("validation_file", VAL_FILE)
        if path.is_file():
            table = read_csv(path)
            labels = _non_empty(table, config["label_column"], "label")
            return batch_from_table(version, table), labels, f"{path.name} (stored)", None
    if version.name == "turn_intent":
        from skills.data import clinc150_eval

        pairs = clinc150_eval("val")
        # val is 3 % out-of-scope; the traffic the skill serves (and CLINC150's test split) 18 %.
        shares = {"oos": TURN_INTENT_OOS_SHARE}
        return [t for t, _ in pairs], [y for _, y in pairs], "CLINC150 val + oos_val", shares
    raise DatasetError(
        f"skill {version.name!r} has no stored validation split; give --csv with labelled rows"
    )


# ---------------------------------------------------------------------------------------------
# Command line (registered by orchestrator.cli)

train_app = typer.Typer(
    no_args_is_help=True,
    help="Train a new skill version from a labelled CSV: ONNX export, calibration, a skill folder.",
)


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr, soft_wrap=True)


def _fail(exc: OrchestratorError) -> typer.Exit:
    _console(stderr=True).print(f"[bold red]error[/] ({exc.code}): {exc}", highlight=False)
    return typer.Exit(2 if isinstance(exc, SetupError) else 1)


def _emit(report: dict[str, Any]) -> None:
    if report.get("warning"):
        _console(stderr=True).print(f"[yellow]warning[/]: {report['warning']}", highlight=False)
    print(json.dumps(report))


SkillsDirOption = Annotated[
    Path | None, typer.Option(help="skills folder (default: ORCHESTRATOR_SKILLS_DIR or skills/)")
]
CsvOption = Annotated[Path, typer.Option("--csv", help="labelled CSV with a header row")]
VersionOption = Annotated[
    str | None, typer.Option(help="version (default 1.0.0, or the next minor of the newest)")
]
ValFractionOption = Annotated[
    float, typer.Option(help="share of rows held out (stratified) to check and calibrate")
]
TargetOption = Annotated[
    float, typer.Option(help="accuracy the kept (not escalated) answers must reach on val")
]
ConfidenceOption = Annotated[
    float | None,
    typer.Option(
        help="the threshold's one-sided Wilson lower bound must reach the target at this level "
        "(0.5: no margin)"
    ),
]
DescriptionOption = Annotated[
    str | None, typer.Option(help="what the skill does, for the planner (default: generated)")
]
ForceOption = Annotated[bool, typer.Option(help="overwrite an existing folder of that version")]


@train_app.command("text-classifier")
def train_text_command(
    name: Annotated[str, typer.Option(help="skill name, lowercase snake_case")],
    csv_path: CsvOption,
    text_column: Annotated[str, typer.Option(help="column holding the text")] = "text",
    label_column: Annotated[str, typer.Option(help="column holding the label")] = "label",
    version: VersionOption = None,
    skills_dir: SkillsDirOption = None,
    val_fraction: ValFractionOption = 0.2,
    target_accuracy: TargetOption = 0.97,
    confidence_level: ConfidenceOption = DEFAULT_CONFIDENCE_LEVEL,
    description: DescriptionOption = None,
    force: ForceOption = False,
) -> None:
    """TF-IDF + logistic regression on a text column; prints a JSON report."""
    try:
        report = train_text_classifier(
            csv_path,
            name=name,
            text_column=text_column,
            label_column=label_column,
            version=version,
            skills_dir=skills_dir,
            val_fraction=val_fraction,
            target_accuracy=target_accuracy,
            confidence_level=confidence_level,
            description=description,
            force=force,
        )
    except OrchestratorError as exc:
        raise _fail(exc) from None
    _emit(report)


@train_app.command("tabular-classifier")
def train_tabular_command(
    name: Annotated[str, typer.Option(help="skill name, lowercase snake_case")],
    csv_path: CsvOption,
    label_column: Annotated[str, typer.Option(help="column holding the label")] = "label",
    feature_columns: Annotated[
        str | None,
        typer.Option(help="comma-separated feature columns (default: all but the label)"),
    ] = None,
    model: Annotated[
        str, typer.Option(help="'gbm' (boosted trees) or 'logreg' (faster, many labels)")
    ] = "gbm",
    version: VersionOption = None,
    skills_dir: SkillsDirOption = None,
    val_fraction: ValFractionOption = 0.2,
    target_accuracy: TargetOption = 0.97,
    confidence_level: ConfidenceOption = DEFAULT_CONFIDENCE_LEVEL,
    description: DescriptionOption = None,
    force: ForceOption = False,
) -> None:
    """One-hot categoricals + numbers, boosted trees or logistic regression; prints a JSON
    report."""
    try:
        report = train_tabular_classifier(
            csv_path,
            name=name,
            label_column=label_column,
            feature_columns=feature_columns.split(",") if feature_columns else None,
            model=model,
            version=version,
            skills_dir=skills_dir,
            val_fraction=val_fraction,
            target_accuracy=target_accuracy,
            confidence_level=confidence_level,
            description=description,
            force=force,
        )
    except OrchestratorError as exc:
        raise _fail(exc) from None
    _emit(report)


def eval_command(
    name: Annotated[str, typer.Argument(help="skill, skill@alias or skill@version")],
    csv_path: CsvOption,
    text_column: Annotated[
        str | None, typer.Option(help="text column, for one-field skills (default: as trained)")
    ] = None,
    label_column: Annotated[str, typer.Option(help="column holding the true label")] = "label",
    threshold: Annotated[
        float | None, typer.Option(help="escalation threshold (default: the calibrated one)")
    ] = None,
    output_field: Annotated[
        str | None, typer.Option(help="output compared with the labels (default: the label)")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print JSON only")] = False,
    skills_dir: SkillsDirOption = None,
) -> None:
    """Accuracy, coverage at the stored threshold and selective accuracy on a labelled CSV."""
    try:
        report = evaluate(
            name,
            csv_path,
            skills_dir=skills_dir,
            text_column=text_column,
            label_column=label_column,
            threshold=threshold,
            output_field=output_field,
        )
    except OrchestratorError as exc:
        raise _fail(exc) from None
    if not json_out:
        from rich.table import Table

        table = Table(title=f"{report['skill']} on {report['csv']}")
        for column in ("label", "rows", "correct", "kept", "kept correct", "predicted"):
            table.add_column(column, justify="left" if column == "label" else "right")
        for label, row in report["per_label"].items():
            table.add_row(label, *(str(v) for v in row.values()))
        _console().print(table)
        summary = {k: v for k, v in report.items() if k != "per_label"}
        _console().print(", ".join(f"{k}={v}" for k, v in summary.items()), highlight=False)
        return
    print(json.dumps(report))


def _parse_shares(values: list[str] | None) -> dict[str, float] | None:
    if not values:
        return None
    shares: dict[str, float] = {}
    for value in values:
        label, sep, share = value.partition("=")
        try:
            shares[label.strip()] = float(share)
        except ValueError:
            sep = ""
        if not sep or not label.strip():
            raise typer.BadParameter(f"--label-share {value!r}: write LABEL=SHARE, e.g. oos=0.18")
    return shares


def calibrate_command(
    skill: Annotated[str, typer.Argument(help="skill, skill@alias or skill@version")],
    target_accuracy: Annotated[
        float, typer.Option(help="accuracy the kept answers must reach")
    ] = 0.97,
    csv_path: Annotated[
        Path | None,
        typer.Option("--csv", help="labelled validation CSV (default: the skill's own val split)"),
    ] = None,
    text_column: Annotated[
        str | None, typer.Option(help="text column, for one-field skills")
    ] = None,
    label_column: Annotated[str, typer.Option(help="column holding the true label")] = "label",
    label_share: Annotated[
        list[str] | None,
        typer.Option(help="reweight to a traffic mix: LABEL=SHARE, repeatable (e.g. oos=0.18)"),
    ] = None,
    confidence_level: ConfidenceOption = DEFAULT_CONFIDENCE_LEVEL,
    min_kept: Annotated[
        int | None, typer.Option(help="fewest kept items a threshold needs to count")
    ] = None,
    output_field: Annotated[
        str | None, typer.Option(help="output compared with the labels (default: the label)")
    ] = None,
    store: Annotated[bool, typer.Option(help="write the threshold into the manifest")] = True,
    json_out: Annotated[bool, typer.Option("--json", help="print the JSON line only")] = False,
    skills_dir: SkillsDirOption = None,
) -> None:
    """Choose the lowest threshold whose kept answers reach --target-accuracy on a validation
    split; store it with the skill version; print the coverage curve."""
    from orchestrator.calibration import calibrate

    shares = _parse_shares(label_share)
    try:
        version = load_version(skill, skills_dir)
        if csv_path is not None:
            table = read_csv(csv_path)
            labels = _non_empty(table, label_column, "label")
            data: Any = batch_from_table(version, table, text_column)
            source = str(csv_path)
        else:
            data, labels, source, default_shares = validation_data(version)
            shares = shares if shares is not None else default_shares
        result = calibrate(
            version,
            data,
            labels,
            target_accuracy,
            label_shares=shares,
            min_kept=min_kept,
            confidence_level=confidence_level,
            output_field=output_field,
            source=source,
            store=store,
        )
    except OrchestratorError as exc:
        raise _fail(exc) from None
    summary = {"skill": version.key, "stored": store, **result.summary()}
    if not json_out and result.curve is not None:
        from rich.table import Table

        mix = (
            ", weighted to " + ", ".join(f"{k}={v:.0%}" for k, v in result.label_shares.items())
            if result.label_shares
            else ""
        )
        table_ = Table(title=f"{version.key}: selective accuracy vs coverage ({source}{mix})")
        for column in ("threshold", "coverage", "selective accuracy", "kept"):
            table_.add_column(column, justify="right")
        for row in result.curve.rows(result.threshold):
            mark = " ◀" if row["kept"] == result.kept and result.reachable else ""
            table_.add_row(
                f"{row['threshold']:.4f}{mark}",
                f"{row['coverage']:.1%}",
                f"{row['selective_accuracy']:.2%}",
                str(row["kept"]),
            )
        _console().print(table_)
    print(json.dumps(summary))


if __name__ == "__main__":  # `python -m orchestrator.training text-classifier ...` (skills build)
    train_app()
