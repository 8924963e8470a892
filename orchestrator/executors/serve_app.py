"""Skills as Ray Serve deployments: the replica classes and the application ``serve deploy`` runs.

- :class:`SkillReplica` hosts one skill version: the model loads in the constructor (a replaced
  replica reloads it), ``check_health`` fails while it is not loaded, ``predict`` takes a batch of
  columns. Calls smaller than ``max_batch_size`` items go through ``@serve.batch``: calls that
  arrive together are answered by one model call. Batching knobs come in ``user_config``
  (``reconfigure``), so they change without restarting replicas.
- :class:`SkillFamily` hosts every version of one skill name with ``@serve.multiplexed``: a
  replica loads the versions it is asked for (at most ``MAX_VERSIONS_PER_REPLICA``, least
  recently used out first).
- :func:`build_app` is the application builder the Serve config of ``orchestrator deploy config``
  names (``import_path: orchestrator.executors.serve_app:build_app``): one deployment per skill version,
  behind a small ingress (:class:`SkillRouter`) that answers handle calls and, when the operator
  turns Serve's proxy on, ``POST /skills/<name>@<version>`` with JSON columns — only with
  ``Authorization: Bearer $ORCHESTRATOR_SERVE_TOKEN`` (:mod:`orchestrator.executors.serve_auth`;
  without the variable the HTTP ingress refuses every request).

Run it::

    orchestrator deploy config -o serve_config.yaml
    serve deploy serve_config.yaml          # or: serve run serve_config.yaml

This module imports Ray Serve at the top: it is loaded by Serve (or lazily by the executor), never
by ``import orchestrator``.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Mapping
from typing import Any, cast

from pydantic import BaseModel, ConfigDict, Field
from ray import serve
from ray.serve import Application
from ray.serve.deployment import Deployment

from orchestrator.errors import OrchestratorError, SkillRunError, UnknownSkillError
from orchestrator.executors.serve_auth import TOKEN_ENV, ingress_refusal
from orchestrator.executors.serve_options import (
    MAX_VERSIONS_PER_REPLICA,
    ServeOptions,
    deployment_name,
    family_name,
    serve_options,
)
from orchestrator.registry.registry import Registry, SkillVersion
from orchestrator.skill import Batch, Predictions, Skill

__all__ = [
    "AppArgs",
    "SkillFamily",
    "SkillReplica",
    "SkillRouter",
    "build_app",
    "family_deployment",
    "skill_deployment",
]

#: Default request batching, replaced by ``user_config`` in ``reconfigure``.
_DEFAULTS = ServeOptions()


def _items(batch: Batch) -> int:
    return len(next(iter(batch.values()))) if batch else 0


def _items_in(requests: list[Batch]) -> int:
    """``@serve.batch`` counts items, not calls: a batch holds at most ``max_batch_size`` items."""
    return sum(_items(b) for b in requests)


def _merge(requests: list[Batch]) -> dict[str, list[Any]]:
    merged: dict[str, list[Any]] = {name: [] for name in requests[0]}
    for batch in requests:
        for name, column in batch.items():
            merged[name].extend(column.tolist() if hasattr(column, "tolist") else column)
    return merged


def _split(preds: Predictions, sizes: list[int]) -> list[Predictions]:
    """One Predictions per request, in order (a wrong length is left for the driver's check)."""
    parts = []
    start = 0
    for size in sizes:
        end = start + size
        outputs = {name: col[start:end] for name, col in preds.outputs.items()}
        errors = preds.errors[start:end] if preds.errors is not None else None
        parts.append(Predictions(outputs, preds.confidence[start:end], errors))
        start = end
    return parts


class SkillReplica:
    """A Serve replica hosting one skill version."""

    def __init__(self, version: SkillVersion) -> None:
        self.version = version
        self.skill: Skill = version.create()
        # Set-up here: a replica is only routed to once its model is loaded, and a replica Serve
        # starts in place of a dead one loads it again.
        self.skill.ensure_setup()
        self._max_batch_size = _DEFAULTS.max_batch_size

    def reconfigure(self, user_config: Mapping[str, Any]) -> None:
        """Apply request batching knobs (``max_batch_size`` items, ``batch_wait_timeout_s``)."""
        size = int(user_config.get("max_batch_size", _DEFAULTS.max_batch_size))
        wait = float(user_config.get("batch_wait_timeout_s", _DEFAULTS.batch_wait_timeout_s))
        # never more than the model takes at once (Skill.max_batch)
        self._max_batch_size = max(1, min(size, self.skill.max_batch or size))
        self._predict_batched.set_max_batch_size(self._max_batch_size)  # type: ignore[attr-defined]
        self._predict_batched.set_batch_wait_timeout_s(wait)  # type: ignore[attr-defined]

    def check_health(self) -> None:
        """Serve calls this every ``health_check_period_s``; raising marks the replica unhealthy."""
        if not self.skill._is_set_up:
            raise RuntimeError(f"{self.version.key}: model not loaded")

    async def predict(self, batch: Batch) -> Predictions:
        """Predictions for a batch of columns; small calls are batched with their neighbours."""
        if self._max_batch_size > 1 and _items(batch) < self._max_batch_size:
            result: Predictions = await self._predict_batched(batch)
            return result
        # A big call (a runtime chunk) is a batch already: straight to the model.
        return self.skill.predict(batch)

    @serve.batch(
        max_batch_size=_DEFAULTS.max_batch_size,
        batch_wait_timeout_s=_DEFAULTS.batch_wait_timeout_s,
        batch_size_fn=_items_in,
    )
    async def _predict_batched(self, requests: list[Batch]) -> list[Predictions]:
        # One model call for the calls that queued together. Items that fail alone come back in
        # Predictions.errors; a skill that raises for a whole batch fails every call in it.
        if len(requests) == 1:
            return [self.skill.predict(requests[0])]
        merged = self.skill.predict(_merge(requests))
        return _split(merged, [_items(b) for b in requests])

    def describe(self) -> dict[str, Any]:
        """What runs here (tests and operators): the version, its process, whether it is loaded."""
        import ray

        context = serve.get_replica_context()
        return {
            "key": self.version.key,
            "pid": os.getpid(),
            "loaded": self.skill._is_set_up,
            "replica": context.replica_id.unique_id,
            "actor_name": ray.get_runtime_context().get_actor_name(),
        }


class SkillFamily:
    """A Serve replica hosting the versions of one skill, chosen per call (multiplexed model id).

    Calls carry the version as ``multiplexed_model_id``; Serve routes them to a replica that has
    it loaded when there is one. A replica has no model before its first call.
    """

    def __init__(self, versions: Mapping[str, SkillVersion]) -> None:
        self.versions = dict(versions)
        #: what Serve's multiplex cache holds now (weak: its LRU eviction frees a version)
        self._loaded: weakref.WeakValueDictionary[str, Skill] = weakref.WeakValueDictionary()

    @serve.multiplexed(max_num_models_per_replica=MAX_VERSIONS_PER_REPLICA)
    async def _load(self, version: str) -> Skill:
        found = self.versions.get(version)
        if found is None:
            raise UnknownSkillError(f"this deployment hosts no version {version!r}")
        skill = found.create()
        skill.ensure_setup()
        self._loaded[version] = skill
        return skill

    def check_health(self) -> None:
        broken = [v for v, s in list(self._loaded.items()) if not s._is_set_up]
        if broken:
            raise RuntimeError(f"versions {broken} not loaded")

    async def predict(self, batch: Batch) -> Predictions:
        skill = await self._load(serve.get_multiplexed_model_id())
        return skill.predict(batch)

    def describe(self) -> dict[str, Any]:
        """The versions this replica has loaded, and its process."""
        return {
            "skill": next(iter(self.versions.values())).name,
            "pid": os.getpid(),
            "loaded": sorted(self._loaded),
            "replica": serve.get_replica_context().replica_id.unique_id,
        }


class SkillRouter:
    """The application's ingress: calls by skill key, over handles or HTTP."""

    def __init__(self, skills: Mapping[str, Any]) -> None:
        #: skill key -> handle of its deployment (Serve passes handles for bound deployments)
        self.skills = dict(skills)
        #: the HTTP ingress's shared secret (None: HTTP refused; handle calls are not affected)
        self._token = os.environ.get(TOKEN_ENV) or None

    async def predict(self, skill_key: str, batch: Batch) -> Predictions:
        handle = self.skills.get(skill_key)
        if handle is None:
            raise UnknownSkillError(
                f"no deployment for {skill_key} in this application; known: {sorted(self.skills)}"
            )
        preds: Predictions = await handle.predict.remote(dict(batch))
        return preds

    def keys(self) -> list[str]:
        return sorted(self.skills)

    async def __call__(self, request: Any) -> Any:
        """``POST <route_prefix>/<name>@<version>`` with ``{"text": [...]}`` -> predictions."""
        from starlette.responses import JSONResponse

        refusal = ingress_refusal(request.headers.get("authorization"), self._token)
        if refusal is not None:  # before the body is read
            headers = {"www-authenticate": "Bearer"}
            return JSONResponse(
                {"error": "unauthorized", "message": refusal}, status_code=401, headers=headers
            )
        key = request.url.path.rstrip("/").rsplit("/", 1)[-1]
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise SkillRunError("the body must be a JSON object of columns")
            preds = await self.predict(key, body)
        except OrchestratorError as exc:
            return JSONResponse({"error": exc.code, "message": str(exc)}, status_code=400)
        return JSONResponse(
            {
                "outputs": {k: _plain(v) for k, v in preds.outputs.items()},
                "confidence": _plain(preds.confidence),
                "errors": _plain(preds.errors) if preds.errors is not None else None,
            }
        )


def _plain(column: Any) -> list[Any]:
    return column.tolist() if hasattr(column, "tolist") else list(column)


def _deployment(cls: type) -> Deployment:
    # `serve.deployment` is annotated as returning a decorator; called on a class it is the
    # Deployment itself.
    return cast(Deployment, serve.deployment(cls))


def skill_deployment(version: SkillVersion, options: ServeOptions) -> Deployment:
    """The deployment of one skill version (bind it with the version)."""
    options_ = options.deployment_options(version)
    return _deployment(SkillReplica).options(name=deployment_name(version), **options_)


def family_deployment(version: SkillVersion, options: ServeOptions) -> Deployment:
    """The multiplexed deployment of every version of ``version``'s skill (bind it with them).

    Resources and replicas follow ``version`` (the newest); request batching is per version's
    call here, not across versions, so ``user_config`` is not used.
    """
    found = options.deployment_options(version)
    found.pop("user_config")
    return _deployment(SkillFamily).options(name=family_name(version.name), **found)


class AppArgs(BaseModel):
    """``args`` of the application in the Serve config (all optional)."""

    model_config = ConfigDict(extra="forbid")

    skills_dir: str | None = Field(
        default=None, description="skills folder (default: ORCHESTRATOR_SKILLS_DIR or skills/)"
    )
    skills: list[str] = Field(
        default_factory=list,
        description="skill versions to deploy (name@version or name@alias); empty: every "
        "version that has an alias",
    )


def build_app(args: AppArgs) -> Application:
    """The Serve application: one deployment per skill version, behind :class:`SkillRouter`.

    Deployment names are :func:`deployment_name` (``turn_intent--1_0_0``), so the entries of
    the Serve config's ``deployments:`` list override their options (replicas, autoscaling,
    resources, ``user_config``).
    """
    from orchestrator.config import Settings

    if isinstance(args, Mapping):  # called directly with a dict
        args = AppArgs.model_validate(args)
    registry = Registry.from_folder(args.skills_dir or Settings().skills_dir)
    versions = _chosen(registry, args.skills)
    if not versions:
        raise UnknownSkillError("no skill versions to deploy: give args.skills or alias some")
    defaults = _settings_defaults()
    bound = {v.key: skill_deployment(v, serve_options(v, defaults)).bind(v) for v in versions}
    router = _deployment(SkillRouter).options(
        name="skills", max_ongoing_requests=1000, ray_actor_options={"num_cpus": 0}
    )
    return router.bind(bound)


def _settings_defaults() -> ServeOptions:
    from orchestrator.config import Settings

    return ServeOptions.from_settings(Settings())


def _chosen(registry: Registry, refs: list[str]) -> list[SkillVersion]:
    if refs:
        return list({registry.resolve(ref).key: registry.resolve(ref) for ref in refs}.values())
    chosen: list[SkillVersion] = []
    for name in registry.names():
        aliased = set(registry.aliases(name).values())
        chosen.extend(v for v in registry.versions(name) if v.version in aliased)
    return chosen
