"""The job service's bounds: how much work it admits and runs at once, and what a 429 says.

Defined once, here: :class:`~orchestrator.service.settings.ServiceSettings` extends
:class:`Limits`, so the service YAML keeps these as flat keys (``max_active_jobs: 32``), and the
job manager takes ``settings.limits``. Past ``max_active_jobs`` or ``max_active_items`` a submit
gets 429 with ``Retry-After: retry_after_s``; a job over ``max_items_per_job`` gets 413, and so does
an item (a JSONL line) over ``max_item_bytes``.

One key gets a share, not the whole service: at most ``max_active_jobs_per_key`` of its jobs
waiting or running, and ``max_items_per_minute_per_key`` items admitted per minute (a token
bucket, counted while an upload streams); past either, 429 ``quota_exceeded`` with
``Retry-After``. Without them one key could fill the global bounds and lock every other out.

Example::

    JobManager(store, runtime, graphs_dir=Path("graphs"), limits=Limits(max_running_jobs=4))
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Limits"]


class Limits(BaseModel):
    """Bounds of the job service (see the module docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_active_jobs: int = Field(default=32, ge=1, description="jobs waiting or running; then 429")
    max_active_items: int = Field(
        default=2_000_000, ge=1, description="items without a result across jobs; then 429"
    )
    max_running_jobs: int = Field(default=2, ge=1, description="jobs executing at once")
    max_items_per_job: int = Field(default=1_000_000, ge=1, description="larger jobs get 413")
    retry_after_s: int = Field(default=2, ge=1, description="Retry-After sent with a 429")
    max_item_bytes: int = Field(
        default=2**20, ge=64, description="largest item: an inline item or a JSONL line; then 413"
    )
    max_active_jobs_per_key: int = Field(
        default=8, ge=1, description="one key's jobs waiting or running; then 429"
    )
    max_items_per_minute_per_key: int = Field(
        default=1_000_000,
        ge=1,
        description="items one key may submit per minute (a bucket refilled continuously); "
        "then 429",
    )
