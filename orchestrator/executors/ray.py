"""The Ray executor: each skill version is a Ray actor that loads its model once and takes batches.

With no address configured it starts a local Ray in-process, bound to 127.0.0.1, Ray's token
auth on; with ``RAY_ADDRESS`` (or ``address=``) it joins an existing cluster. Predictions are pure
functions of their batch, so actor calls are retried on worker death (Ray's default for actor calls
is at-most-once) and a restarted actor reloads its model.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from orchestrator.errors import ConfigError, ExecutorError, OrchestratorError, SkillRunError
from orchestrator.executors.base import Executor
from orchestrator.registry.registry import SkillVersion
from orchestrator.skill import Batch, Predictions

__all__ = ["RayExecutor", "connect"]

#: Default restarts of a dead skill actor (-1: unlimited), and retries of a call in flight when
#: it died. Predictions are pure functions of their batch, so a retried call is safe.
DEFAULT_MAX_RESTARTS = 3
_MAX_TASK_RETRIES = 3
#: where Ray logs "Token authentication is enabled for this Ray cluster..." (pinned with Ray)
_RAY_AUTH_LOGGER = "ray._private.authentication.authentication_token_setup"


def connect(address: str | None = None, num_cpus: int | None = None) -> None:
    """Join the Ray cluster at ``address`` / ``RAY_ADDRESS``, or start a local one on loopback."""
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address is None:
        # Ray binds the machine's external address on every interface by default; this switch
        # keeps a local cluster on 127.0.0.1. Ray's processes read it from the environment, the
        # driver reads it once at `import ray`, so set both (the constant is pinned with Ray).
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray

    if ray.is_initialized():
        return
    if address is None:
        from ray._private import ray_constants

        if os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] == "0":
            ray_constants.ENABLE_RAY_CLUSTER = False
        # Local workers see what this process sees: skills defined in the caller's own modules
        # import on the workers too. (A remote cluster gets code through runtime_env instead.)
        paths = _import_paths()
        _WORKER_PATHS[:] = paths
        # Token auth stays on (Ray's default): loopback ports are open to every user of the
        # machine, the token keeps the others out. With RAY_AUTH_MODE unset Ray turns it on and
        # logs a notice on every start; we hide only that notice, for this call. (Setting
        # RAY_AUTH_MODE=token here instead is not enough: Ray reads its config at `import ray`,
        # so its child processes would ask for a token this driver does not send.) A
        # RAY_AUTH_MODE set by the user is left to Ray, and so is everything in cluster mode.
        ray_default_auth = "RAY_AUTH_MODE" not in os.environ
        token_file = os.path.join(os.path.expanduser("~"), ".ray", "auth_token")
        token_file_existed = os.path.exists(token_file)
        notice = logging.getLogger(_RAY_AUTH_LOGGER)
        level = notice.level
        if ray_default_auth:
            notice.setLevel(logging.ERROR)
        try:
            ray.init(
                # "local" always starts our own cluster; a bare init() would attach to any
                # cluster already running on the machine (and refuse num_cpus there).
                address="local",
                num_cpus=num_cpus or os.cpu_count() or 1,
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
                runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(paths)}},
            )
        finally:
            notice.setLevel(level)
        if ray_default_auth and not token_file_existed and os.path.exists(token_file):
            # Ray writes the token with the process umask (often world-readable): owner only.
            os.chmod(token_file, 0o600)
    else:
        ray.init(address=address, log_to_driver=False, configure_logging=False)


#: the import paths local workers got when this process started its cluster (empty: not local)
_WORKER_PATHS: list[str] = []


def _import_paths() -> list[str]:
    return [p for p in sys.path if p and os.path.isdir(p)]


def _actor_env() -> dict[str, Any] | None:
    """A runtime_env for skill actors when this process can import more than its local workers
    could at start: a skills folder loaded since (a skill trained, or distilled into a canary,
    while the service runs) is importable from its own folder, which the registry put on
    sys.path. None: the cluster's own environment will do."""
    if not _WORKER_PATHS:
        return None
    paths = _import_paths()
    if set(paths) <= set(_WORKER_PATHS):
        return None
    return {"env_vars": {"PYTHONPATH": os.pathsep.join(paths)}}


