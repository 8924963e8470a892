"""The skill registry: every skill a graph may name, with its versions and aliases.

The registry is the allow-list: a graph (hand-written or planned by the big model) can only name
skills registered here, so a plan can never invent a tool. Skills come in two ways:

- from code: ``registry.register(MySkill, aliases=["prod"])`` (also usable as a class decorator);
- from a folder: ``skills/<name>/manifest.yaml`` names the class, version and aliases (see
  :mod:`orchestrator.registry.manifest`), and ``artifacts/build.json`` the built files with their sha256
  (:mod:`orchestrator.registry.build_record`); :meth:`Registry.discover` loads them all.

A reference is ``name`` (the ``prod`` alias, else the newest version), ``name@alias`` or
``name@version``.

Example::

    registry = Registry.from_folder("skills")
    version = registry.resolve("turn_intent@prod")
    version.key  # 'turn_intent@1.0.0'
"""

from __future__ import annotations

import difflib
import importlib
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from orchestrator.errors import ArtifactError, SkillDefinitionError, UnknownSkillError
from orchestrator.registry.build_record import BuildRecord, load_build_record, verify_artifacts
from orchestrator.registry.manifest import (
    ARTIFACTS_DIRNAME,
    MANIFEST_FILENAME,
    SkillManifest,
    load_manifest,
    skill_folders,
)
from orchestrator.skill import Skill

__all__ = ["Registry", "SkillVersion", "parse_ref"]

S = TypeVar("S", bound=type[Skill])


@dataclass(frozen=True)
class SkillVersion:
    """One registered version of a skill: its class, and its folder and manifest if it has them."""

    skill_cls: type[Skill]
    folder: Path | None = None
    manifest: SkillManifest | None = None

    @property
    def name(self) -> str:
        return self.skill_cls.name

    @property
    def version(self) -> str:
        return self.skill_cls.version

    @property
    def key(self) -> str:
        """``name@version``: the exact identity workers, ledgers and plan caches use."""
        return f"{self.name}@{self.version}"

    @property
    def artifacts_dir(self) -> Path | None:
        return self.folder / ARTIFACTS_DIRNAME if self.folder is not None else None

    @property
    def build(self) -> BuildRecord | None:
        """The build record beside the artifacts (read afresh when the file changes), or None."""
        if self.folder is None:
            return None
        return load_build_record(self.folder, self.manifest)

    def create(self) -> Skill:
        """A fresh, not yet set-up instance (workers call ``ensure_setup()`` on it)."""
        return self.skill_cls(artifacts_dir=self.artifacts_dir)

    def verify(self) -> None:
        """Raise ArtifactError unless the version is built and every artifact matches its build
        record's checksum."""
        if self.manifest is not None and self.folder is not None:
            verify_artifacts(self.folder, self.manifest, self.build)

    def problem(self) -> str | None:
        """Why this version cannot run right now (missing or altered artifact), or None."""
        try:
            self.verify()
        except ArtifactError as exc:
            return str(exc)
        return None

    def card(self) -> dict[str, Any]:
        """What the planner and ``skills list`` show: contract, cost and measured metrics."""
        cls = self.skill_cls
        return {
            "name": cls.name,
            "version": cls.version,
            "description": cls.description,
            "backend": cls.backend,
            "relative_cost": cls.relative_cost,
            "input_schema": cls.Input.model_json_schema(),
            "output_schema": cls.Output.model_json_schema(),
            "metrics": dict(self.build.metrics) if self.build else {},
        }


def parse_ref(ref: str) -> tuple[str, str | None]:
    """Split ``name@selector`` into ``(name, selector)``; the selector is an alias or a version."""
    name, _, selector = ref.partition("@")
    return name.strip(), (selector.strip() or None)


