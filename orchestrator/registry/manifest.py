"""Skill manifests: the tracked ``manifest.yaml`` in each ``skills/<name>/`` folder.

A manifest says what *defines* a skill, never what a build of it produced on one machine:

- the class that implements it, its version and aliases;
- how to rebuild its artifacts (``train``) and from what (``inputs``): data files pinned by sha256,
  the code whose content matters, the skills whose artifacts the build reads, the seed, and the
  packages whose versions change the bytes;
- how to calibrate it (``calibration``): its validation split, the traffic mix, the target
  accuracy and the margin;
- where ``orchestrator distill`` finds its data when the command line gives none (``distill``):
  functions returning labelled ``(text, label)`` pairs. They are not training inputs of the
  build (``train`` reads what ``inputs`` lists), so changing them never makes a build stale.

Artifact checksums, measured metrics and calibrated thresholds depend on the machine (BLAS kernels
round differently on another CPU); they go in the build record beside the artifacts
(:mod:`orchestrator.registry.build_record`), which git ignores. ``orchestrator skills build`` never writes a
manifest; only commands that change a definition on purpose do (``skills train``, ``promote``).

Example::

    name: turn_intent
    version: 1.0.0
    entrypoint: skills.turn_intent.skill:TurnIntent
    aliases: [prod]
    train: python -m skills.turn_intent.train
    inputs:
      data: {skills/datasets/clinc150/data_full.json: 8a1f...}
      code: [skills/turn_intent/train.py, skills/turn_intent/skill.py]
      seed: 0
      packages: [scikit-learn, skl2onnx, onnx, numpy]
    calibration:
      validation: {file: val.csv, label_column: label, source: CLINC150 val + oos_val}
      label_shares: {oos: 0.18}
      target_accuracy: 0.97
    distill:
      base_data: {function: "skills.tickets.distill:base_rows", source: tickets 2023}
      eval_data: {function: "skills.tickets.distill:held_out_rows", source: tickets 2024}
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from orchestrator.errors import SkillDefinitionError

__all__ = [
    "skill_folders",
    "ARTIFACTS_DIRNAME",
    "MANIFEST_FILENAME",
    "CalibrationSpec",
    "DistillCalibrationData",
    "DistillData",
    "DistillSpec",
    "SkillManifest",
    "TrainingInputs",
    "ValidationSplit",
    "load_manifest",
    "write_manifest",
]

MANIFEST_FILENAME = "manifest.yaml"
#: Artifacts live in ``skills/<name>/artifacts/``; they are built, not checked in.
ARTIFACTS_DIRNAME = "artifacts"
#: Keys older manifests held (what a build measured); they now live in the build record.
LEGACY_BUILD_KEYS = ("artifacts", "metrics")


class TrainingInputs(BaseModel):
    """What a build is made from. Paths are relative to the skills folder's parent (where
    ``train`` runs); a change to any of them makes the build stale."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    data: dict[str, str] = Field(
        default_factory=dict,
        description="data file -> its sha256; a file that no longer matches stops the build",
    )
    code: list[str] = Field(
        default_factory=list, description="files whose content shapes the artifacts"
    )
    skills: list[str] = Field(
        default_factory=list, description="skill folders whose artifacts this build reads"
    )
    seed: int = Field(default=0, description="seed of the training run")
    packages: list[str] = Field(
        default_factory=list, description="distributions whose versions change the artifacts"
    )

    @model_validator(mode="after")
    def _check_digests(self) -> TrainingInputs:
        for path, digest in self.data.items():
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise ValueError(f"inputs.data[{path!r}] must be a sha256 (64 hex digits)")
        return self


