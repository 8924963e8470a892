"""Executors: where skill predictions run (``local`` in-process, ``ray`` on a cluster)."""

from __future__ import annotations

from orchestrator.errors import ConfigError
from orchestrator.executors.base import Executor
from orchestrator.executors.local import LocalExecutor
from orchestrator.executors.ray import RayExecutor

__all__ = ["Executor", "LocalExecutor", "RayExecutor", "make_executor"]


def make_executor(
    name: str,
    *,
    address: str | None = None,
    num_cpus: int | None = None,
    max_restarts: int | None = None,
) -> Executor:
    """The executor called ``name`` (``ray`` or ``local``)."""
    if name == "ray":
        if max_restarts is None:
            return RayExecutor(address=address, num_cpus=num_cpus)
        return RayExecutor(address=address, num_cpus=num_cpus, max_restarts=max_restarts)
    if name == "local":
        return LocalExecutor()
    raise ConfigError(f"unknown executor {name!r}; use 'ray' or 'local'")