class _SkillWorker:
    """Actor body: hosts one skill instance."""

    def __init__(self, version: SkillVersion) -> None:
        self.version = version
        self.skill = version.create()

    def __repr__(self) -> str:
        # Ray records this as the actor's repr_name: `orchestrator status` shows the skill key
        return f"_SkillWorker({self.version.key})"

    def ready(self) -> str:
        # Set-up runs here rather than in __init__ so its errors come back as plain exceptions.
        self.skill.ensure_setup()
        return self.version.key

    def predict(self, batch: Batch) -> Predictions:
        self.skill.ensure_setup()  # after a restart the first call reloads the model
        return self.skill.predict(batch)


class RayExecutor(Executor):
    """Skill workers as Ray actors: ``replicas`` per skill version (1 by default), called in turn.

    For autoscaling, request batching and deployments shared by drivers, see the ``serve``
    executor.
    """

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        num_cpus: int | None = None,
        scheduling_strategy: str | None = None,
        max_restarts: int = DEFAULT_MAX_RESTARTS,
        replicas: int = 1,
    ) -> None:
        if max_restarts < -1:
            raise ConfigError(f"max_restarts must be -1 (unlimited) or >= 0, got {max_restarts}")
        if replicas < 1:
            raise ConfigError(f"replicas must be >= 1, got {replicas}")
        #: actors per skill version; calls go to them round-robin
        self.replicas = replicas
        self.max_restarts = max_restarts
        self.address = address
        self.num_cpus = num_cpus
        #: where Ray places skill actors: None (Ray's default) or "SPREAD" (across nodes)
        self.scheduling_strategy = scheduling_strategy
        #: the first actor of each skill version (what `orchestrator status` and tools look at)
        self._actors: dict[str, Any] = {}
        #: every actor of each skill version, and the next one to call
        self._pools: dict[str, list[Any]] = {}
        self._turn: dict[str, int] = {}

    async def start(self, skills: Sequence[SkillVersion]) -> None:
        import ray

        try:
            connect(self.address, self.num_cpus)
        except Exception as exc:  # Ray raises many kinds here; all mean "no cluster"
            raise ExecutorError(f"could not start or reach Ray: {exc}") from exc
        actor_cls: Any = ray.remote(_SkillWorker)
        env = _actor_env()
        new: dict[str, list[Any]] = {}
        for version in skills:
            if version.key in self._actors or version.key in new:
                continue
            options = actor_cls.options(
                num_cpus=version.skill_cls.num_cpus,
                max_restarts=self.max_restarts,
                max_task_retries=_MAX_TASK_RETRIES,
                scheduling_strategy=self.scheduling_strategy or "DEFAULT",
                name=None,
                **({"runtime_env": env} if env else {}),
            )
            new[version.key] = [options.remote(version) for _ in range(self.replicas)]
        for key, pool in new.items():
            try:
                for actor in pool:
                    await actor.ready.remote()
            except ray.exceptions.RayTaskError as exc:
                for actor in pool:
                    ray.kill(actor)
                raise _unwrap(exc, f"skill {key} failed to set up on its worker") from None
            except ray.exceptions.RayActorError as exc:
                raise ExecutorError(f"worker for skill {key} could not start: {exc}") from None
            self._actors[key] = pool[0]
            self._pools[key] = pool
            self._turn[key] = 0

    async def predict(self, skill_key: str, batch: Batch) -> Predictions:
        import ray

        pool = self._pools.get(skill_key)
        if pool is None:
            raise ExecutorError(f"no worker for {skill_key}; start() the executor with it first")
        turn = self._turn[skill_key]
        self._turn[skill_key] = turn + 1
        actor = pool[turn % len(pool)]
        try:
            preds: Predictions = await actor.predict.remote(dict(batch))
            return preds
        except ray.exceptions.RayTaskError as exc:
            raise _unwrap(exc, f"skill {skill_key} failed") from None
        except ray.exceptions.RayActorError as exc:
            raise ExecutorError(
                f"worker for {skill_key} died and could not recover: {exc}"
            ) from exc

    async def close(self) -> None:
        import ray

        for pool in self._pools.values():
            for actor in pool:
                ray.kill(actor)
        self._actors.clear()
        self._pools.clear()
        self._turn.clear()


def _unwrap(exc: Any, context: str) -> OrchestratorError:
    """Turn a RayTaskError back into our error tree, keeping the original message."""
    cause = exc.as_instanceof_cause() if hasattr(exc, "as_instanceof_cause") else exc
    original = getattr(exc, "cause", None)
    if isinstance(original, OrchestratorError):
        return original
    detail = f"{type(original).__name__}: {original}" if original is not None else str(cause)
    return SkillRunError(f"{context}: {detail}")
