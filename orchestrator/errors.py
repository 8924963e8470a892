"""One error tree for the whole runtime.

Every error the runtime raises on purpose derives from :class:`OrchestratorError`, in two families:

    OrchestratorError
    ├── SetupError                 the job never started: fix the graph, the skill or the config
    │   ├── ConfigError            a setting is missing or malformed
    │   ├── SkillDefinitionError   a skill class or manifest breaks the skill contract
    │   ├── ArtifactError          a skill's model file is missing or does not match its checksum
    │   ├── UnknownSkillError      a graph names a skill (or alias, or version) that is not registered
    │   └── GraphValidationError   a graph spec is malformed: carries one issue per bad step
    └── RunError                   the job started and something failed while it ran
        ├── SkillRunError          a skill raised, or returned outputs that break its contract
        └── ExecutorError          a worker could not be started or reached

Setup errors are raised before any worker starts, so a bad graph costs nothing. Every message says
what to do about it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ArtifactError",
    "ConfigError",
    "ExecutorError",
    "GraphIssue",
    "GraphValidationError",
    "OrchestratorError",
    "RunError",
    "SetupError",
    "SkillDefinitionError",
    "SkillRunError",
    "UnknownSkillError",
]


class OrchestratorError(Exception):
    """Base of every error the runtime raises on purpose."""

    #: A stable, machine-readable code (APIs and JSON summaries carry it).
    code: str = "orchestrator_error"


class SetupError(OrchestratorError):
    """The job could not start: something in the graph, a skill or the configuration is wrong."""

    code = "setup_error"


class ConfigError(SetupError):
    """A setting is missing or malformed."""

    code = "config_error"


class SkillDefinitionError(SetupError):
    """A skill class or a skill manifest breaks the skill contract."""

    code = "skill_definition_error"


class ArtifactError(SetupError):
    """A skill's artifact file is missing or its checksum does not match the manifest."""

    code = "artifact_error"


class UnknownSkillError(SetupError):
    """A reference names a skill, alias or version that is not in the registry."""

    code = "unknown_skill"


@dataclass(frozen=True)
class GraphIssue:
    """One problem found in a graph spec, located at a step (or at the graph's inputs/outputs)."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


class GraphValidationError(SetupError):
    """A graph spec failed validation; ``issues`` lists every problem found, each naming its step."""

    code = "graph_invalid"

    def __init__(self, graph: str, issues: list[GraphIssue]) -> None:
        self.graph = graph
        self.issues = list(issues)
        lines = "\n".join(f"  - {issue}" for issue in self.issues)
        super().__init__(f"graph {graph!r} is invalid ({len(self.issues)} problem(s)):\n{lines}")


class RunError(OrchestratorError):
    """The job started and something failed while it ran."""

    code = "run_error"


class SkillRunError(RunError):
    """A skill raised while predicting, or returned outputs that break its contract."""

    code = "skill_failed"


class ExecutorError(RunError):
    """A worker could not be started or reached."""

    code = "executor_error"
