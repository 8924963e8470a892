"""Taking over the jobs of a replica that died: what :meth:`Store.recover` does, statement by
statement, inside the one write transaction the store holds.

Only jobs whose lease has expired (or that hold no lease: rows written before leases existed, or
by a caller that takes none) are touched; ``reclaim`` names a replica id whose leases count as
expired too (a replica restarting under a stable id takes back at once what its previous run
held). Each takeover is a compare-and-set on the expired lease, so of two replicas recovering at
once one takes a job and the other finds nothing.

- a job ``running`` with a cancel requested becomes ``cancelled``;
- a job ``running`` becomes ``interrupted`` (it resumes, chunks already committed are skipped),
  unless one of its uncommitted chunks has been started ``max_chunk_starts`` times already: the
  service died in it each time, so the job becomes ``failed`` (:class:`JobCrashLoop`) instead of
  crashing every replica that picks it up;
- an upload still ``receiving`` is dropped with its items (its client saw the connection end).
"""

from __future__ import annotations

import json
import time
from typing import Any, NamedTuple

from orchestrator.errors import JobCrashLoop

__all__ = ["Recovery", "recover_in"]

#: a job's lease counts as expired: ``?`` = now, then the reclaimed owner (None matches nothing)
_EXPIRED = "(lease_expires_at IS NULL OR lease_expires_at < ? OR lease_owner = ?)"
_NO_LEASE = "lease_owner = NULL, lease_expires_at = NULL"


class Recovery(NamedTuple):
    """What one :meth:`Store.recover` did."""

    #: jobs taken over to resume
    interrupted: int
    #: uploads dropped
    dropped: int
    #: ids of jobs failed as a crash loop
    failed: tuple[str, ...] = ()


def recover_in(
    db: Any, *, reclaim: str | None, max_chunk_starts: int | None
) -> tuple[Recovery, list[str]]:
    """Run the takeover in ``db`` (a connection inside a write transaction). Returns what it did
    and the ids of the uploads to drop (the caller deletes them in the same transaction)."""
    now = time.time()
    expired = (now, reclaim)
    db.execute(  # a cancel that arrived just before the crash still counts
        f"UPDATE jobs SET status = 'cancelled', finished_at = ?, {_NO_LEASE}"
        f" WHERE status = 'running' AND cancel_requested = 1 AND {_EXPIRED}",
        (now, *expired),
    )
    rows = db.execute(
        f"SELECT id, chunk_size FROM jobs WHERE status = 'running' AND {_EXPIRED}", expired
    ).fetchall()
    interrupted, failed = 0, []
    for job_id, chunk_size in rows:
        loop = _crash_loop(db, job_id, chunk_size, max_chunk_starts)
        if loop is None:
            status, finished, error = "interrupted", None, None
        else:
            status, finished, error = "failed", now, json.dumps(loop)
        changed = db.execute(
            f"UPDATE jobs SET status = ?, finished_at = ?, error = ?, {_NO_LEASE}"
            f" WHERE id = ? AND status = 'running' AND {_EXPIRED}",
            (status, finished, error, job_id, *expired),
        ).rowcount
        if changed and loop is None:
            interrupted += 1
        elif changed:
            failed.append(job_id)
    uploads = [
        r[0]
        for r in db.execute(
            f"SELECT id FROM jobs WHERE status = 'receiving' AND {_EXPIRED}", expired
        ).fetchall()
    ]
    return Recovery(interrupted, len(uploads), tuple(failed)), uploads


def _crash_loop(
    db: Any, job_id: str, chunk_size: int, max_chunk_starts: int | None
) -> dict[str, str] | None:
    """The job's error when one uncommitted chunk was started ``max_chunk_starts`` times."""
    if max_chunk_starts is None:
        return None
    row = db.execute(
        "SELECT chunk_index, COUNT(*) FROM chunk_runs WHERE job_id = ? AND chunk_index NOT IN"
        " (SELECT chunk_index FROM job_chunks WHERE job_id = ?)"
        " GROUP BY chunk_index ORDER BY COUNT(*) DESC, chunk_index LIMIT 1",
        (job_id, job_id),
    ).fetchone()
    if row is None or row[1] < max_chunk_starts:
        return None
    chunk, starts = int(row[0]), int(row[1])
    first = chunk * chunk_size
    error = JobCrashLoop(
        f"job {job_id} was started {starts} times on chunk {chunk} (items {first} to "
        f"{first + chunk_size - 1}) and the service died each time without finishing it: "
        "something in those items crashes the process (a skill running out of memory, a native "
        "crash). It is not run again. Look at those items, fix the skill or drop them, and "
        "submit the rest as a new job (the results that did commit stay readable); the "
        "max_chunk_starts setting allows more attempts"
    )
    return {"code": error.code, "message": str(error)}
