"""The token-bucket rate limiter binding."""

from __future__ import annotations

import pytest

from local_runtime.rate_limiter import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_burst_then_refill_per_key() -> None:
    clock = Clock()
    limiter = RateLimiter(per_second=2.0, burst=3, clock=clock)
    assert [(await limiter.limit("a")).success for _ in range(3)] == [True, True, True]
    refused = await limiter.limit("a")
    assert not refused.success and refused.retry_after_ms == 500
    assert (await limiter.limit("b")).success
    clock.now += 0.25
    assert (await limiter.limit("a")).retry_after_ms == 250
    clock.now += 0.25
    assert (await limiter.limit("a")).success
    clock.now += 100
    assert [(await limiter.limit("a")).success for _ in range(4)] == [True, True, True, False]


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-1, 5), (1, 0)])
def test_bad_settings_are_refused(rate: float, burst: int) -> None:
    with pytest.raises(ValueError):
        RateLimiter(rate, burst)
