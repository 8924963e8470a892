"""Build records: what one build of a skill produced, on this machine.

``skills/<name>/artifacts/build.json`` sits beside the artifacts and, like them, is ignored by
git. It holds everything that depends on the machine that built the skill:

- ``inputs`` and ``inputs_digest``: the training inputs as they were (data and code sha256s, the
  seed, package versions, the fingerprints of the skills the build read); a build whose digest
  differs from the inputs' digest now is stale, and ``skills build`` rebuilds it;
- ``artifacts``: each file's sha256 and size; the registry refuses a file that does not match;
- ``code``: the sha256 of the skill's code as it was built: the entrypoint's module file, the
  manifest's ``inputs.code`` and a generated skill's ``skill.json``. The registry refuses a
  version whose code changed since (a changed ``skill.py`` must not run beside artifacts built
  for the old one); ``skills build`` rebuilds it. Records from before this field are checked
  against the ``inputs.code`` they hold;
- ``metrics`` measured by the training script;
- ``calibration`` (the skill alone) and ``calibration_after`` (as the second tier of a chain,
  keyed by the first skill), each with the fingerprint of the artifacts it was measured on.

Training on another CPU gives other bytes (BLAS rounds differently), so nothing tracked may hold
them: the manifest (:mod:`orchestrator.registry.manifest`) says what the skill *is*, this record what a
build of it *is here*.

Example::

    record = load_build_record(Path("skills/turn_intent"))
    record.artifacts["model.onnx"].sha256, record.calibration["threshold"]
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from orchestrator.errors import ArtifactError, SkillDefinitionError
from orchestrator.registry.manifest import ARTIFACTS_DIRNAME, SkillManifest, load_manifest

__all__ = [
    "BUILD_RECORD_FILENAME",
    "SEED_ENV",
    "ArtifactRecord",
    "BuildRecord",
    "artifacts_fingerprint",
    "build_seed",
    "code_files",
    "cpu_model",
    "inputs_digest",
    "load_build_record",
    "machine",
    "record_build",
    "resolve_inputs",
    "sha256_file",
    "update_build_record",
    "verify_artifacts",
    "write_build_record",
]

BUILD_RECORD_FILENAME = "build.json"
#: Overrides the manifest's seed for one build (``skills build --seed``): a perturbed build, whose
#: record then says so, and which the next plain build replaces.
SEED_ENV = "ORCHESTRATOR_TRAIN_SEED"


class ArtifactRecord(BaseModel):
    """One artifact file as it was when the skill was built."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 of the file's bytes")
    bytes: int = Field(ge=0, description="file size")


class BuildRecord(BaseModel):
    """The parsed ``artifacts/build.json`` of one skill folder."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    skill: str = Field(description="name@version built")
    inputs: dict[str, Any] = Field(default_factory=dict, description="training inputs, resolved")
    inputs_digest: str | None = Field(default=None, description="digest of `inputs`")
    artifacts: dict[str, ArtifactRecord] = Field(default_factory=dict)
    code: dict[str, str] = Field(
        default_factory=dict,
        description="the skill's code files (paths from the skill folder) -> sha256, as built",
    )
    metrics: dict[str, Any] = Field(default_factory=dict, description="measured at build time")
    calibration: dict[str, Any] | None = None
    calibration_after: dict[str, dict[str, Any]] = Field(default_factory=dict)
    built_on: dict[str, str] = Field(default_factory=dict, description="machine and time")


# ---------------------------------------------------------------------------------------------
# Files and digests

#: (path, size, mtime_ns) -> sha256: every compile verifies artifacts, and re-hashing tens of MB
#: each time would put file I/O on every job's path. A rewritten file changes size or mtime.
_DIGESTS: dict[tuple[str, int, int], str] = {}


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file (memoised per path, size and modification time)."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _DIGESTS:
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        _DIGESTS[key] = digest.hexdigest()
    return _DIGESTS[key]


def artifacts_fingerprint(record: BuildRecord | None) -> str | None:
    """A short digest of a build's artifact checksums (what a calibration was measured on)."""
    if record is None:
        return None
    digest = hashlib.sha256()
    for name in sorted(record.artifacts):
        digest.update(f"{name}:{record.artifacts[name].sha256}\n".encode())
    return digest.hexdigest()[:16]


# ---------------------------------------------------------------------------------------------
# Reading and writing

#: (path, size, mtime_ns) -> record: the registry reads the record on every verify.
_RECORDS: dict[tuple[str, int, int], BuildRecord] = {}


def load_build_record(folder: Path, manifest: SkillManifest | None = None) -> BuildRecord | None:
    """The folder's build record; None if the skill was never built here.

    A folder from before build records (its manifest held ``artifacts`` and ``metrics``) reads as
    a record without an inputs digest: it still loads and verifies, and the next ``skills build``
    rebuilds it where it has a ``train`` command.
    """
    path = folder / ARTIFACTS_DIRNAME / BUILD_RECORD_FILENAME
    try:
        stat = path.stat()
    except FileNotFoundError:
        return _legacy(folder, manifest)
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _RECORDS:
        try:
            _RECORDS[key] = BuildRecord.model_validate_json(path.read_bytes())
        except ValidationError as exc:
            raise ArtifactError(
                f"{path} is malformed ({exc.error_count()} errors); rebuild with `orchestrator "
                f"skills build {folder.name} --force`"
            ) from None
    return _RECORDS[key]


