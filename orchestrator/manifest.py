"""Skill manifests: the ``manifest.yaml`` in each ``skills/<name>/`` folder.

A manifest names the class that implements the skill, its version and aliases, the artifact files
with their sha256 (the registry refuses an artifact that does not match), how to rebuild them, and
the metrics measured when they were built. Training scripts call :func:`record_build` so the
manifest always describes the artifacts next to it.

Example::

    name: turn_intent
    version: 1.0.0
    entrypoint: skills.turn_intent.skill:TurnIntent
    aliases: [prod]
    train: python -m skills.turn_intent.train
    artifacts:
      model.onnx: {sha256: 9f2c..., bytes: 4812331}
    metrics: {in_scope_accuracy: 0.91, oos_recall: 0.3}
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from orchestrator.errors import ArtifactError, SkillDefinitionError

__all__ = [
    "ARTIFACTS_DIRNAME",
    "MANIFEST_FILENAME",
    "ArtifactRecord",
    "artifacts_fingerprint",
    "SkillManifest",
    "load_manifest",
    "record_build",
    "sha256_file",
    "verify_artifacts",
]

MANIFEST_FILENAME = "manifest.yaml"
#: Artifacts live in ``skills/<name>/artifacts/``; they are built, not checked in.
ARTIFACTS_DIRNAME = "artifacts"


class ArtifactRecord(BaseModel):
    """One artifact file as it was when the skill was built."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 of the file's bytes")
    bytes: int = Field(ge=0, description="file size")


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
    artifacts: dict[str, ArtifactRecord] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict, description="measured at build time")


#: (path, size, mtime_ns) -> sha256: every compile verifies artifacts, and re-hashing tens of MB
#: each time would put file I/O on every job's path. A rewritten file changes size or mtime.
_DIGESTS: dict[tuple[str, int, int], str] = {}


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file (memoised per path, size and modification time)."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _DIGESTS:
        _DIGESTS[key] = _hash(path)
    return _DIGESTS[key]


def _hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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


def verify_artifacts(folder: Path, manifest: SkillManifest) -> None:
    """Raise ArtifactError unless every artifact the manifest lists exists with its sha256."""
    artifacts_dir = folder / ARTIFACTS_DIRNAME
    for filename, record in manifest.artifacts.items():
        path = artifacts_dir / filename
        if not path.is_file():
            raise ArtifactError(
                f"skill {manifest.name!r}: artifact {path} is missing; "
                f"build it with `orchestrator skills build {manifest.name}`"
            )
        actual = sha256_file(path)
        if actual != record.sha256:
            raise ArtifactError(
                f"skill {manifest.name!r}: artifact {path} has sha256 {actual[:12]}…, the manifest "
                f"says {record.sha256[:12]}…; rebuild with `orchestrator skills build "
                f"{manifest.name}` or restore the file"
            )


def artifacts_fingerprint(manifest: SkillManifest) -> str:
    """A short digest of a manifest's artifact checksums (what a calibration was measured on)."""
    digest = hashlib.sha256()
    for name in sorted(manifest.artifacts):
        digest.update(f"{name}:{manifest.artifacts[name].sha256}\n".encode())
    return digest.hexdigest()[:16]


def record_build(folder: Path, files: list[str], metrics: dict[str, Any]) -> SkillManifest:
    """Write the sha256 and size of freshly built artifacts, and their metrics, into the manifest.

    Training scripts call this last, after writing ``folder/artifacts/<file>`` for each file.
    """
    manifest = load_manifest(folder)
    artifacts_dir = folder / ARTIFACTS_DIRNAME
    records = {
        name: ArtifactRecord(
            sha256=sha256_file(artifacts_dir / name), bytes=(artifacts_dir / name).stat().st_size
        )
        for name in files
    }
    updated = manifest.model_copy(update={"artifacts": records, "metrics": dict(metrics)})
    # A calibration measured on these very artifacts (a deterministic rebuild) stays valid.
    calibration = manifest.metrics.get("calibration")
    if (
        isinstance(calibration, dict)
        and "calibration" not in metrics
        and calibration.get("artifacts_fingerprint") == artifacts_fingerprint(updated)
    ):
        updated.metrics["calibration"] = calibration
    write_manifest(folder, updated)
    return updated


def write_manifest(folder: Path, manifest: SkillManifest) -> None:
    """Write ``manifest`` as ``folder/manifest.yaml`` (fields in model order, unset ones left out)."""
    data = manifest.model_dump(mode="json", exclude_none=True)
    (folder / MANIFEST_FILENAME).write_text(
        yaml.safe_dump(data, sort_keys=False, width=100), encoding="utf-8"
    )
