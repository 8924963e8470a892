"""One encoder for every skill that needs it: per process, or per Ray cluster.

:func:`shared_encoder` is what an embedding skill calls in its ``setup``:

- in a plain process (the local executor, ``skills train``, ``skills eval``) every skill gets the
  same :class:`~orchestrator.embedding.encoder.OnnxEncoder`, one per encoder artifact;
- inside a Ray actor (the Ray executor's skill workers, Serve replicas) every skill worker of the
  cluster talks to one detached actor per encoder artifact, named after its sha256, created by
  the first worker that asks (``get_if_exists``): N embedding skills hold one model, not N, and
  an item two skills embed is computed once (the actor's cache).

``ORCHESTRATOR_SHARED_ENCODER=process`` keeps the encoder in each process even under Ray (e.g. a
GPU per worker); ``=ray`` forces the actor.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from orchestrator.embedding.artifact import EncoderArtifact

__all__ = ["Embedder", "actor_name", "pinned_encoder", "shared_encoder"]

_NAMESPACE = "orchestrator"
_LOCK = threading.Lock()
_LOCAL: dict[str, Any] = {}


class Embedder(Protocol):
    """What an embedding skill needs from the encoder."""

    artifact: EncoderArtifact

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


def actor_name(artifact: EncoderArtifact) -> str:
    """The Ray actor hosting ``artifact``: one per encoder sha256 in the cluster."""
    return f"encoder-{artifact.name}-{artifact.sha256[:16]}"


def shared_encoder(folder: Path | str) -> Embedder:
    """The encoder built in ``folder``, shared (see the module docstring)."""
    artifact = EncoderArtifact.load(folder)
    mode = os.environ.get("ORCHESTRATOR_SHARED_ENCODER", "")
    if mode == "ray" or (mode != "process" and _in_ray_actor()):
        return _ActorEncoder(artifact)
    with _LOCK:
        encoder = _LOCAL.get(artifact.sha256)
        if encoder is None:
            from orchestrator.embedding.encoder import OnnxEncoder

            artifact.verify()  # hashed once per process, not per skill
            encoder = _LOCAL[artifact.sha256] = OnnxEncoder(artifact)
        return encoder


def pinned_encoder(
    artifacts_dir: Path | str, name: str, sha256: str, skill: str, fix: str = ""
) -> Embedder:
    """The shared encoder ``name`` for the skill whose artifacts are in ``artifacts_dir``,
    refused (SetupError, ``fix`` as the advice) unless it is the one the skill pinned.

    Encoders live beside the skills (``skills/_encoders``, or ``ORCHESTRATOR_ENCODERS_DIR``):
    ``artifacts/`` sits in the skill's folder, which sits in the skills folder.
    """
    from orchestrator.embedding.artifact import encoder_folder

    skills_dir = Path(artifacts_dir).parent.parent
    encoder = shared_encoder(encoder_folder(skills_dir, name))
    encoder.artifact.require(sha256, skill, fix)
    return encoder


def _in_ray_actor() -> bool:
    import sys

    if "ray" not in sys.modules:
        return False
    import ray

    if not ray.is_initialized():
        return False
    try:
        return ray.get_runtime_context().get_actor_id() is not None
    except Exception:  # noqa: BLE001 - no runtime context: not a worker
        return False


class EncoderHost:
    """The body of the Ray actor: one :class:`OnnxEncoder` and its cache."""

    def __init__(self, folder: str) -> None:
        from orchestrator.embedding.encoder import OnnxEncoder

        artifact = EncoderArtifact.load(folder, verify=True)
        self.encoder = OnnxEncoder(artifact)

    def embed(self, texts: list[str]) -> np.ndarray:
        return self.encoder.embed(texts)

    def stats(self) -> dict[str, int]:
        return self.encoder.stats()


class _ActorEncoder:
    """A handle on the cluster's encoder actor with the encoder's interface."""

    def __init__(self, artifact: EncoderArtifact) -> None:
        import ray

        self.artifact = artifact
        # num_cpus=0: the actor must never wait for a CPU the skill workers asking it hold.
        self.actor: Any = (
            ray.remote(EncoderHost)
            .options(
                name=actor_name(artifact),
                namespace=_NAMESPACE,
                get_if_exists=True,
                lifetime="detached",
                num_cpus=0,
                max_restarts=3,
                max_task_retries=3,
            )
            .remote(str(artifact.folder))
        )

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        import ray

        vectors: np.ndarray = ray.get(self.actor.embed.remote(list(texts)))
        return vectors

    def stats(self) -> dict[str, int]:
        import ray

        result: dict[str, int] = ray.get(self.actor.stats.remote())
        return result