def _legacy(folder: Path, manifest: SkillManifest | None) -> BuildRecord | None:
    if manifest is None:
        try:
            manifest = load_manifest(folder)
        except SkillDefinitionError:
            return None
    legacy = manifest.legacy_build
    if not legacy:
        return None
    metrics = dict(legacy.get("metrics") or {})
    return BuildRecord(
        skill=f"{manifest.name}@{manifest.version}",
        artifacts=legacy.get("artifacts") or {},
        metrics=metrics,
        calibration=metrics.pop("calibration", None),
        calibration_after=metrics.pop("calibration_after", None) or {},
    )


def write_build_record(folder: Path, record: BuildRecord) -> None:
    """Write ``folder/artifacts/build.json`` atomically (a reader never sees half a record)."""
    path = folder / ARTIFACTS_DIRNAME / BUILD_RECORD_FILENAME
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(record.model_dump_json(indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)


def update_build_record(folder: Path, **changes: Any) -> BuildRecord:
    """Replace some fields of the folder's build record (a calibration, say); nothing else moves."""
    record = load_build_record(folder)
    if record is None:
        raise ArtifactError(
            f"skill folder {folder} has no build record; build it first with `orchestrator "
            f"skills build {folder.name}`"
        )
    updated = record.model_copy(update=changes)
    write_build_record(folder, updated)
    return updated


def verify_artifacts(folder: Path, manifest: SkillManifest, record: BuildRecord | None) -> None:
    """Raise ArtifactError unless the skill is built and every artifact, and every file of its
    code, matches its record."""
    name = manifest.name
    if record is None:
        if manifest.train is None:
            return  # nothing to build: a rule skill
        raise ArtifactError(
            f"skill {name!r} is not built here; build it with `orchestrator skills build {name}`"
        )
    artifacts_dir = folder / ARTIFACTS_DIRNAME
    for filename, expected in record.artifacts.items():
        path = artifacts_dir / filename
        if not path.is_file():
            raise ArtifactError(
                f"skill {name!r}: artifact {path} is missing; "
                f"build it with `orchestrator skills build {name}`"
            )
        actual = sha256_file(path)
        if actual != expected.sha256:
            raise ArtifactError(
                f"skill {name!r}: artifact {path} has sha256 {actual[:12]}…, its build record "
                f"says {expected.sha256[:12]}…; rebuild with `orchestrator skills build {name} "
                "--force` or restore the file"
            )
    _verify_code(folder, name, record)


def _verify_code(folder: Path, name: str, record: BuildRecord) -> None:
    """ArtifactError when a code file the build recorded is gone or changed."""
    root = folder.parent.parent
    if record.code:  # paths from the skill folder: the build ran in a staging folder beside it
        expected = {_from(root, folder / key): (folder / key, d) for key, d in record.code.items()}
    else:  # a record from before: inputs.code, from the project root
        legacy = dict(record.inputs.get("code") or {})
        expected = {key: (root / key, digest) for key, digest in legacy.items()}
    for relative, (path, digest) in expected.items():
        if not path.is_file():
            raise ArtifactError(
                f"skill {name!r}: its code file {relative} is missing under {root}; restore it, "
                f"or rebuild with `orchestrator skills build {name}`"
            )
        actual = sha256_file(path)
        if actual != digest:
            raise ArtifactError(
                f"skill {name!r}: its code {relative} changed since it was built (sha256 "
                f"{actual[:12]}…, built from {digest[:12]}…); rebuild with `orchestrator skills "
                f"build {name}` so the artifacts match the code, or restore the file"
            )


#: a generated skill's definition (``registry.kinds.CONFIG_FILE``), read by its module
_GENERATED_CONFIG = "skill.json"


def _from(root: Path, path: Path) -> str:
    """``path`` from ``root``, for messages."""
    return Path(os.path.relpath(path, root)).as_posix()


def _code_record(folder: Path, manifest: SkillManifest) -> dict[str, str]:
    """The sha256 of each of the skill's code files, keyed by its path from the skill folder
    (``skill.py``, ``../data.py``): a folder built in staging and then renamed keeps its keys."""
    root = folder.parent.parent
    return {
        Path(os.path.relpath(root / relative, folder)).as_posix(): sha256_file(root / relative)
        for relative in code_files(folder, manifest)
    }


def code_files(folder: Path, manifest: SkillManifest) -> list[str]:
    """The skill's code, as paths from the project root (the skills folder's parent): the
    manifest's ``inputs.code``, the entrypoint's module file, and ``skill.json`` when the folder
    holds one. A module found nowhere under the project (an installed package) is left out."""
    root = folder.parent.parent
    files = list(manifest.inputs.code)
    module = manifest.entrypoint.partition(":")[0]
    parts = module.split(".")
    for candidate in (
        root.joinpath(*parts[:-1], parts[-1] + ".py"),
        root.joinpath(*parts, "__init__.py"),
        folder / f"{parts[-1]}.py",  # a generated skill's module, imported from its folder
    ):
        if candidate.is_file():
            files.append(candidate.relative_to(root).as_posix())
            break
    if (folder / _GENERATED_CONFIG).is_file():
        files.append((folder / _GENERATED_CONFIG).relative_to(root).as_posix())
    return list(dict.fromkeys(files))


# ---------------------------------------------------------------------------------------------
# Training inputs


def build_seed(folder: Path) -> int:
    """The seed a training script uses: ``ORCHESTRATOR_TRAIN_SEED`` if set, else the manifest's."""
    return _seed(load_manifest(folder))


def _seed(manifest: SkillManifest) -> int:
    override = os.environ.get(SEED_ENV)
    if override is not None and override.strip():
        try:
            return int(override)
        except ValueError:
            raise SkillDefinitionError(f"{SEED_ENV}={override!r} is not an integer") from None
    return manifest.inputs.seed


def _input_file(root: Path, relative: str, manifest: SkillManifest, key: str) -> str:
    """The sha256 of an input file; SkillDefinitionError naming the manifest key if it is gone."""
    path = root / relative
    if not path.is_file():
        raise SkillDefinitionError(
            f"skill {manifest.name!r}: {relative} (inputs.{key} in its manifest) is missing "
            f"under {root}"
        )
    return sha256_file(path)


def resolve_inputs(folder: Path, manifest: SkillManifest) -> dict[str, Any]:
    """The training inputs as they are now: pinned data checked, code hashed, versions read.

    Raises SkillDefinitionError when a data file is missing or differs from its pin.
    """
    root = folder.parent.parent
    spec = manifest.inputs
    for relative, pinned in spec.data.items():
        actual = _input_file(root, relative, manifest, "data")
        if actual != pinned:
            raise SkillDefinitionError(
                f"skill {manifest.name!r}: data file {relative} has sha256 {actual}, its manifest "
                f"pins {pinned}; restore the file, or if the data changed on purpose put the new "
                "sha256 in inputs.data of manifest.yaml"
            )
    code = {relative: _input_file(root, relative, manifest, "code") for relative in spec.code}
    upstream = {
        name: artifacts_fingerprint(load_build_record(folder.parent / name)) for name in spec.skills
    }
    packages = {}
    for dist in spec.packages:
        try:
            packages[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            packages[dist] = "not installed"
    return {
        "definition": {"name": manifest.name, "version": manifest.version, "train": manifest.train},
        "data": dict(spec.data),
        "code": code,
        "skills": upstream,
        "seed": _seed(manifest),
        "packages": packages,
    }


def cpu_model() -> str:
    """The CPU's model name (what makes a build's bytes differ), from /proc/cpuinfo when there."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, str]:
    """Where and when a build ran: CPU model, cores, Python, UTC time."""
    return {
        "cpu": cpu_model(),
        "cores": str(os.cpu_count()),
        "python": platform.python_version(),
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def inputs_digest(inputs: dict[str, Any]) -> str:
    """A digest of resolved inputs: equal digests, same build."""
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]


def record_build(folder: Path, files: list[str], metrics: dict[str, Any]) -> BuildRecord:
    """Write the build record of freshly built artifacts: their sha256 and size, the metrics, and
    the inputs they were built from. Training scripts call this last.

    A calibration measured on byte-identical artifacts (a deterministic rebuild) stays; any other
    is dropped, and ``skills build`` recomputes it.
    """
    manifest = load_manifest(folder)
    artifacts_dir = folder / ARTIFACTS_DIRNAME
    for name in files:
        if not (artifacts_dir / name).is_file():
            raise ArtifactError(f"{artifacts_dir / name} was not written by the training run")
    inputs = resolve_inputs(folder, manifest)
    record = BuildRecord(
        skill=f"{manifest.name}@{manifest.version}",
        inputs=inputs,
        inputs_digest=inputs_digest(inputs),
        code=_code_record(folder, manifest),
        artifacts={
            name: ArtifactRecord(
                sha256=sha256_file(artifacts_dir / name),
                bytes=(artifacts_dir / name).stat().st_size,
            )
            for name in files
        },
        metrics=dict(metrics),
        built_on=machine(),
    )
    previous = load_build_record(folder, manifest)
    fingerprint = artifacts_fingerprint(record)
    if previous is not None:
        kept: dict[str, Any] = {}
        if (previous.calibration or {}).get("artifacts_fingerprint") == fingerprint:
            kept["calibration"] = previous.calibration
        kept["calibration_after"] = {
            key: value
            for key, value in previous.calibration_after.items()
            if value.get("artifacts_fingerprint") == fingerprint
        }
        record = record.model_copy(update=kept)
    write_build_record(folder, record)
    return record