@dataclass
class Registry:
    """Registered skills by name and version, plus aliases per name."""

    _versions: dict[str, dict[str, SkillVersion]] = field(default_factory=dict)
    _aliases: dict[str, dict[str, str]] = field(default_factory=dict)

    @classmethod
    def from_folder(cls, root: Path | str) -> Registry:
        """A registry holding every skill folder under ``root``."""
        registry = cls()
        registry.discover(root)
        return registry

    def register(
        self,
        skill_cls: S,
        *,
        aliases: Iterable[str] = (),
        folder: Path | None = None,
        manifest: SkillManifest | None = None,
    ) -> S:
        """Add one skill class (returns it, so it also works as a class decorator).

        Registering the same name and version twice with a different class is an error: a version
        names one implementation.
        """
        if not (isinstance(skill_cls, type) and issubclass(skill_cls, Skill)):
            raise SkillDefinitionError(f"{skill_cls!r} is not a Skill subclass")
        skill_cls.check_definition()
        versions = self._versions.setdefault(skill_cls.name, {})
        existing = versions.get(skill_cls.version)
        if existing is not None and existing.skill_cls is not skill_cls:
            raise SkillDefinitionError(
                f"skill {skill_cls.name!r} version {skill_cls.version} is already registered by "
                f"{existing.skill_cls.__module__}.{existing.skill_cls.__qualname__}; bump the version"
            )
        versions[skill_cls.version] = SkillVersion(skill_cls, folder, manifest)
        for alias in aliases:
            self.set_alias(skill_cls.name, alias, skill_cls.version)
        return skill_cls

    def load_folder(self, folder: Path | str) -> SkillVersion:
        """Register the skill in ``folder`` (``manifest.yaml`` + the class it names)."""
        folder = Path(folder).resolve()
        manifest = load_manifest(folder)
        skill_cls = _import_entrypoint(manifest.entrypoint, folder)
        if (skill_cls.name, skill_cls.version) != (manifest.name, manifest.version):
            raise SkillDefinitionError(
                f"{folder / MANIFEST_FILENAME} says {manifest.name}@{manifest.version} but "
                f"{manifest.entrypoint} is {skill_cls.name}@{skill_cls.version}; make them agree"
            )
        self.register(skill_cls, aliases=manifest.aliases, folder=folder, manifest=manifest)
        return self._versions[skill_cls.name][skill_cls.version]

    def discover(self, root: Path | str) -> list[SkillVersion]:
        """Register every ``root/<name>/`` that holds a manifest, in name order."""
        root = Path(root)
        if not root.is_dir():
            raise SkillDefinitionError(f"skills folder {root} does not exist")
        folders = skill_folders(root)
        return [self.load_folder(folder) for folder in folders]

    def set_alias(self, name: str, alias: str, version: str) -> None:
        """Point ``name@alias`` at ``version`` (e.g. promote a canary to prod)."""
        if version not in self._versions.get(name, {}):
            raise UnknownSkillError(
                f"cannot alias {name}@{alias} to version {version}: no such version registered"
            )
        if not alias or alias[0].isdigit():
            raise SkillDefinitionError(f"alias {alias!r} must start with a letter (e.g. prod)")
        self._aliases.setdefault(name, {})[alias] = version

    def aliases(self, name: str) -> dict[str, str]:
        """Alias -> version for one skill name."""
        return dict(self._aliases.get(name, {}))

    def resolve(self, ref: str) -> SkillVersion:
        """The version a reference means; UnknownSkillError says what is registered instead."""
        name, selector = parse_ref(ref)
        versions = self._versions.get(name)
        if not versions:
            raise UnknownSkillError(f"unknown skill {name!r}{_suggest(name, self._versions)}")
        if selector is None:
            version = self._aliases.get(name, {}).get("prod") or max(versions, key=_version_key)
        elif selector in versions:
            version = selector
        elif selector in self._aliases.get(name, {}):
            version = self._aliases[name][selector]
        else:
            known = sorted(versions) + sorted(self._aliases.get(name, {}))
            raise UnknownSkillError(
                f"skill {name!r} has no version or alias {selector!r}; known: {', '.join(known)}"
            )
        return versions[version]

    def versions(self, name: str) -> list[SkillVersion]:
        """Every registered version of ``name``, oldest first."""
        found = self._versions.get(name, {})
        return [found[v] for v in sorted(found, key=_version_key)]

    def names(self) -> list[str]:
        return sorted(self._versions)

    def __iter__(self) -> Iterator[SkillVersion]:
        for name in self.names():
            yield from self.versions(name)

    def __contains__(self, ref: object) -> bool:
        if not isinstance(ref, str):
            return False
        try:
            self.resolve(ref)
        except UnknownSkillError:
            return False
        return True


def _suggest(name: str, known: Iterable[str]) -> str:
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    listing = ", ".join(known) if known else "none"
    return f"{hint} Registered skills: {listing}"


def _version_key(version: str) -> tuple[Any, ...]:
    from packaging.version import InvalidVersion, Version

    try:
        return (1, Version(version))
    except InvalidVersion:
        return (0, version)


def _import_entrypoint(entrypoint: str, folder: Path) -> type[Skill]:
    module_name, _, attr = entrypoint.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError:
        # A skills folder outside the installed package: make its root importable, the way
        # `skills/<name>/skill.py` maps to `skills.<name>.skill`.
        root_path = folder
        for _ in range(module_name.count(".")):
            root_path = root_path.parent
        root = str(root_path)
        if root in sys.path:
            raise
        sys.path.insert(0, root)
        module = importlib.import_module(module_name)
    obj: Any = module
    for part in attr.split("."):
        obj = getattr(obj, part, None)
    if not (isinstance(obj, type) and issubclass(obj, Skill)):
        raise SkillDefinitionError(f"entrypoint {entrypoint} in {folder} is not a Skill subclass")
    return obj
