"""Build skills: run each skill folder's ``train`` command when its build is missing or stale,
then calibrate what the manifests and graphs need (:mod:`orchestrator.learning.build_calibration`).

A build is current when its record (``artifacts/build.json``) was made from the inputs the
manifest declares as they are now (data pinned by sha256, code, seed, package versions, the
skills it reads) and every artifact still has the recorded sha256. Nothing tracked is written:
the manifests say what to build, the build record what was built here.

Example::

    outcomes = build_skills(Path("skills"))            # what `orchestrator skills build` does
    build_skills(Path("skills"), ["turn_intent"], seed=3)   # a perturbed build of one skill
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from orchestrator.errors import ArtifactError, SkillDefinitionError
from orchestrator.registry.build_record import (
    SEED_ENV,
    inputs_digest,
    load_build_record,
    resolve_inputs,
    verify_artifacts,
)
from orchestrator.registry.manifest import (
    SkillManifest,
    load_manifest,
    skill_folders,
)

__all__ = ["BuildOutcome", "build_skills", "is_current"]


@dataclass(frozen=True)
class BuildOutcome:
    """What happened to one skill folder."""

    name: str
    #: "built", "up_to_date", "no_artifacts" (a rule skill), "prebuilt" (artifacts verified, no
    #: ``train`` command to rebuild them: a skill trained from a CSV outside the project)
    status: str
    seconds: float = 0.0
    #: Why it was (re)built, when it was.
    reason: str = ""
    #: Calibrations computed for it ("calibrated alone: threshold ...").
    calibrations: list[str] = field(default_factory=list)


def build_skills(
    root: Path,
    names: list[str] | None = None,
    *,
    force: bool = False,
    seed: int | None = None,
    graphs_dir: Path | None = None,
    calibrate: bool = True,
) -> list[BuildOutcome]:
    """Build every skill under ``root`` (or ``names`` and the skills they read) that needs it,
    then calibrate.

    ``seed`` overrides the manifests' seed for the named skills (a perturbed build; the next plain
    build replaces it). ``graphs_dir`` defaults to ``graphs/`` beside ``root``.
    """
    folders = {folder.name: folder for folder in skill_folders(root)}
    unknown = sorted(set(names or []) - set(folders))
    if unknown:
        raise SkillDefinitionError(
            f"no skill folder for {', '.join(unknown)} under {root}; have: {', '.join(folders)}"
        )
    manifests = {name: load_manifest(folder) for name, folder in folders.items()}
    chosen = set(names or folders)
    outcomes = []
    for name in _build_order(manifests, chosen):
        perturb = seed if seed is not None and name in chosen else None
        outcomes.append(_build_one(folders[name], manifests[name], force, perturb))
    if calibrate:
        graphs = graphs_dir if graphs_dir is not None else root.parent / "graphs"
        from orchestrator.learning.build_calibration import calibrate_for_build

        notes = calibrate_for_build(root, graphs)
        outcomes = [replace(o, calibrations=notes.get(o.name, [])) for o in outcomes]
    return outcomes


def _build_order(manifests: dict[str, SkillManifest], chosen: set[str]) -> list[str]:
    """``chosen`` and the skills they read (``inputs.skills``), each after what it reads."""
    order: list[str] = []
    visiting: list[str] = []

    def visit(name: str) -> None:
        if name in order:
            return
        if name in visiting:
            cycle = " -> ".join([*visiting[visiting.index(name) :], name])
            raise SkillDefinitionError(f"skills read each other's artifacts in a cycle: {cycle}")
        if name not in manifests:
            raise SkillDefinitionError(
                f"skill {visiting[-1]!r} lists {name!r} in inputs.skills, but there is no such "
                "skill folder"
            )
        visiting.append(name)
        for upstream in manifests[name].inputs.skills:
            visit(upstream)
        visiting.pop()
        order.append(name)

    for name in sorted(chosen):
        visit(name)
    return order


def is_current(folder: Path, manifest: SkillManifest) -> str | None:
    """None when the folder's build is current, else why it is not (for the build log)."""
    inputs = resolve_inputs(folder, manifest)  # raises when a data file differs from its pin
    record = load_build_record(folder, manifest)
    if record is None:
        return "not built yet"
    if record.inputs_digest is None:
        return "built before build records"
    if record.inputs_digest != inputs_digest(inputs):
        return _what_changed(record.inputs, inputs)
    try:
        verify_artifacts(folder, manifest, record)
    except ArtifactError as exc:
        return str(exc)
    return None


def _what_changed(before: dict[str, object], now: dict[str, object]) -> str:
    changed = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
    return f"inputs changed: {', '.join(changed)}"


def _build_one(
    folder: Path, manifest: SkillManifest, force: bool, seed: int | None
) -> BuildOutcome:
    if not manifest.train:
        record = load_build_record(folder, manifest)
        if record is None:
            return BuildOutcome(manifest.name, "no_artifacts")
        verify_artifacts(folder, manifest, record)  # a tampered file stops the build
        return BuildOutcome(manifest.name, "prebuilt")
    reason = "forced" if force else f"seed {seed}" if seed is not None else None
    if reason is None:
        reason = is_current(folder, manifest)  # also checks the data pins: a mismatch raises
        if reason is None:
            return BuildOutcome(manifest.name, "up_to_date")
    else:
        resolve_inputs(folder, manifest)  # the data pins hold even for a forced build
    argv = shlex.split(manifest.train)
    if argv and argv[0] in {"python", "python3"}:
        argv[0] = sys.executable  # the interpreter running us, i.e. the project's venv
    env = dict(os.environ)
    if seed is not None:
        env[SEED_ENV] = str(seed)
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=folder.parent.parent, check=False, env=env)
    if done.returncode != 0:
        raise ArtifactError(
            f"building skill {manifest.name!r} failed: `{manifest.train}` exited {done.returncode}"
        )
    record = load_build_record(folder, manifest)
    if record is None or record.inputs_digest is None:
        raise ArtifactError(
            f"building skill {manifest.name!r}: `{manifest.train}` finished without writing "
            "artifacts/build.json; the training script must end with build_record.record_build"
        )
    verify_artifacts(folder, manifest, record)
    return BuildOutcome(manifest.name, "built", time.perf_counter() - started, reason)
