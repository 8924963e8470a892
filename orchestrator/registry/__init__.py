"""The skill registry: skills, versions and aliases, manifests, build records, stored calibrations,
skill folders, the generic skill kinds. May import accounting, config, skill and errors only.
"""

from orchestrator.registry.registry import Registry, SkillVersion, parse_ref

__all__ = ["Registry", "SkillVersion", "parse_ref"]
