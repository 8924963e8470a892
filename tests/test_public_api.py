"""The public surface: a pinned, flat namespace that imports fast and loads nothing heavy."""

from __future__ import annotations

import subprocess
import sys

import orchestrator

EXPECTED = [
    "ArtifactError",
    "Batch",
    "CompiledGraph",
    "ConfigError",
    "Escalation",
    "Executor",
    "ExecutorError",
    "GraphSpec",
    "GraphValidationError",
    "ItemResult",
    "Job",
    "JobResult",
    "Ledger",
    "LocalExecutor",
    "OnnxClassifierSkill",
    "OnnxSkill",
    "OrchestratorError",
    "Predictions",
    "RayExecutor",
    "Registry",
    "RunError",
    "Runtime",
    "Settings",
    "SetupError",
    "Skill",
    "SkillRunError",
    "SkillVersion",
    "SklearnSkill",
    "Step",
    "UnknownSkillError",
    "compile_graph",
    "load_graph",
    "skill",
]


def test_exported_names_are_pinned():
    assert orchestrator.__all__ == EXPECTED
    for name in EXPECTED:
        assert getattr(orchestrator, name) is not None


def test_skill_is_the_decorator_even_after_the_module_is_imported():
    import orchestrator.skill

    module = sys.modules["orchestrator.skill"]
    assert callable(orchestrator.skill) and orchestrator.skill is module.skill


def test_import_is_light():
    code = (
        "import sys, orchestrator; "
        "heavy = [m for m in ('ray', 'onnxruntime', 'langgraph', 'sklearn') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_error_tree_has_two_families():
    from orchestrator import errors

    setup = {
        "ConfigError",
        "SkillDefinitionError",
        "ArtifactError",
        "UnknownSkillError",
        "GraphValidationError",
    }
    run = {
        "SkillRunError",
        "ExecutorError",
        "LLMUnavailable",
        "LLMRequestRejected",
        "LLMOutputInvalid",
        "BudgetExceeded",
    }
    for name in setup:
        assert issubclass(getattr(errors, name), errors.SetupError)
    for name in run:
        assert issubclass(getattr(errors, name), errors.RunError)
    assert not issubclass(errors.SetupError, errors.RunError)
