"""Release aliases: ``promote`` moves ``prod`` to the canary, ``rollback`` moves it back.

A version's aliases are the ``aliases:`` list of its folder's manifest; these moves edit those
lists and nothing else (no artifact, no build record). Each alias below is held by one version of
a skill at most:

- ``prod``: what ``name`` resolves to;
- ``canary``: a newer version under evaluation (``skills train`` and ``distill`` register one);
- ``previous``: the prod before the last promotion, where ``rollback`` goes back to.

Example::

    promote("tickets")["prod"]           # "tickets@1.1.0", the old prod is now "previous"
    rollback("tickets")["rolled_back"]   # "tickets@1.1.0": prod is tickets@1.0.0 again
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from orchestrator.errors import DistillError
from orchestrator.registry.folders import require_versions, resolve_skills_dir, set_aliases
from orchestrator.registry.manifest import SkillManifest

__all__ = [
    "CANARY",
    "PREVIOUS",
    "PROD",
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


def holders(versions: Versions, alias: str) -> list[str]:
    """The versions (in folder order) whose manifest lists ``alias``."""
    return [version for version, (_, manifest) in versions.items() if alias in manifest.aliases]


def move_aliases(versions: Versions, assign: Mapping[str, Collection[str]]) -> None:
    """Give each alias in ``assign`` to exactly the versions listed for it (none: nobody keeps
    it); aliases not named stay where they are.

    A version's new aliases come first in ``assign`` order, then the ones it kept. Only manifests
    whose list changes are rewritten.
    """
    for version, (folder, manifest) in versions.items():
        kept = [alias for alias in manifest.aliases if alias not in assign]
        gained = [alias for alias, owners in assign.items() if version in owners]
        if [*gained, *kept] != list(manifest.aliases):
            set_aliases(folder, [*gained, *kept])


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
    versions = require_versions(resolve_skills_dir(skills_dir), name)
    sources = holders(versions, source)
    if not sources:
        raise DistillError(missing)
    new = sources[-1]
    old = [version for version in holders(versions, PROD) if version != new]
    assign: dict[str, list[str]] = {PROD: [new], source: []}
    if demoted is not None:
        assign[demoted] = old
    move_aliases(versions, assign)
    return {
        "skill": name,
        "prod": f"{name}@{new}",
        old_key: f"{name}@{old[0]}" if old else None,
        "folder": str(versions[new][0]),
    }


def promote(name: str, *, skills_dir: Path | str | None = None) -> dict[str, Any]:
    """Move ``prod`` to the canary version; the old prod keeps the alias ``previous``."""
    missing = (
        f"skill {name!r} has no canary version to promote; run `orchestrator distill {name}` "
        "(or train a new version) first"
    )
    return move_prod(name, skills_dir, CANARY, PREVIOUS, missing=missing, old_key="previous")


def rollback(name: str, *, skills_dir: Path | str | None = None) -> dict[str, Any]:
    """Move ``prod`` back to the version that held it before the last promotion."""
    missing = (
        f"skill {name!r} has nothing to roll back to: no version holds the {PREVIOUS!r} alias "
        "(it is set by `orchestrator skills promote` and used up by a rollback)"
    )
    return move_prod(name, skills_dir, PREVIOUS, None, missing=missing, old_key="rolled_back")
