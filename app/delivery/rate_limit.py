"""Per-webhook rate limit (``rate_limit_per_second``) that smooths bursts instead of failing them.

Each request reserves the next start slot of its webhook, ``1 / rate`` seconds after the previous
one. A job whose slot is at most ``max_wait`` away waits for it; a later slot is given back and
the job is parked on retry tier 1 until then (without counting an attempt), so a burst for a
slow-paced webhook does not hold the worker's delivery slots. Pure, with an injectable clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class RateLimiter:
    max_wait: float = 1.0
    _next: dict[str, float] = field(default_factory=dict)

    def reserve(self, key: str, rate: float, now: float) -> float:
        """Reserve the next slot of ``key``; the time it starts (``now`` or later)."""
        start = max(now, self._next.get(key, now))
        self._next[key] = start + 1.0 / rate
        return start

    def release(self, key: str, rate: float) -> None:
        """Give back the slot just reserved (the job is deferred instead of waiting)."""
        self._next[key] = self._next[key] - 1.0 / rate
