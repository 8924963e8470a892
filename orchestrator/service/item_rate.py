"""Items per minute per API key: one token bucket per key, refilled continuously.

A key may submit ``per_minute`` items in a burst, then ``per_minute / 60`` per second. Items are
taken as a submission's batches are stored (an upload pays while it streams), so two concurrent
uploads of one key share one allowance. In memory, per process: a replica admits at most its own
share, which bounds a key across ``n`` replicas to ``n`` times the rate.

Example::

    rate = ItemRate(per_minute=600)
    rate.take("crm", 500)      # 0.0: admitted
    rate.take("crm", 500)      # ~40.0: seconds until 500 more fit; nothing was taken
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["ItemRate"]


class ItemRate:
    """Token buckets of items, one per key (thread-safe)."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)
        self._lock = threading.Lock()

    def take(self, key: str, items: int) -> float:
        """Take ``items`` from ``key``'s bucket: 0.0 when they fit, else the seconds until they
        would (and nothing is taken). A batch larger than the whole bucket passes when the
        bucket is full and leaves it in debt, so the key then waits as long as the batch took."""
        rate = self.per_minute / 60.0
        with self._lock:
            now = self._clock()
            tokens, at = self._buckets.get(key, (float(self.per_minute), now))
            tokens = min(float(self.per_minute), tokens + (now - at) * rate)
            need = min(items, self.per_minute)
            if tokens >= need:
                self._buckets[key] = (tokens - items, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (need - tokens) / rate
