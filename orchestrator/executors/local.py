"""The in-process executor: skills run in this Python process. For unit tests and notebooks."""

from __future__ import annotations

from collections.abc import Sequence

from orchestrator.errors import ExecutorError, OrchestratorError, SkillRunError
from orchestrator.executors.base import Executor
from orchestrator.registry.registry import SkillVersion
from orchestrator.skill import Batch, Predictions, Skill

__all__ = ["LocalExecutor"]


class LocalExecutor(Executor):
    """One set-up skill instance per version, called directly from the event loop."""

    name = "local"

    def __init__(self) -> None:
        self._skills: dict[str, Skill] = {}

    async def start(self, skills: Sequence[SkillVersion]) -> None:
        for version in skills:
            if version.key in self._skills:
                continue
            instance = version.create()
            try:
                instance.ensure_setup()
            except OrchestratorError:
                raise
            except Exception as exc:
                raise ExecutorError(f"skill {version.key} failed to set up: {exc}") from exc
            self._skills[version.key] = instance

    async def predict(self, skill_key: str, batch: Batch) -> Predictions:
        instance = self._skills.get(skill_key)
        if instance is None:
            raise ExecutorError(f"no worker for {skill_key}; start() the executor with it first")
        try:
            return instance.predict(batch)
        except OrchestratorError:
            raise
        except Exception as exc:
            raise SkillRunError(f"skill {skill_key} failed: {type(exc).__name__}: {exc}") from exc

    async def close(self) -> None:
        self._skills.clear()
