"""Recording a finished run in the job store: ``orchestrator run`` jobs and scripts, next to the
service's own, so ``orchestrator report``, the API and the dashboard see every job.

A run keeps a uniform sample of its items with it, for ``orchestrator report --measure-sample``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from orchestrator.store.item import Item
from orchestrator.store.location import open_store

if TYPE_CHECKING:
    from orchestrator.config import Settings
    from orchestrator.errors import OrchestratorError
    from orchestrator.runtime.runtime import Job
    from orchestrator.store.jobs import JobRecord

__all__ = ["SAMPLE_SIZE", "ItemSample", "record_run"]

#: Items ``orchestrator run`` keeps per job (a uniform sample) for ``report --measure-sample``.
SAMPLE_SIZE = 256


class ItemSample:
    """A uniform sample of up to ``size`` items of a stream (reservoir sampling, seeded), kept as
    the job's items when a run is recorded, for ``orchestrator report --measure-sample``."""

    def __init__(self, size: int = SAMPLE_SIZE, seed: int = 0) -> None:
        self.size = size
        self.seen = 0
        self._kept: list[Item] = []
        self._random = random.Random(seed)

    def wrap(self, items: Iterable[Item]) -> Iterator[Item]:
        """Pass ``items`` through, sampling them on the way."""
        for item in items:
            self.seen += 1
            if len(self._kept) < self.size:
                self._kept.append(item)
            else:
                slot = self._random.randrange(self.seen)
                if slot < self.size:
                    self._kept[slot] = item
            yield item

    def stored(self) -> list[Item]:
        """The kept items, in job order."""
        return sorted(self._kept, key=lambda item: item.index)


def record_run(
    settings: Settings,
    job: Job,
    *,
    started_at: float,
    sample: ItemSample | None = None,
    error: OrchestratorError | None = None,
    owner: str = "cli",
) -> JobRecord:
    """Record a finished runtime job (``orchestrator run``) in the job store."""
    ledger = job.ledger
    failed = error is not None or bool(ledger.items and not ledger.succeeded)
    score = job.score
    with open_store(settings.store_location) as store:
        return store.record_finished(
            job.id,
            owner=owner,
            ledger=ledger,
            status="failed" if failed else "succeeded",
            started_at=started_at,
            finished_at=time.time(),
            chunk_size=settings.chunk_size,
            spec_yaml=job.graph.spec.to_yaml(),
            score={
                "labelled": score.labelled,
                "correct": score.correct,
                "kept": score.kept,
                "kept_correct": score.kept_correct,
            },
            error={"code": error.code, "message": str(error)} if error is not None else None,
            items=sample.stored() if sample is not None else (),
        )
