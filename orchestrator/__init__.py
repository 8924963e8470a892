"""orchestrator: a runtime where a big model plans and small models work.

Skills (small models, rules) run on Ray workers; graphs of steps over skills compile to LangGraph;
items a skill is unsure of are flagged for the big model; every job comes back with a ledger.

The public surface is this flat namespace. Names load on first use, so ``import orchestrator`` is
fast and needs no model, no Ray and no cluster.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# name -> module that defines it; loaded lazily by __getattr__.
_EXPORTS: dict[str, str] = {
    "ArtifactError": "orchestrator.errors",
    "Batch": "orchestrator.skill",
    "CompiledGraph": "orchestrator.graph.compiler",
    "ConfigError": "orchestrator.errors",
    "Escalation": "orchestrator.graph.spec",
    "Executor": "orchestrator.executors",
    "ExecutorError": "orchestrator.errors",
    "GraphSpec": "orchestrator.graph.spec",
    "GraphValidationError": "orchestrator.errors",
    "ItemResult": "orchestrator.accounting.result",
    "Job": "orchestrator.runtime.runtime",
    "JobResult": "orchestrator.accounting.result",
    "Ledger": "orchestrator.accounting.ledger",
    "LocalExecutor": "orchestrator.executors",
    "OnnxClassifierSkill": "orchestrator.skill",
    "OnnxSkill": "orchestrator.skill",
    "OrchestratorError": "orchestrator.errors",
    "Predictions": "orchestrator.skill",
    "RayExecutor": "orchestrator.executors",
    "Registry": "orchestrator.registry.registry",
    "RunError": "orchestrator.errors",
    "Runtime": "orchestrator.runtime.runtime",
    "Settings": "orchestrator.config",
    "SetupError": "orchestrator.errors",
    "Skill": "orchestrator.skill",
    "SkillRunError": "orchestrator.errors",
    "SkillVersion": "orchestrator.registry.registry",
    "SklearnSkill": "orchestrator.skill",
    "Step": "orchestrator.graph.spec",
    "UnknownSkillError": "orchestrator.errors",
    "compile_graph": "orchestrator.graph.compiler",
    "load_graph": "orchestrator.graph.spec",
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


# Modules that moved when the package was split into layers (docs/ARCHITECTURE.md): the old
# ``orchestrator.<name>`` paths keep importing, with a DeprecationWarning, so skill folders
# generated before (``from orchestrator.skill_kinds import ...``, ``python -m
# orchestrator.training_cli``) and deploy configs (``orchestrator.serve_app:build_app``) still load.
_MOVED: dict[str, str] = {
    "aggregate": "graph.aggregate",
    "api": "service.app",
    "audit": "llm.audit",
    "auth": "service.auth",
    "baseline": "graph.baseline",
    "batching": "executors.batching",
    "build_calibration": "learning.build_calibration",
    "build_record": "registry.build_record",
    "building": "learning.build",
    "calibration": "learning.calibrate",
    "cascade": "graph.cascade",
    "chain_calibration": "learning.chain_calibrate",
    "cli_errors": "cli.errors",
    "cluster_status": "cli.status",
    "compiler": "graph.compiler",
    "csv_table": "learning.datasets",
    "dashboard": "service.routes.dashboard",
    "deploy": "cli.deploy",
    "distill": "learning.distill",
    "embedded": "llm.embedded",
    "evaluation": "learning.evaluate",
    "examples": "store.examples",
    "intake": "graph.intake",
    "jobs": "service.jobs",
    "ledger": "accounting.ledger",
    "llm": "llm.gateway",
    "llm_providers": "llm.providers",
    "manifest": "registry.manifest",
    "metrics": "service.metrics",
    "middleware": "service.middleware",
    "payloads": "service.models",
    "pii": "llm.pii",
    "plan_cache": "planning.cache",
    "plan_schema": "planning.schema",
    "planner": "planning.planner",
    "prices": "config.prices",
    "privacy": "llm.privacy",
    "privacy_cli": "cli.redact",
    "problems": "service.problems",
    "report": "runtime.report",
    "report_cli": "cli.report",
    "result": "accounting.result",
    "review_api": "service.routes.reviews",
    "review_cli": "cli.review",
    "review_queue": "review.queue",
    "runtime": "runtime.runtime",
    "serve": "service.settings",
    "serve_app": "executors.serve_app",
    "skill_folders": "registry.folders",
    "skill_kinds": "registry.kinds",
    "skills_api": "service.routes.skills",
    "spec": "graph.spec",
    "sqlite_file": "store.sqlite_file",
    "state": "graph.state",
    "step_checkpoints": "store.checkpoints",
    "step_thresholds": "graph.thresholds",
    "store_postgres": "store.postgres",
    "tfidf_pipeline": "learning.tfidf_pipeline",
    "training": "learning.train",
    "training_cli": "cli.skills",
    "turns": "runtime.turns",
    "validation": "graph.validation",
}


class _MovedModule(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Resolves an old module path to the module it became (the same object, not a copy)."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        old = fullname.removeprefix("orchestrator.")
        if old == fullname or old not in _MOVED:
            return None
        real = importlib.util.find_spec("orchestrator." + _MOVED[old])
        return importlib.util.spec_from_loader(fullname, self, origin=real.origin if real else None)

    def create_module(self, spec: Any) -> Any:
        new = "orchestrator." + _MOVED[spec.name.removeprefix("orchestrator.")]
        warnings.warn(
            f"{spec.name} moved to {new}; import it from there", DeprecationWarning, stacklevel=2
        )
        module = importlib.import_module(new)
        # the import system overwrites the module's spec with this alias spec; exec_module puts
        # the real one back (kept on the alias spec, so concurrent imports share no state)
        spec.loader_state = module.__spec__
        return module

    def exec_module(self, module: Any) -> None:
        module.__spec__ = module.__spec__.loader_state

    def get_code(self, fullname: str) -> Any:
        """For ``python -m orchestrator.<old name>``: the new module's code."""
        new = "orchestrator." + _MOVED[fullname.removeprefix("orchestrator.")]
        spec = importlib.util.find_spec(new)
        return spec.loader.get_code(new)  # type: ignore[union-attr]


sys.meta_path.append(_MovedModule())


if TYPE_CHECKING:
    from orchestrator.accounting.ledger import Ledger
    from orchestrator.accounting.result import ItemResult, JobResult
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
    from orchestrator.graph.compiler import CompiledGraph, compile_graph
    from orchestrator.graph.spec import Escalation, GraphSpec, Step, load_graph
    from orchestrator.registry.registry import Registry, SkillVersion
    from orchestrator.runtime.runtime import Job, Runtime
    from orchestrator.skill import (
        Batch,
        OnnxClassifierSkill,
        OnnxSkill,
        Predictions,
        Skill,
        SklearnSkill,
        skill,
    )
