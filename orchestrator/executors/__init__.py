"""Executors: where skill predictions run (``local`` in-process, ``ray`` actors, ``serve``).

May import the registry, the store and the layers below them; graph and the layers above use it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from orchestrator.errors import ConfigError
from orchestrator.executors.base import Executor
from orchestrator.executors.local import LocalExecutor
from orchestrator.executors.ray import RayExecutor
from orchestrator.executors.serve import ServeExecutor
from orchestrator.executors.serve_options import ServeOptions

if TYPE_CHECKING:
    from orchestrator.config import Settings

__all__ = ["Executor", "LocalExecutor", "RayExecutor", "ServeExecutor", "make_executor"]


def make_executor(
    name: str,
    *,
    address: str | None = None,
    num_cpus: int | None = None,
    max_restarts: int | None = None,
    settings: Settings | None = None,
) -> Executor:
    """The executor called ``name`` (``ray``, ``serve`` or ``local``).

    ``serve`` reads its options (``serve_*``) from ``settings``, else from the environment.
    """
    if name == "ray":
        if max_restarts is None:
            return RayExecutor(address=address, num_cpus=num_cpus)
        return RayExecutor(address=address, num_cpus=num_cpus, max_restarts=max_restarts)
    if name == "serve":
        from orchestrator.config import Settings

        settings = settings or Settings()
        return ServeExecutor(
            address=address,
            num_cpus=num_cpus,
            defaults=ServeOptions.from_settings(settings),
            app=settings.serve_app,
            multiplex=settings.serve_multiplex,
        )
    if name == "local":
        return LocalExecutor()
    raise ConfigError(f"unknown executor {name!r}; use 'ray', 'serve' or 'local'")
