"""orchestrator: a runtime where a big model plans and small models work.

Skills (small models, rules) run on Ray workers; graphs of steps over skills compile to LangGraph;
items a skill is unsure of are flagged for the big model; every job comes back with a ledger.

The public surface is this flat namespace. Names load on first use, so ``import orchestrator`` is
fast and needs no model, no Ray and no cluster.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# name -> module that defines it; loaded lazily by __getattr__.
_EXPORTS: dict[str, str] = {
    "ArtifactError": "orchestrator.errors",
    "Batch": "orchestrator.skill",
    "CompiledGraph": "orchestrator.compiler",
    "ConfigError": "orchestrator.errors",
    "Escalation": "orchestrator.spec",
    "Executor": "orchestrator.executors",
    "ExecutorError": "orchestrator.errors",
    "GraphSpec": "orchestrator.spec",
    "GraphValidationError": "orchestrator.errors",
    "ItemResult": "orchestrator.result",
    "Job": "orchestrator.runtime",
    "JobResult": "orchestrator.result",
    "Ledger": "orchestrator.ledger",
    "LocalExecutor": "orchestrator.executors",
    "OnnxClassifierSkill": "orchestrator.skill",
    "OnnxSkill": "orchestrator.skill",
    "OrchestratorError": "orchestrator.errors",
    "Predictions": "orchestrator.skill",
    "RayExecutor": "orchestrator.executors",
    "Registry": "orchestrator.registry",
    "RunError": "orchestrator.errors",
    "Runtime": "orchestrator.runtime",
    "Settings": "orchestrator.config",
    "SetupError": "orchestrator.errors",
    "Skill": "orchestrator.skill",
    "SkillRunError": "orchestrator.errors",
    "SkillVersion": "orchestrator.registry",
    "SklearnSkill": "orchestrator.skill",
    "Step": "orchestrator.spec",
    "UnknownSkillError": "orchestrator.errors",
    "compile_graph": "orchestrator.compiler",
    "load_graph": "orchestrator.spec",
}

__all__ = sorted([*_EXPORTS, "skill"])

# The decorator `skill` shares its name with the module `orchestrator.skill`. Importing the module
# here (it needs only pydantic) and binding the decorator afterwards keeps `orchestrator.skill`
# the decorator even after other code imports the submodule.
from orchestrator.skill import skill  # noqa: E402


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'orchestrator' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)


if TYPE_CHECKING:
    from orchestrator.compiler import CompiledGraph, compile_graph
    from orchestrator.config import Settings
    from orchestrator.errors import (
        ArtifactError,
        ConfigError,
        ExecutorError,
        GraphValidationError,
        OrchestratorError,
        RunError,
        SetupError,
        SkillRunError,
        UnknownSkillError,
    )
    from orchestrator.executors import Executor, LocalExecutor, RayExecutor
    from orchestrator.ledger import Ledger
    from orchestrator.registry import Registry, SkillVersion
    from orchestrator.result import ItemResult, JobResult
    from orchestrator.runtime import Job, Runtime
    from orchestrator.skill import (
        Batch,
        OnnxClassifierSkill,
        OnnxSkill,
        Predictions,
        Skill,
        SklearnSkill,
        skill,
    )
    from orchestrator.spec import Escalation, GraphSpec, Step, load_graph
