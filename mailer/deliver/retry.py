"""How often and how long to retry a provider that answered "later": shared by the send and the suppression pull."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """Tries and back-off for one request: a provider's own wait (429 reset, Retry-After) wins over jitter."""

    attempts: int = 6  # tries per batch, the first included
    base_seconds: float = 1.0
    cap_seconds: float = 60.0
    max_wait_seconds: float = 900.0  # the longest a 429's reset time is waited for

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_wait_seconds)
        # "Full jitter": spreads retries of concurrent workers so they do not hit the provider together.
        return random.uniform(0, min(self.cap_seconds, self.base_seconds * 2 ** attempt))
