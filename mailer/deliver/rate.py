"""The rate limiter behind --rate."""

from __future__ import annotations

import time
from collections.abc import Callable


class RateLimiter:
    """At most `rate` messages per second on average, counted from the first batch."""

    def __init__(self, rate: float | None, sleep: Callable[[float], None] = time.sleep):
        self.rate = rate
        self.sleep = sleep
        self.started: float | None = None
        self.sent = 0

    def acquire(self, count: int) -> None:
        if not self.rate:
            return
        now = time.monotonic()
        if self.started is None:
            self.started = now
        due = self.started + self.sent / self.rate
        if due > now:
            self.sleep(due - now)
        self.sent += count
