"""Build skill artifacts: run each skill folder's ``train`` command when its artifacts are missing
or do not match the manifest (or always, with ``force``)."""

from __future__ import annotations

import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import ArtifactError, SkillDefinitionError
from orchestrator.manifest import MANIFEST_FILENAME, load_manifest, verify_artifacts

__all__ = ["BuildOutcome", "build_skills"]


@dataclass(frozen=True)
class BuildOutcome:
    """What happened to one skill folder."""

    name: str
    status: str  # "built", "up_to_date", "no_artifacts"
    seconds: float = 0.0


def build_skills(
    root: Path, names: list[str] | None = None, *, force: bool = False
) -> list[BuildOutcome]:
    """Build the artifacts of every skill under ``root`` (or only ``names``) that needs it."""
    folders = {p.parent.name: p.parent for p in sorted(root.glob(f"*/{MANIFEST_FILENAME}"))}
    unknown = sorted(set(names or []) - set(folders))
    if unknown:
        raise SkillDefinitionError(
            f"no skill folder for {', '.join(unknown)} under {root}; have: {', '.join(folders)}"
        )
    return [_build_one(folders[n], force) for n in (names or list(folders))]


def _build_one(folder: Path, force: bool) -> BuildOutcome:
    manifest = load_manifest(folder)
    if not manifest.train:
        return BuildOutcome(manifest.name, "no_artifacts")
    if not force and (manifest.artifacts or manifest.metrics):
        # Built before: skip if every artifact still matches (rule skills have none to check).
        try:
            verify_artifacts(folder, manifest)
            return BuildOutcome(manifest.name, "up_to_date")
        except ArtifactError:
            pass
    argv = shlex.split(manifest.train)
    if argv and argv[0] in {"python", "python3"}:
        argv[0] = sys.executable  # the interpreter running us, i.e. the project's venv
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=folder.parent.parent, check=False)
    if done.returncode != 0:
        raise ArtifactError(
            f"building skill {manifest.name!r} failed: `{manifest.train}` exited {done.returncode}"
        )
    verify_artifacts(folder, load_manifest(folder))
    return BuildOutcome(manifest.name, "built", time.perf_counter() - started)
