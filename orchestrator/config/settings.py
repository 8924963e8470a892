"""Settings, from environment variables (``ORCHESTRATOR_*``) or keyword arguments.

Defaults run everything on one machine with nothing to configure: a local Ray cluster on
127.0.0.1, the built-in skills folder, SQLite under the data dir. ``RAY_ADDRESS`` joins an existing
cluster instead.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from orchestrator.config.locations import default_db_path, is_postgres
from orchestrator.config.prices import price_of

__all__ = ["Settings", "default_skills_dir"]


def default_skills_dir() -> Path:
    """The built-in ``skills/`` folder (next to the package in a checkout, or installed)."""
    spec = importlib.util.find_spec("skills")
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return Path(__file__).resolve().parents[2] / "skills"


class Settings(BaseSettings):
    """Runtime settings. Each field reads ``ORCHESTRATOR_<FIELD>`` from the environment."""

    model_config = SettingsConfigDict(env_prefix="ORCHESTRATOR_", frozen=True, extra="forbid")

    executor: Literal["ray", "local", "serve"] = Field(
        default="ray",
        description="where skills run: 'ray' (actors), 'serve' (Ray Serve deployments) or "
        "'local' (in-process)",
    )
    ray_address: str | None = Field(
        default=None,
        validation_alias=AliasChoices("ORCHESTRATOR_RAY_ADDRESS", "RAY_ADDRESS", "ray_address"),
        description="Ray cluster to join; unset starts a local one on 127.0.0.1",
    )
    num_cpus: int | None = Field(
        default=None, ge=1, description="CPUs for a local Ray cluster (default: all cores)"
    )
    actor_max_restarts: int = Field(
        default=3,
        ge=-1,
        description="restarts of a dead skill actor before its calls fail (-1: no limit)",
    )
    serve_app: str | None = Field(
        default=None,
        description="serve executor: call the skill deployments of this Serve application "
        "(deployed with `serve deploy`); unset: the executor deploys each skill version itself",
    )
    serve_min_replicas: int = Field(
        default=1, ge=1, le=1000, description="serve executor: replicas per skill version"
    )
    serve_max_replicas: int | None = Field(
        default=None,
        ge=1,
        le=1000,
        description="serve executor: above serve_min_replicas, autoscale up to this many",
    )
    serve_max_batch_size: int = Field(
        default=32,
        ge=1,
        le=100_000,
        description="serve executor: items per request batch (@serve.batch); 1 turns it off",
    )
    serve_batch_wait_s: float = Field(
        default=0.0, ge=0, le=10, description="serve executor: wait for a request batch to fill"
    )
    serve_multiplex: bool = Field(
        default=False,
        description="serve executor: one deployment per skill name hosting its versions "
        "(@serve.multiplexed) instead of one per version",
    )
    skills_dir: Path = Field(
        default_factory=default_skills_dir, description="folder of skills/<name>/ with manifests"
    )
    chunk_size: int = Field(
        default=2048, ge=1, le=1_000_000, description="items per graph run (one batch per step)"
    )
    max_inflight_chunks: int = Field(
        default=2, ge=1, le=64, description="chunks in flight at once (bounds driver memory)"
    )
    step_checkpoints: bool = Field(
        default=True,
        description="job service: save each chunk's graph state after every step, so a chunk "
        "caught by a crash resumes after its last finished step (orchestrator/store/checkpoints.py)",
    )
    escalate: bool = Field(
        default=False,
        description="send items under a step's threshold to the big model (else: flag them)",
    )
    force_escalation: bool = Field(
        default=False,
        description="with escalate: send unsure items even to providers measured worse than the "
        "skill on such items (`orchestrator providers eval`); default: those keep the small answer",
    )
    privacy: Literal["redact", "local_only", "allow"] | None = Field(
        default=None,
        description="what may leave the machine when items escalate; unset: local providers get "
        "the text as is, remote ones get it redacted",
    )
    # Finite by default: a job that escalates more than planned degrades (its unsure items keep
    # the small answer, flagged) instead of running up an open-ended bill. 2,000 calls of ~2k
    # tokens cover a 1M-item job escalating a few per cent in batches; raise them per service.
    llm_max_calls: int | None = Field(
        default=2000, ge=1, description="big-model calls per job (null: unlimited)"
    )
    llm_max_tokens: int | None = Field(
        default=4_000_000, ge=1, description="big-model tokens per job (null: unlimited)"
    )
    review_inputs: Literal["redacted", "raw"] = Field(
        default="redacted",
        description="what a review ticket shows the reviewer: the held item's inputs through the "
        "PII guard ('redacted'), or as the item gave them ('raw': reviewers see customer data, "
        "and the ticket keeps it at rest)",
    )
    data_dir: Path = Field(
        default_factory=lambda: default_db_path().parent,
        description="where the SQLite store (plans, audit of big-model calls) lives",
    )
    store_url: str | None = Field(
        default=None,
        description="the store: jobs, audit of big-model calls, plan cache, examples, review queue "
        "and LangGraph checkpoints; postgresql://USER@HOST:PORT/DB (the postgres extra) or "
        "sqlite:///PATH; default <data dir>/orchestrator.db",
    )
    log_format: Literal["auto", "json", "console"] = Field(
        default="auto", description="'auto' is JSON when stderr is not a terminal"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    report_price_model: str = Field(
        default="gpt-4o-mini",
        description="reference price for cost reports and the ledger's baseline: a model of "
        "orchestrator.config.prices.REFERENCE_PRICES, or NAME=PROMPT/COMPLETION (USD per 1M tokens)",
    )

    @field_validator("report_price_model")
    @classmethod
    def _known_price(cls, value: str) -> str:
        price_of(value)  # ValueError names the known models
        return value

    @property
    def store_location(self) -> str:
        """Where the store is: ``store_url``, else ``<data dir>/orchestrator.db``."""
        return self.store_url or str(self.data_dir / "orchestrator.db")

    @property
    def postgres_store(self) -> bool:
        """The store is a Postgres database (checkpoints go there too)."""
        return is_postgres(self.store_location)
