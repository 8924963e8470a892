"""A small, fast job service for the hardening tests: the toy skills on the local executor.

No Ray, no trained model: the toy graph (``tests/toy_skills.py``) runs in microseconds, so these
tests exercise the service's bounds, not its models. ``toy_review`` holds short texts for review
(the length skill is sure of a text in proportion to its length).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from api_server import Keys, make_keys
from toy_skills import TOY_GRAPH, toy_registry

from orchestrator import Runtime
from orchestrator.config import Settings
from orchestrator.service.app import create_app
from orchestrator.service.settings import ServiceSettings


def write_graphs(folder: Path) -> Path:
    """``toy.yaml`` and ``toy_review.yaml`` (texts under 3 characters wait for a person)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "toy.yaml").write_text(yaml.safe_dump(TOY_GRAPH))
    review = copy.deepcopy(TOY_GRAPH)
    review["name"] = "toy_review"
    review["steps"][0]["escalation"] = {"threshold": 0.5, "review_below": 0.3}
    (folder / "toy_review.yaml").write_text(yaml.safe_dump(review))
    return folder


def toy_settings(tmp: Path, keys: Keys | None = None, **service: Any) -> ServiceSettings:
    """Service settings over ``tmp``: local executor, the toy graphs, ``keys`` (default: fresh)."""
    runtime = Settings(executor="local", data_dir=tmp / "data", chunk_size=4)
    return ServiceSettings(
        runtime=runtime,
        graphs_dir=write_graphs(tmp / "graphs"),
        api_keys=(keys or make_keys()).configs,
        **service,
    )


@contextlib.contextmanager
def toy_app(settings: ServiceSettings) -> Iterator[Any]:
    """The app over the toy registry (its runtime closed on exit; the app's lifespan is the
    caller's: ``TestClient(app)`` as a context manager runs it, ``serve_app`` too)."""
    runtime = Runtime(registry=toy_registry(), executor="local", settings=settings.runtime)
    with runtime:
        yield create_app(settings, runtime=runtime)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
