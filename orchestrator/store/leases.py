"""Leases: which replica runs a job (or receives its upload), and until when it may.

Replicas of the service share one store. A job that runs, or whose upload is still arriving,
holds a lease: the id of the replica that holds it and an expiry a few renewals ahead. The
holder renews it on a timer (:class:`LeaseKeeper`); a replica that dies stops renewing, and once
the lease has expired any replica's :meth:`~orchestrator.store.jobs.Store.recover` takes the job
over (a compare-and-set in one ``UPDATE``), so it resumes elsewhere. A live lease is never taken:
two replicas starting on one database no longer steal each other's jobs. A holder that lost its
lease (it stalled past the expiry and another replica took over) finds out at its next renewal
or write: its chunk commits and its final status are fenced by the lease and refused
(:class:`~orchestrator.errors.LeaseLost`), never half-applied.

Expiries are compared with each replica's clock: keep the replicas' clocks in step (NTP), well
within the lease time.

Example::

    lease = Lease(owner=new_owner_id(), seconds=30.0)
    keeper = LeaseKeeper(store, lease, every_s=10.0, on_lost=print)
    keeper.start()
    keeper.hold(job.id)          # renewed every 10 s from now on
    ...
    keeper.release(job.id)
    keeper.stop()
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Protocol

from orchestrator.telemetry.logs import get_logger

__all__ = ["Lease", "LeaseKeeper", "new_owner_id"]

log = get_logger(__name__)


def new_owner_id() -> str:
    """A replica id never used before: ``host:pid:random`` (a restart gets a new one)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class Lease:
    """The lease terms of one replica: who holds (``owner``) and for how long per renewal."""

    owner: str
    seconds: float

    def __post_init__(self) -> None:
        if not self.owner or self.seconds <= 0:
            raise ValueError("a lease needs an owner id and a positive duration")

    def expiry(self) -> float:
        """When a lease taken or renewed now expires (epoch seconds)."""
        return time.time() + self.seconds


class _Renews(Protocol):
    def renew(self, lease: Lease, job_ids: Collection[str]) -> set[str]: ...


class LeaseKeeper:
    """Renews the leases of the jobs this replica holds, every ``every_s`` seconds, on its own
    thread (a busy event loop must not cost a live job its lease). ``on_lost(job_id)`` is called
    (on that thread) for a held job whose lease another replica took over."""

    def __init__(
        self, store: _Renews, lease: Lease, *, every_s: float, on_lost: Callable[[str], None]
    ) -> None:
        if not 0 < every_s < lease.seconds:
            raise ValueError(
                f"renew leases more often than they last (every {every_s} s < {lease.seconds} s)"
            )
        self.store = store
        self.lease = lease
        self.every_s = every_s
        self._on_lost = on_lost
        self._held: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._main, name="orchestrator-leases", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.every_s + 5)
            self._thread = None

    def hold(self, job_id: str) -> None:
        """Keep renewing ``job_id``'s lease (taken by the store call that started it)."""
        with self._lock:
            self._held.add(job_id)

    def release(self, job_id: str) -> None:
        """Stop renewing: call it before the job's final write."""
        with self._lock:
            self._held.discard(job_id)

    @property
    def held(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._held)

    def renew_now(self) -> set[str]:
        """One renewal round; the held jobs whose lease was lost (``on_lost`` called for each)."""
        held = self.held
        if not held:
            return set()
        renewed = self.store.renew(self.lease, held)
        with self._lock:  # a job released during the round finished: not lost
            lost = {job_id for job_id in held - renewed if job_id in self._held}
            self._held -= lost
        for job_id in sorted(lost):
            log.warning("job_lease_lost", job_id=job_id, owner=self.lease.owner)
            self._on_lost(job_id)
        return lost

    def _main(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self.renew_now()
            except Exception as exc:  # noqa: BLE001 - the store may be failing over: next round
                log.error("lease_renewal_failed", error=f"{type(exc).__name__}: {exc}")
