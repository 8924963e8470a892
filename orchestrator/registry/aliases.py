"""Release aliases: ``promote`` moves ``prod`` to the canary, ``rollback`` moves it back.

A version's aliases are the ``aliases:`` list of its folder's manifest; these moves edit those
lists and nothing else (no artifact, no build record). Each alias below is held by one version of
a skill at most:

- ``prod``: what ``name`` resolves to;
- ``canary``: a newer version under evaluation (``skills train`` and ``distill`` register one);
- ``previous``: the prod before the last promotion, where ``rollback`` goes back to.

A move is atomic: it runs under the skills folder's lock (``.aliases.lock``, an exclusive
``flock``: two promotions never interleave), each manifest is replaced whole (written aside, then
renamed), and the new lists are first written to a journal (``.aliases.journal``), so a move a
crash cut short is finished by the next one that takes the lock. The version that gets ``prod``
must be built and match its build record (artifacts and code): a canary that is not built is
refused, naming ``orchestrator skills build``.

Example::

    promote("tickets")["prod"]           # "tickets@1.1.0", the old prod is now "previous"
    rollback("tickets")["rolled_back"]   # "tickets@1.1.0": prod is tickets@1.0.0 again
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path
from typing import Any

from orchestrator.errors import ArtifactError, DistillError
from orchestrator.registry.build_record import load_build_record, verify_artifacts
from orchestrator.registry.folders import require_versions, resolve_skills_dir, set_aliases
from orchestrator.registry.manifest import SkillManifest

__all__ = [
    "CANARY",
    "PREVIOUS",
    "PROD",
    "alias_lock",
    "holders",
    "move_aliases",
    "move_prod",
    "promote",
    "rollback",
]

PROD = "prod"
CANARY = "canary"
#: The alias the previous prod keeps after a promotion: where ``rollback`` goes back to.
PREVIOUS = "previous"

Versions = Mapping[str, tuple[Path, SkillManifest]]

LOCK_FILENAME = ".aliases.lock"
JOURNAL_FILENAME = ".aliases.journal"


@contextlib.contextmanager
def alias_lock(skills_dir: Path) -> Iterator[None]:
    """Hold the skills folder's alias lock (other processes wait); a move a crash cut short is
    finished first."""
    import fcntl

    skills_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(skills_dir / LOCK_FILENAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        _finish_journal(skills_dir)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _finish_journal(skills_dir: Path) -> None:
    """Apply a journal left by an interrupted move (each manifest gets its listed aliases)."""
    journal = skills_dir / JOURNAL_FILENAME
    if not journal.is_file():
        return
    changes: dict[str, list[str]] = json.loads(journal.read_text(encoding="utf-8"))
    for folder, aliases in changes.items():
        if (Path(folder) / "manifest.yaml").is_file():
            set_aliases(Path(folder), aliases)
    journal.unlink()


def holders(versions: Versions, alias: str) -> list[str]:
    """The versions (in folder order) whose manifest lists ``alias``."""
    return [version for version, (_, manifest) in versions.items() if alias in manifest.aliases]


def move_aliases(
    versions: Versions, assign: Mapping[str, Collection[str]], *, journal: Path | None = None
) -> None:
    """Give each alias in ``assign`` to exactly the versions listed for it (none: nobody keeps
    it); aliases not named stay where they are.

    A version's new aliases come first in ``assign`` order, then the ones it kept. Only manifests
    whose list changes are rewritten; with ``journal`` (a file), the new lists are written there
    first and the file is removed once every manifest holds them (call under :func:`alias_lock`).
    """
    changes: dict[str, list[str]] = {}
    for version, (folder, manifest) in versions.items():
        kept = [alias for alias in manifest.aliases if alias not in assign]
        gained = [alias for alias, owners in assign.items() if version in owners]
        if [*gained, *kept] != list(manifest.aliases):
            changes[str(folder.resolve())] = [*gained, *kept]
    if not changes:
        return
    if journal is not None:
        _write_atomically(journal, json.dumps(changes, indent=1))
    for path, aliases in changes.items():
        set_aliases(Path(path), aliases)
    if journal is not None:
        journal.unlink()


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def move_prod(
    name: str,
    skills_dir: Path | str | None,
    source: str,
    demoted: str | None,
    *,
    missing: str,
    old_key: str,
) -> dict[str, Any]:
    """Move ``prod`` to the (last, in folder order) version holding alias ``source``, which then
    nobody holds; the versions that held prod get alias ``demoted``, which nobody else keeps.

    Returns the report: ``skill``, ``prod`` (``name@version``), ``old_key`` (the version that held
    prod, or None) and ``folder`` (the new prod's). Raises DistillError with ``missing`` when no
    version holds ``source``.
    """
    root = resolve_skills_dir(skills_dir)
    require_versions(root, name)  # an unknown skill fails before the lock is taken
    with alias_lock(root):
        versions = require_versions(root, name)  # read under the lock: what the move changes
        sources = holders(versions, source)
        if not sources:
            raise DistillError(missing)
        new = sources[-1]
        _require_built(name, new, *versions[new])
        old = [version for version in holders(versions, PROD) if version != new]
        assign: dict[str, list[str]] = {PROD: [new], source: []}
        if demoted is not None:
            assign[demoted] = old
        move_aliases(versions, assign, journal=root / JOURNAL_FILENAME)
    return {
        "skill": name,
        "prod": f"{name}@{new}",
        old_key: f"{name}@{old[0]}" if old else None,
        "folder": str(versions[new][0]),
    }


def _require_built(name: str, version: str, folder: Path, manifest: SkillManifest) -> None:
    """ArtifactError unless the version is built here and matches its build record."""
    record = load_build_record(folder, manifest)
    if record is None and manifest.train is not None:
        raise ArtifactError(
            f"{name}@{version} is not built, so it cannot take 'prod'; build it with "
            f"`orchestrator skills build {name}`, then try again"
        )
    try:
        verify_artifacts(folder, manifest, record)
    except ArtifactError as exc:
        raise ArtifactError(f"{name}@{version} cannot take 'prod': {exc}") from None


def promote(name: str, *, skills_dir: Path | str | None = None) -> dict[str, Any]:
    """Move ``prod`` to the canary version; the old prod keeps the alias ``previous``."""
    missing = (
        f"skill {name!r} has no canary version to promote; run `orchestrator distill {name}` "
        "(or train a new version) first"
    )
    report = move_prod(name, skills_dir, CANARY, PREVIOUS, missing=missing, old_key="previous")
    return _with_tiers(report, skills_dir, CANARY, PREVIOUS, "previous")


def rollback(name: str, *, skills_dir: Path | str | None = None) -> dict[str, Any]:
    """Move ``prod`` back to the version that held it before the last promotion."""
    missing = (
        f"skill {name!r} has nothing to roll back to: no version holds the {PREVIOUS!r} alias "
        "(it is set by `orchestrator skills promote` and used up by a rollback)"
    )
    report = move_prod(name, skills_dir, PREVIOUS, None, missing=missing, old_key="rolled_back")
    return _with_tiers(report, skills_dir, PREVIOUS, None, "rolled_back")


def _with_tiers(
    report: dict[str, Any],
    skills_dir: Path | str | None,
    source: str,
    demoted: str | None,
    old_key: str,
) -> dict[str, Any]:
    """Move the later tiers built on the skill with it: a tier whose manifest lists the skill
    among the skills it is built from, and whose version holding ``source`` is the one that just
    took prod (``skills train text-classifier`` gives ``NAME_minilm`` the version of ``NAME``),
    so the new prod pair keeps the chain calibration they were trained with."""
    from orchestrator.registry.manifest import load_manifest, skill_folders

    name, _, version = str(report["prod"]).partition("@")
    root = resolve_skills_dir(skills_dir)
    tiers: set[str] = set()
    for folder in skill_folders(root):
        manifest = load_manifest(folder)
        built_on = name in manifest.inputs.skills and manifest.version == version
        if built_on and source in manifest.aliases:
            tiers.add(manifest.name)
    moved = [
        move_prod(tier, root, source, demoted, missing="", old_key=old_key)
        for tier in sorted(tiers)
    ]
    if moved:
        report["tiers"] = moved
    return report
