"""A 1,000,000-item job streams through Ray workers in chunks: the driver never holds the job.

Items come from a generator and results are consumed as they arrive, so the driver holds at most
``max_inflight_chunks`` chunks. Its resident memory after a million items must stay within a small
margin of what it was after the first hundred thousand (holding the results alone would take
~0.5 GB). Memory, not speed, is asserted; the speed is printed for the log.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from toy_skills import TOY_GRAPH

from orchestrator import GraphSpec, RayExecutor, Runtime
from orchestrator.config import Settings

ITEMS = 1_000_000
CHUNK = 8192


def _rss_mib() -> float:
    pages = int(Path("/proc/self/statm").read_text(encoding="ascii").split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def test_a_million_items_stream_with_bounded_driver_memory(ray_cluster, toy_registry):
    items = ({"id": i, "utterance": "w" * (i % 17)} for i in range(ITEMS))
    settings = Settings(chunk_size=CHUNK, max_inflight_chunks=2, log_level="WARNING")
    started = time.perf_counter()
    with Runtime(registry=toy_registry, executor=RayExecutor(), settings=settings) as runtime:
        job = runtime.submit(GraphSpec.from_dict(TOY_GRAPH), items)
        seen, failed, baseline = 0, 0, 0.0
        for result in job:
            seen += 1
            failed += result.error is not None
            if seen == 100_000:
                baseline = _rss_mib()
        after = _rss_mib()
    took = time.perf_counter() - started
    print(f"{ITEMS:,} items in {took:.1f} s; driver RSS {baseline:.0f} -> {after:.0f} MiB")
    assert seen == ITEMS and failed == 0
    assert job.ledger.items == ITEMS and job.ledger.chunks == -(-ITEMS // CHUNK)
    assert after - baseline < 100, f"driver memory grew {after - baseline:.0f} MiB"
