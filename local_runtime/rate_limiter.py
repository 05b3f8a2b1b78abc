"""A rate-limiting binding: a token bucket per key (``env.MEDIA_UPLOAD_LIMITER``).

Shaped like the platform's rate-limit binding (``await env.LIMITER.limit(key)`` answers whether
the call may go ahead), plus how long to wait when it may not, which Matrix clients get as
``retry_after_ms``. Counts live in the process, as the platform's are per location: they
are a brake on abuse, not data, and a restart forgets them.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class RateLimitOutcome:
    success: bool
    retry_after_ms: int = 0


class RateLimiter:
    """``burst`` calls at once, refilled at ``per_second`` calls per second, per key."""

    def __init__(
        self, per_second: float, burst: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if per_second <= 0 or burst < 1:
            raise ValueError("a rate limit needs per_second > 0 and burst >= 1")
        self.per_second = per_second
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)

    async def limit(self, key: str) -> RateLimitOutcome:
        """Take one token for ``key`` if there is one."""
        now = self._clock()
        tokens, at = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) * self.per_second)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            self._forget_full(now)
            return RateLimitOutcome(True)
        self._buckets[key] = (tokens, now)
        wait_s = (1.0 - tokens) / self.per_second
        return RateLimitOutcome(False, max(1, math.ceil(wait_s * 1000)))

    def _forget_full(self, now: float) -> None:
        """Drop buckets that have refilled, so the map does not grow without bound."""
        if len(self._buckets) < 10_000:
            return
        refill_s = self.burst / self.per_second
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < refill_s}