class ValidationSplit(BaseModel):
    """The labelled rows a skill is calibrated on: a CSV among its artifacts (the training script
    writes it) or beside the project."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    file: str = Field(description="CSV in the artifacts folder (or a path from the project root)")
    label_column: str = Field(default="label", description="column holding the true label")
    source: str | None = Field(default=None, description="what the rows are, for people")
    predictions: str | None = Field(
        default=None,
        description=(
            "CSV among the artifacts with the skill's held-out answers on these rows (a "
            "cross-fitted skill was trained on them too): calibration reads these, not the "
            "skill's own answers (orchestrator.learning.held_out)"
        ),
    )


class CalibrationSpec(BaseModel):
    """How ``skills build`` calibrates the skill (alone, and as a chain's second tier)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    validation: ValidationSplit
    target_accuracy: float = Field(default=0.97, gt=0.0, lt=1.0)
    label_shares: dict[str, float] | None = Field(
        default=None, description="reweight the split to a traffic mix, e.g. {oos: 0.18}"
    )
    confidence_level: float | None = Field(
        default=None, description="Wilson margin alone (default: the calibration module's)"
    )
    chain_confidence_level: float | None = Field(
        default=None, description="Wilson margin as a chain's second tier (default: the module's)"
    )


class DistillData(BaseModel):
    """One source of labelled rows for ``orchestrator distill``: a function of no arguments that
    returns ``[(text, label), ...]``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    function: str = Field(description="'module:function' returning [(text, label), ...]")
    source: str | None = Field(
        default=None, description="what the rows are, for people (the distill report shows it)"
    )

    @field_validator("function")
    @classmethod
    def _check_function(cls, value: str) -> str:
        module, colon, attr = value.partition(":")
        if not colon or not all(part.isidentifier() for part in [*module.split("."), attr]):
            raise ValueError(
                f"{value!r} must name a function as 'module:function', e.g. "
                "'skills.tickets.distill:base_rows'"
            )
        return value


class DistillCalibrationData(DistillData):
    """The rows ``distill`` calibrates the new version on, and the traffic mix to weight them to."""

    label_shares: dict[str, float] | None = Field(
        default=None, description="reweight the rows to a traffic mix, e.g. {oos: 0.18}"
    )


class DistillSpec(BaseModel):
    """Where ``orchestrator distill`` finds a skill's data when the command line gives none: the
    original training rows (``base_data``), the rows to calibrate the new version on
    (``calibration_data``, else its own validation split) and the held-out rows on which it is
    compared with prod (``eval_data``, else its validation split)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    base_data: DistillData | None = None
    calibration_data: DistillCalibrationData | None = None
    eval_data: DistillData | None = None


class SkillManifest(BaseModel):
    """The parsed ``manifest.yaml`` of one skill folder."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(description="registry name; must equal the class's name")
    version: str = Field(description="version; must equal the class's version")
    entrypoint: str = Field(
        pattern=r"^[\w.]+:[\w.]+$", description="'module:Class' implementing the skill"
    )
    aliases: list[str] = Field(default_factory=list, description="aliases such as prod, canary")
    train: str | None = Field(default=None, description="command that rebuilds the artifacts")
    inputs: TrainingInputs = Field(default_factory=TrainingInputs)
    calibration: CalibrationSpec | None = Field(default=None)
    distill: DistillSpec | None = Field(default=None)
    #: What an older manifest recorded of its build (read once, as a legacy build record).
    legacy_build: dict[str, Any] | None = Field(default=None, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _split_legacy(cls, data: Any) -> Any:
        if isinstance(data, dict) and any(key in data for key in LEGACY_BUILD_KEYS):
            data = dict(data)
            data["legacy_build"] = {key: data.pop(key) for key in LEGACY_BUILD_KEYS if key in data}
        return data


def skill_folders(root: Path) -> list[Path]:
    """The skill folders directly under ``root`` (those holding a manifest), in name order.

    Hidden folders (a training run's ``.<name>.training`` staging folder, editors' ``.git``...) and
    ``_``/``__pycache__`` folders are never skills: a half-written staging folder must not break
    the registry while training runs or after it crashed.
    """
    return sorted(
        path.parent
        for path in root.glob(f"*/{MANIFEST_FILENAME}")
        if not path.parent.name.startswith((".", "_"))
    )


def load_manifest(folder: Path) -> SkillManifest:
    """Read and validate ``folder/manifest.yaml``; SkillDefinitionError says what is wrong."""
    path = folder / MANIFEST_FILENAME
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SkillDefinitionError(f"{path} is missing; every skill folder needs one") from None
    except yaml.YAMLError as exc:
        raise SkillDefinitionError(f"{path} is not valid YAML: {exc}") from None
    try:
        return SkillManifest.model_validate(raw)
    except ValidationError as exc:
        raise SkillDefinitionError(f"{path} is malformed:\n{exc}") from None


def write_manifest(folder: Path, manifest: SkillManifest) -> None:
    """Write ``manifest`` as ``folder/manifest.yaml`` (fields in model order, unset ones left out).

    Only for commands that change a skill's definition on purpose; a build never calls it.
    """
    data = manifest.model_dump(mode="json", exclude_none=True)
    inputs = {k: v for k, v in data.pop("inputs").items() if v not in ([], {})}
    if inputs != {"seed": 0}:
        data["inputs"] = inputs
    ordered = {k: data[k] for k in SkillManifest.model_fields if k in data}
    # written aside, then renamed over the old one: a reader (or a crash) never sees half a file
    path = folder / MANIFEST_FILENAME
    tmp = folder / f".{MANIFEST_FILENAME}.{os.getpid()}.tmp"
    with tmp.open("w", encoding="utf-8") as fh:
        fh.write(yaml.safe_dump(ordered, sort_keys=False, width=100))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
