"""Skill folders written by training: version planning, aliases, the generated module, staging and
install (the folder is the registration)."""

from __future__ import annotations

import csv
import difflib
import hashlib
import importlib.util
import json
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.errors import DatasetError, SkillDefinitionError, UnknownSkillError
from orchestrator.registry.kinds import (
    CONFIG_FILE,
    class_name,
    field_name,
)
from orchestrator.registry.manifest import (
    ARTIFACTS_DIRNAME,
    CalibrationSpec,
    SkillManifest,
    TrainingInputs,
    load_manifest,
    skill_folders,
    write_manifest,
)

if TYPE_CHECKING:
    pass

__all__ = [
    "FolderTarget",
    "existing_versions",
    "file_digest",
    "csv_inputs",
    "install_folder",
    "module_for",
    "output_field_name",
    "plan_target",
    "require_versions",
    "resolve_skills_dir",
    "set_aliases",
    "shown_labels",
    "staging_folder",
    "train_command_line",
    "write_folder",
    "write_val_csv",
]

#: a trained skill's name and version, as folder names and registry keys
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")
VERSION_PATTERN = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+_-]*$")


# ---------------------------------------------------------------------------------------------
# Skill folders: versions, aliases, entrypoint


@dataclass(frozen=True)
class FolderTarget:
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
    for folder in skill_folders(skills_dir):
        try:
            manifest = load_manifest(folder)
        except SkillDefinitionError:
            continue
        if manifest.name == name:
            found[manifest.version] = (folder, manifest)
    return found


def require_versions(skills_dir: Path, name: str) -> dict[str, tuple[Path, SkillManifest]]:
    """:func:`existing_versions`, or UnknownSkillError listing the skills there (and a close
    match) when no folder holds ``name``."""
    found = existing_versions(skills_dir, name)
    if found:
        return found
    names = sorted(
        {folder.name for folder in skill_folders(skills_dir)} if skills_dir.is_dir() else set()
    )
    close = difflib.get_close_matches(name, names, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise UnknownSkillError(
        f"no skill {name!r} in {skills_dir}{hint} Skills there: {', '.join(names) or 'none'}"
    )


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


def plan_target(skills_dir: Path, name: str, version: str | None, force: bool) -> FolderTarget:
    if not NAME_PATTERN.match(name):
        raise DatasetError(f"skill name {name!r} must be lowercase snake_case, e.g. 'tickets'")
    existing = existing_versions(skills_dir, name)
    version = version or _next_version(list(existing))
    if not VERSION_PATTERN.match(version):
        raise DatasetError(f"version {version!r} is not a version string (e.g. 1.0.0)")
    if version in existing:
        folder, manifest = existing[version]
        if not force:
            raise DatasetError(
                f"skill {name}@{version} already exists in {folder}; give another --version "
                "(a new version becomes the canary) or --force to overwrite it"
            )
        return FolderTarget(folder, version, list(manifest.aliases), [])
    folder = skills_dir / name
    if folder.exists():
        folder = skills_dir / f"{name}_v{re.sub(r'[^0-9A-Za-z]+', '_', version)}"
    if folder.exists():
        raise DatasetError(f"{folder} exists and does not hold {name}@{version}; move it away")
    has_prod = any("prod" in m.aliases for _, m in existing.values())
    if not has_prod:
        return FolderTarget(folder, version, ["prod"], [])
    demote = [f for f, m in existing.values() if "canary" in m.aliases]
    return FolderTarget(folder, version, ["canary"], demote)


def module_for(skills_dir: Path, folder_name: str, config_text: str) -> tuple[str, str]:
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

from orchestrator.registry.kinds import load_skill_class

{cls} = load_skill_class(Path(__file__).with_name("{config}"), __name__, "{cls}")
'''


def write_folder(
    stage: Path,
    *,
    skills_dir: Path,
    target: FolderTarget,
    config: dict[str, Any],
    train_command: str | None,
    inputs: TrainingInputs | None = None,
    calibration: CalibrationSpec | None = None,
) -> str:
    """Write skill.json, the module, __init__.py and the manifest (definition, training inputs,
    calibration settings); returns the entrypoint."""
    config_text = json.dumps(config, indent=2, ensure_ascii=False) + "\n"
    module, filename = module_for(skills_dir, target.folder.name, config_text)
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
        inputs=inputs or TrainingInputs(),
        calibration=calibration,
    )
    write_manifest(stage, manifest)
    return f"{module}:{cls}"


def set_aliases(folder: Path, aliases: list[str]) -> None:
    write_manifest(folder, load_manifest(folder).model_copy(update={"aliases": aliases}))


def train_command_line(
    kind: str, args: dict[str, Any], csv_path: Path, skills_dir: Path
) -> str | None:
    """The manifest's ``train`` command (run from the skills folder's parent by ``skills build``),
    when the CSV lies under that parent: a fresh clone can then rebuild the artifacts."""
    import shlex

    root = skills_dir.resolve().parent
    try:
        relative = csv_path.resolve().relative_to(root)
    except ValueError:
        return None
    parts = ["python", "-m", "orchestrator.cli.skills", kind, "--csv", str(relative)]
    for key, value in args.items():
        if isinstance(value, bool):  # a switch: --key / --no-key
            parts.append(f"--{'' if value else 'no-'}{key.replace('_', '-')}")
            continue
        for one in value if isinstance(value, list) else [value]:  # a list: a repeated option
            if one is not None:
                parts += [f"--{key.replace('_', '-')}", str(one)]
    parts += ["--skills-dir", skills_dir.resolve().name, "--force"]
    return " ".join(shlex.quote(p) for p in parts)


def install_folder(stage: Path, target: FolderTarget) -> None:
    """Move the staged folder into place (replacing the old one under --force)."""
    if target.folder.exists():
        shutil.rmtree(target.folder)
    stage.rename(target.folder)
    for other in target.demote_canary:
        set_aliases(other, [a for a in load_manifest(other).aliases if a != "canary"])


def staging_folder(skills_dir: Path, folder_name: str) -> Path:
    skills_dir.mkdir(parents=True, exist_ok=True)
    stage = skills_dir / f".{folder_name}.training"
    if stage.exists():
        shutil.rmtree(stage)
    (stage / ARTIFACTS_DIRNAME).mkdir(parents=True)
    return stage


def resolve_skills_dir(skills_dir: Path | str | None) -> Path:
    if skills_dir is not None:
        return Path(skills_dir)
    from orchestrator.config import Settings

    return Settings().skills_dir


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def csv_inputs(csv_path: Path, skills_dir: Path) -> TrainingInputs:
    """The training inputs of a skill trained from a CSV: the CSV pinned by sha256, by its path
    from the project root when it lies under it (else by its absolute path)."""
    from orchestrator.registry.build_record import sha256_file

    root = skills_dir.resolve().parent
    try:
        shown = str(csv_path.resolve().relative_to(root))
    except ValueError:
        shown = str(csv_path.resolve())
    return TrainingInputs(data={shown: sha256_file(csv_path)})


def write_val_csv(path: Path, columns: list[str], rows: list[list[str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(rows)


def output_field_name(label_column: str, inputs: Sequence[str]) -> str:
    from orchestrator.skill import RESERVED_OUTPUTS

    candidate = field_name(label_column)
    if candidate in RESERVED_OUTPUTS or candidate in inputs:
        return "label"
    return candidate


def shown_labels(labels: Sequence[str], n: int = 6) -> str:
    return ", ".join(labels[:n]) + (", ..." if len(labels) > n else "")
