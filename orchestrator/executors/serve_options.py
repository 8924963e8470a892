"""How one skill version is served on Ray Serve: its options and its deployment names.

Shared by the driver (:mod:`orchestrator.executors.serve`), the replicas
(:mod:`orchestrator.executors.serve_app`) and the deploy config (``orchestrator deploy config``).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from orchestrator.errors import ConfigError

if TYPE_CHECKING:
    from orchestrator.config import Settings
    from orchestrator.registry.registry import SkillVersion

__all__ = [
    "MAX_VERSIONS_PER_REPLICA",
    "ServeOptions",
    "deployment_name",
    "family_name",
    "serve_options",
]


#: Versions of one skill a multiplexed replica keeps loaded (prod, canary, previous, one more).
MAX_VERSIONS_PER_REPLICA = 4


def deployment_name(version: SkillVersion) -> str:
    """A Serve-safe deployment name for a skill version: ``turn_intent--1_0_0``."""
    return f"{version.name}--{re.sub(r'[^A-Za-z0-9_]', '_', version.version)}"


def family_name(name: str) -> str:
    """The multiplexed deployment hosting every version of skill ``name``."""
    return f"{name}--versions"


@dataclass(frozen=True, kw_only=True)
class ServeOptions:
    """How one skill version is served. Unset resources come from the skill class."""

    #: Replicas at start, and the floor when autoscaling.
    min_replicas: int = 1
    #: Above ``min_replicas``: Serve autoscales between the two on ongoing requests per replica.
    max_replicas: int | None = None
    #: Autoscaling target: ongoing requests per replica (a request is a batch of items).
    target_ongoing_requests: float = 2.0
    #: Requests a replica takes at once. Serve's default (5) queues batch calls badly: explicit.
    max_ongoing_requests: int = 100
    #: Items per request batch (``@serve.batch``): calls smaller than this that arrive together
    #: are answered with one model call. 1 turns request batching off.
    max_batch_size: int = 32
    #: How long a request batch waits to fill after its first call. 0: it takes the calls that
    #: queued while the model was busy (measured best on 2 cores: bench/README.md).
    batch_wait_timeout_s: float = 0.0
    #: CPUs per replica (None: the skill's ``num_cpus``).
    num_cpus: float | None = None
    #: Memory per replica in bytes (None: no reservation).
    memory: int | None = None
    #: GPUs per replica (only when the cluster has them).
    num_gpus: float = 0.0
    #: Seconds between health checks (a dead replica is replaced after at most about this long).
    health_check_period_s: float = 10.0

    @classmethod
    def from_settings(cls, settings: Settings) -> ServeOptions:
        """The options for a skill that declares none of its own (``ORCHESTRATOR_SERVE_*``)."""
        return cls(
            min_replicas=settings.serve_min_replicas,
            max_replicas=settings.serve_max_replicas,
            max_batch_size=settings.serve_max_batch_size,
            batch_wait_timeout_s=settings.serve_batch_wait_s,
        )

    def __post_init__(self) -> None:
        if self.min_replicas < 1:
            raise ConfigError(f"min_replicas must be >= 1, got {self.min_replicas}")
        if self.max_replicas is not None and self.max_replicas < self.min_replicas:
            raise ConfigError(
                f"max_replicas ({self.max_replicas}) is below min_replicas ({self.min_replicas})"
            )
        if self.max_batch_size < 1 or self.max_ongoing_requests < 1:
            raise ConfigError("max_batch_size and max_ongoing_requests must be >= 1")
        if self.batch_wait_timeout_s < 0 or self.health_check_period_s <= 0:
            raise ConfigError("batch_wait_timeout_s must be >= 0, health_check_period_s > 0")

    @property
    def autoscaling(self) -> bool:
        return self.max_replicas is not None and self.max_replicas > self.min_replicas

    def user_config(self) -> dict[str, Any]:
        """What a replica's ``reconfigure`` reads (changeable without restarting replicas)."""
        return {
            "max_batch_size": self.max_batch_size,
            "batch_wait_timeout_s": self.batch_wait_timeout_s,
        }

    def deployment_options(self, version: SkillVersion) -> dict[str, Any]:
        """Keyword arguments for ``Deployment.options`` (also the shape of the Serve config)."""
        actor: dict[str, Any] = {
            "num_cpus": float(
                self.num_cpus if self.num_cpus is not None else version.skill_cls.num_cpus
            )
        }
        if self.memory:
            actor["memory"] = int(self.memory)
        if self.num_gpus:
            actor["num_gpus"] = float(self.num_gpus)
        options: dict[str, Any] = {
            "max_ongoing_requests": self.max_ongoing_requests,
            "ray_actor_options": actor,
            "health_check_period_s": self.health_check_period_s,
            "user_config": self.user_config(),
        }
        if self.autoscaling:
            options["autoscaling_config"] = {
                "min_replicas": self.min_replicas,
                "initial_replicas": self.min_replicas,
                "max_replicas": self.max_replicas,
                "target_ongoing_requests": self.target_ongoing_requests,
            }
        else:
            options["num_replicas"] = self.min_replicas
        return options


def serve_options(version: SkillVersion, defaults: ServeOptions | None = None) -> ServeOptions:
    """The options for ``version``: ``defaults`` overridden by the skill's ``serve_options``."""
    defaults = defaults or ServeOptions()
    declared = getattr(version.skill_cls, "serve_options", None)
    if declared is None:
        return defaults
    if isinstance(declared, ServeOptions):
        return declared
    if not isinstance(declared, Mapping):
        raise ConfigError(f"{version.key}: serve_options must be a mapping of ServeOptions fields")
    known = {f.name for f in dataclasses.fields(ServeOptions)}
    unknown = sorted(set(declared) - known)
    if unknown:
        raise ConfigError(f"{version.key}: unknown serve_options {unknown}; known: {sorted(known)}")
    return dataclasses.replace(defaults, **declared)
