"""The job service's settings: a YAML file, ``ORCHESTRATOR_*`` env, or keyword arguments.

The service runs on embedded defaults with nothing configured: a local Ray cluster on loopback,
the SQLite store under the data dir, the embedded model for planning. A YAML file (``--config``)
sets the rest::

    runtime:                    # orchestrator.config.Settings fields (else ORCHESTRATOR_* env)
      executor: ray
      chunk_size: 2048
    graphs_dir: graphs
    api_keys:                   # python -m orchestrator.service.auth NAME SCOPE... prints an entry
      - {name: crm-backend, sha256: 5e88..., scopes: [jobs:read, jobs:write, graphs:invoke]}
    max_active_jobs: 32
    warm_graphs: [outbound_call_turn]

With no ``api_keys`` and auth on, the service makes an admin key at start-up and writes it to
``<data dir>/admin.key`` (mode 0600): it is never printed or logged.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import ConfigDict, Field, field_validator, model_validator

from orchestrator.config import Settings
from orchestrator.errors import ConfigError
from orchestrator.service.auth import ApiKey, new_key
from orchestrator.service.limits import Limits
from orchestrator.service.webhook_policy import WebhookPolicy

__all__ = ["ServiceSettings", "default_graphs_dir", "ensure_admin_key", "load_service_settings"]


def default_graphs_dir() -> Path:
    """``graphs/`` of the checkout, else ``./graphs``."""
    checkout = Path(__file__).resolve().parents[2] / "graphs"
    return checkout if checkout.is_dir() else Path("graphs")


class ServiceSettings(Limits):
    """Everything the job service needs beyond the runtime's own settings; the job limits
    (:class:`~orchestrator.service.limits.Limits`) are its fields too, flat keys in the YAML."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    runtime: Settings = Field(default_factory=Settings, description="runtime settings")
    graphs_dir: Path = Field(
        default_factory=default_graphs_dir, description="where `graph: NAME` jobs find NAME.yaml"
    )
    store_url: str | None = Field(
        default=None,
        description="sqlite:///PATH or postgresql://USER@HOST:PORT/DB (needs the postgres "
        "extra); default <data dir>/orchestrator.db",
    )
    auth: bool = Field(default=True, description="False: no keys, every caller is admin (dev)")
    api_keys: list[ApiKey] = Field(default_factory=list, description="keys, stored hashed")
    max_request_bytes: int = Field(
        default=16 * 2**20,
        ge=1024,
        description="largest body of any request (inline JSON items included), counted while it "
        "streams, before auth; then 413. Bigger jobs go as a JSONL upload",
    )
    max_upload_bytes: int = Field(
        default=2 * 2**30,
        ge=1024,
        description="largest JSONL upload (multipart POST /v1/jobs, spooled to disk), counted "
        "while it streams; then 413",
    )
    max_inline_items: int = Field(
        default=100_000, ge=1, description="items in one inline JSON job; then 413 (use JSONL)"
    )
    max_turn_bytes: int = Field(
        default=64 * 2**10, ge=1024, description="largest body of a real-time turn; then 413"
    )
    max_input_chars: int = Field(
        default=10_000, ge=1, description="longest text value of a turn's input; then 422"
    )
    max_event_streams_per_key: int = Field(
        default=4, ge=1, description="server-sent event streams one key holds open; then 429"
    )
    event_stream_max_s: float = Field(
        default=3600.0,
        gt=0,
        description="an event stream ends (event 'expired') after this long; reconnect",
    )
    trusted_hosts: list[str] = Field(
        default_factory=lambda: ["127.0.0.1", "localhost", "::1"],
        min_length=1,
        description="Host header values the service answers (a name, '*.example.com', or '*'); "
        "others get 400. Guards against DNS rebinding; `serve --host` adds its address",
    )
    retention_days: float | None = Field(
        default=None,
        gt=0,
        description="finished jobs older than this are deleted with their items, results, "
        "tickets, examples and checkpoints (None: kept until DELETE /v1/jobs/{id})",
    )
    max_concurrent_invokes: int = Field(
        default=512, ge=1, description="real-time turns in progress at once; then 429"
    )
    warm_graphs: list[str] = Field(
        default_factory=list, description="graphs whose turn path loads at start-up"
    )
    webhook_secret_env: str | None = Field(
        default=None, description="env var holding the HMAC key that signs webhooks"
    )
    webhook_hosts: list[str] = Field(
        default_factory=list,
        description="where webhooks may go (empty: nowhere, webhooks are off): host names "
        "('hooks.example.com'), '*.example.com', '*' (any public host), addresses or networks "
        "('10.0.0.0/24'). Private, loopback and link-local addresses only when listed by exact "
        "name or address; guards against SSRF",
    )
    webhook_timeout_s: float = Field(default=5.0, gt=0, description="per webhook attempt")
    webhook_max_attempts: int = Field(
        default=8, ge=1, description="tries of one delivery before it is given up"
    )
    webhook_backoff_s: float = Field(
        default=2.0, gt=0, description="wait after a delivery's first failed try; doubles each time"
    )
    webhook_concurrency: int = Field(
        default=8, ge=1, description="webhook deliveries in flight at once"
    )
    # Open by default, on purpose: /metrics holds counts and latencies per route and graph, the
    # docs the API's shape and graph names (which a 422 for an unknown graph lists anyway);
    # neither carries an item, a result or a key, and the service binds loopback by default.
    # Prometheus scrapers and API explorers usually hold no key. A service exposed beyond a
    # trusted network turns both off (docs/operators.md).
    metrics_public: bool = Field(default=True, description="False: /metrics needs admin")
    docs_public: bool = Field(
        default=True, description="False: /docs, /redoc and /openapi.json need a valid key"
    )

    @field_validator("webhook_hosts")
    @classmethod
    def _webhook_hosts(cls, value: list[str]) -> list[str]:
        try:
            WebhookPolicy(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return value

    replica_id: str | None = Field(
        default=None,
        max_length=200,
        description="this replica's id in job leases. A stable id per replica (a pod name) lets "
        "a restarted replica take back its own running jobs at once, instead of after "
        "job_lease_s; two live replicas must never share one. None: a new id every start",
    )
    job_lease_s: float = Field(
        default=30.0,
        gt=0,
        description="how long a running job (or an upload arriving) stays this replica's "
        "without a renewal; after that another replica may take it over",
    )
    job_lease_renew_s: float = Field(
        default=10.0, gt=0, description="how often leases are renewed (less than job_lease_s)"
    )
    max_chunk_starts: int = Field(
        default=3,
        ge=1,
        description="a job whose chunk was started this many times without finishing (the "
        "service died in it each time) is failed as a crash loop instead of run again",
    )

    @model_validator(mode="after")
    def _renew_within_lease(self) -> ServiceSettings:
        if self.job_lease_renew_s >= self.job_lease_s:
            raise ValueError(
                f"job_lease_renew_s ({self.job_lease_renew_s}) must be less than job_lease_s "
                f"({self.job_lease_s}), e.g. a third of it, or leases expire between renewals"
            )
        return self

    @property
    def limits(self) -> Limits:
        """The job limits alone (what the job manager takes)."""
        return Limits(**{name: getattr(self, name) for name in Limits.model_fields})

    @model_validator(mode="before")
    @classmethod
    def _one_store(cls, data: Any) -> Any:
        """The service's ``store_url`` is the runtime's too: audit, plan cache, examples, review
        queue and checkpoints live where the jobs do."""
        if not isinstance(data, dict) or not data.get("store_url"):
            return data
        url, runtime = data["store_url"], data.get("runtime")
        if runtime is None:
            return {**data, "runtime": Settings(store_url=url)}
        if isinstance(runtime, Settings) and not runtime.store_url:
            return {**data, "runtime": runtime.model_copy(update={"store_url": url})}
        if isinstance(runtime, dict) and not runtime.get("store_url"):
            return {**data, "runtime": {**runtime, "store_url": url}}
        return data

    @property
    def store_location(self) -> str:
        return self.store_url or self.runtime.store_location


def load_service_settings(
    path: Path | None = None, *, runtime: dict[str, Any] | None = None, **overrides: Any
) -> ServiceSettings:
    """Settings from a YAML file (if any), then ``overrides``; runtime fields also read env."""
    data: dict[str, Any] = {}
    if path is not None:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: the service config must be a YAML mapping of settings")
    runtime_values = {**(data.pop("runtime", None) or {}), **(runtime or {})}
    values = {**data, **{k: v for k, v in overrides.items() if v is not None}}
    return ServiceSettings(runtime=Settings(**runtime_values), **values)


def ensure_admin_key(settings: ServiceSettings) -> ServiceSettings:
    """With auth on and no keys configured: a fresh admin key, written to ``admin.key``."""
    if not settings.auth or settings.api_keys:
        return settings
    key, digest = new_key()
    path = settings.runtime.data_dir / "admin.key"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    print(f"no api_keys configured: an admin key for this run is in {path}", file=sys.stderr)
    admin = ApiKey(name="admin", sha256=digest, scopes=frozenset({"admin"}))
    return settings.model_copy(update={"api_keys": [admin]})
