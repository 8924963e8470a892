"""The Serve executor: each skill version is a Ray Serve deployment, called through handles.

Where the actor executor (``ray``) gives each driver one actor per skill version, this one deploys
each skill version as a Serve deployment: replicas that load the model in their constructor (a
replaced replica reloads it), a health check that fails while the model is not loaded, request
batching (``@serve.batch``) for small calls, autoscaling between ``min_replicas`` and
``max_replicas``, and resource requests per skill. Calls go through a ``DeploymentHandle`` from the
driver's event loop.

Two ways to get the deployments:

- **deploy** (default): the executor deploys each skill version as a Serve application of its own,
  named like its deployment (:func:`deployment_name`), so adding a skill never redeploys another.
  Applications it deployed are deleted on :meth:`ServeExecutor.close` (unless
  ``leave_running``); one that is already running (another driver's) is used as it is and left
  alone.
- **attach** (``app="orchestrator"``, ``ORCHESTRATOR_SERVE_APP``): the deployments of an
  application an operator deployed from ``orchestrator deploy config`` with ``serve deploy``; the
  executor only calls them.

``multiplex=True`` hosts the versions of one skill name in one deployment (``@serve.multiplexed``:
each replica loads the versions it is asked for, least recently used out first) instead of one
deployment per version.

How one skill version is served comes from :class:`ServeOptions`: the executor's defaults
(``ORCHESTRATOR_SERVE_*`` settings), overridden by a mapping the skill class may declare::

    class TurnIntent(OnnxClassifierSkill):
        serve_options = {"min_replicas": 1, "max_replicas": 4, "max_batch_size": 64}

Serve's HTTP proxy is never started by this executor (``proxy_location: Disabled``); an operator's
Serve config keeps it on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from orchestrator.errors import ConfigError, ExecutorError, SkillRunError
from orchestrator.executors.base import Executor
from orchestrator.executors.ray import _unwrap, connect
from orchestrator.executors.serve_options import (
    ServeOptions,
    deployment_name,
    family_name,
    serve_options,
)
from orchestrator.registry.registry import SkillVersion
from orchestrator.skill import Batch, Predictions

__all__ = ["ServeExecutor"]


@dataclass
class _Target:
    """Where calls for one skill version go."""

    app: str
    deployment: str
    handle: Any
    #: multiplexed model id (the version) when the deployment hosts several versions
    model_id: str | None = None


class ServeExecutor(Executor):
    """Skill workers as Ray Serve deployments, called through deployment handles."""

    name = "serve"

    def __init__(
        self,
        address: str | None = None,
        num_cpus: int | None = None,
        *,
        defaults: ServeOptions | None = None,
        app: str | None = None,
        multiplex: bool = False,
        deploy_timeout_s: float = 120.0,
        call_timeout_s: float = 300.0,
        call_attempts: int = 4,
        leave_running: bool = False,
    ) -> None:
        if app is not None and multiplex:
            raise ConfigError("multiplex applies to deployments this executor makes, not app=")
        if call_attempts < 1:
            raise ConfigError(f"call_attempts must be >= 1, got {call_attempts}")
        self.address = address
        self.num_cpus = num_cpus
        self.defaults = defaults or ServeOptions()
        #: attach to this application's deployments instead of deploying
        self.app = app
        self.multiplex = multiplex
        self.deploy_timeout_s = deploy_timeout_s
        self.call_timeout_s = call_timeout_s
        self.call_attempts = call_attempts
        #: close() leaves the applications it deployed running: the next executor on this
        #: cluster (the next `orchestrator run`, a test) finds them warm and reuses them
        self.leave_running = leave_running
        self._targets: dict[str, _Target] = {}
        #: applications this executor deployed (deleted on close)
        self._owned: set[str] = set()
        #: multiplexed families: skill name -> versions deployed in it
        self._families: dict[str, dict[str, SkillVersion]] = {}

    async def start(self, skills: Sequence[SkillVersion]) -> None:
        new = list({v.key: v for v in skills if v.key not in self._targets}.values())
        if not new:
            return
        await asyncio.to_thread(self._connect)
        if self.app is not None:
            await asyncio.to_thread(self._attach, new)
        elif self.multiplex:
            await asyncio.to_thread(self._deploy_families, new)
        else:
            await asyncio.to_thread(self._deploy_versions, new)

    async def predict(self, skill_key: str, batch: Batch) -> Predictions:
        from ray import exceptions as ray_errors
        from ray.serve import exceptions as serve_errors
        from tenacity import (
            AsyncRetrying,
            retry_if_exception_type,
            stop_after_attempt,
            wait_exponential,
        )

        target = self._targets.get(skill_key)
        if target is None:
            raise ExecutorError(f"no worker for {skill_key}; start() the executor with it first")
        handle = target.handle
        if target.model_id is not None:
            handle = handle.options(multiplexed_model_id=target.model_id)
        # Predictions are pure functions of their batch: a call whose replica died is sent again
        # (the router picks a live replica, or waits for the replacement).
        retried = (ray_errors.RayActorError, serve_errors.DeploymentUnavailableError)
        try:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception_type(retried),
                stop=stop_after_attempt(self.call_attempts),
                wait=wait_exponential(multiplier=0.2, max=2.0),
                reraise=True,
            ):
                with attempt:
                    response = handle.predict.remote(dict(batch))
                    try:
                        preds: Predictions = await asyncio.wait_for(
                            _awaited(response), self.call_timeout_s
                        )
                    except TimeoutError:
                        response.cancel()
                        raise ExecutorError(
                            f"{skill_key}: no answer from its Serve deployment within "
                            f"{self.call_timeout_s:.0f} s"
                        ) from None
                    return preds
        except ray_errors.RayTaskError as exc:
            raise _unwrap(exc, f"skill {skill_key} failed") from None
        except retried as exc:
            raise ExecutorError(f"Serve replicas for {skill_key} kept failing: {exc}") from exc
        raise AssertionError("unreachable: tenacity returns or raises")  # pragma: no cover

    async def close(self) -> None:
        owned = sorted(self._owned)
        self._targets.clear()
        self._owned.clear()
        self._families.clear()
        if owned and not self.leave_running:
            await asyncio.to_thread(_delete_apps, owned, self.deploy_timeout_s)

    # --- setting up deployments ---------------------------------------------------------------

    def _connect(self) -> None:
        from ray import serve

        try:
            connect(self.address, self.num_cpus)
            if self.app is None:
                # No HTTP proxy: calls come through handles. (If Serve already runs on the
                # cluster, its settings stay.) The host keeps a later proxy on loopback anyway.
                serve.start(proxy_location="Disabled", http_options={"host": "127.0.0.1"})
        except Exception as exc:  # Ray raises many kinds here; all mean "no Serve"
            raise ExecutorError(f"could not start or reach Ray Serve: {exc}") from exc

    def _attach(self, versions: list[SkillVersion]) -> None:
        from ray import serve

        assert self.app is not None
        app = serve.status().applications.get(self.app)
        if app is None:
            raise ExecutorError(
                f"no Serve application {self.app!r} on the cluster; deploy it with "
                "`orchestrator deploy config` and `serve deploy`, or unset ORCHESTRATOR_SERVE_APP"
            )
        for version in versions:
            name = deployment_name(version)
            if name not in app.deployments:
                raise ExecutorError(
                    f"Serve application {self.app!r} has no deployment {name} for "
                    f"{version.key}; add it to the Serve config (`orchestrator deploy config "
                    "--all-versions`) and redeploy"
                )
            handle = serve.get_deployment_handle(name, self.app)
            self._targets[version.key] = _Target(self.app, name, handle)

    def _deploy_versions(self, versions: list[SkillVersion]) -> None:
        from ray import serve

        from orchestrator.executors.serve_app import skill_deployment

        names = [deployment_name(v) for v in versions]
        # One already up (another driver's, or left running) is used as it is.
        reused = _usable_apps(names, self.deploy_timeout_s)
        targets = []
        for version, name in zip(versions, names, strict=True):
            if name not in reused:
                options = serve_options(version, self.defaults)
                app = skill_deployment(version, options).bind(version)
                targets.append(serve.RunTarget(target=app, name=name, route_prefix=None))
        self._run(targets, reused=sorted(reused))
        for version in versions:
            name = deployment_name(version)
            handle = serve.get_deployment_handle(name, name)
            self._targets[version.key] = _Target(name, name, handle)

    def _deploy_families(self, versions: list[SkillVersion]) -> None:
        from ray import serve

        from orchestrator.executors.serve_app import family_deployment

        changed: dict[str, dict[str, SkillVersion]] = {}
        for version in versions:
            family = changed.setdefault(version.name, dict(self._families.get(version.name, {})))
            family[version.version] = version
        targets = []
        for name, family in changed.items():
            newest = list(family.values())[-1]
            options = serve_options(newest, self.defaults)
            app = family_deployment(newest, options).bind(family)
            targets.append(serve.RunTarget(target=app, name=family_name(name), route_prefix=None))
        self._run(targets)
        for name, family in changed.items():
            self._families[name] = family
            handle = serve.get_deployment_handle(family_name(name), family_name(name))
            for version in family.values():
                self._targets[version.key] = _Target(
                    family_name(name), family_name(name), handle, model_id=version.version
                )

    def _run(self, targets: list[Any], reused: Sequence[str] = ()) -> None:
        """Deploy ``targets`` and wait (bounded) until they and ``reused`` run.

        A target that fails is deleted; a reused application is never touched.
        """
        from ray import serve

        names = [t.name for t in targets]
        if targets:
            try:
                serve.run_many(
                    targets, wait_for_ingress_deployment_creation=False, blocking=False,
                    wait_for_applications_running=False,
                )  # fmt: skip
            except Exception as exc:  # Serve raises many kinds on a bad deploy
                raise ExecutorError(f"Serve refused to deploy {names}: {exc}") from exc
            self._owned.update(names)
        failures = _wait_running([*names, *reused], self.deploy_timeout_s)
        if failures:
            from orchestrator.telemetry.logs import get_logger

            failed = sorted(failures)
            for name in failed:
                get_logger(__name__).error("serve_deploy_failed", app=name, message=failures[name])
            mine = [name for name in failed if name in self._owned]
            _delete_apps(mine, self.deploy_timeout_s)
            self._owned.difference_update(mine)
            detail = "; ".join(
                f"{name}: {_last_line(why)}" for name, why in sorted(failures.items())
            )
            raise SkillRunError(
                f"skill deployment failed to start on its replicas: {detail} "
                "(the Serve controller log has the traceback)"
            )


def _usable_apps(names: list[str], timeout_s: float) -> set[str]:
    """Which of ``names`` already run (or are deploying); waits out ones being deleted."""
    from ray import serve
    from ray.serve.schema import ApplicationStatus

    deadline = time.monotonic() + timeout_s
    while True:
        apps = {n: a for n, a in serve.status().applications.items() if n in names}
        deleting = [n for n, a in apps.items() if a.status == ApplicationStatus.DELETING]
        if not deleting or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    live = (ApplicationStatus.RUNNING, ApplicationStatus.DEPLOYING)
    return {n for n, a in apps.items() if a.status in live}


async def _awaited(response: Any) -> Any:
    return await response


def _wait_running(names: list[str], timeout_s: float) -> dict[str, str]:
    """Poll until every app runs; returns ``{app: why}`` for those that failed or timed out."""
    from ray import serve
    from ray.serve.schema import ApplicationStatus

    deadline = time.monotonic() + timeout_s
    pending = set(names)
    failures: dict[str, str] = {}
    while pending and time.monotonic() < deadline:
        apps = serve.status().applications
        for name in sorted(pending):
            app = apps.get(name)
            if app is None:
                continue
            if app.status == ApplicationStatus.RUNNING:
                pending.discard(name)
            elif app.status in (ApplicationStatus.DEPLOY_FAILED, ApplicationStatus.UNHEALTHY):
                failures[name] = _why(app)
                pending.discard(name)
        if pending:
            time.sleep(0.1)
    for name in pending:
        failures[name] = f"not running after {timeout_s:.0f} s (not enough CPU or memory?)"
    return failures


def _why(app: Any) -> str:
    """The most telling message of a failed application (its deployments' first)."""
    for deployment in app.deployments.values():
        if deployment.message:
            return str(deployment.message)
    return str(app.message or app.status)


def _last_line(message: str) -> str:
    """A replica's traceback ends with the exception itself: ``RuntimeError: model corrupt``."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    return lines[-1] if lines else message


def _delete_apps(names: list[str], timeout_s: float) -> None:
    """Delete applications and wait (bounded) until they are gone."""
    from ray import serve

    for name in names:
        serve.delete(name, _blocking=False)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not set(names) & set(serve.status().applications):
            return
        time.sleep(0.1)
