"""Per-webhook rate limit (``rate_limit_per_second``): start slots ``1 / rate`` apart.

Each job reserves the next start slot of its webhook when it is submitted; the scheduler
(:mod:`app.delivery.scheduler`) queues a job whose slot is near and parks one whose slot is
further than ``max_wait`` away until that slot, keeping the reservation, so every job of a
burst is parked at most once. Dispatch also keeps consecutive starts ``1 / rate`` apart, so a
job that started late (its endpoint was full) does not start together with the next one.
Pure, with the clock passed in.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class RateLimiter:
    max_wait: float = 1.0
    _next_slot: dict[str, float] = field(default_factory=dict)
    _next_start: dict[str, float] = field(default_factory=dict)

    def reserve(self, key: str, rate: float, now: float) -> float:
        """Reserve the next slot of ``key``; the time it starts (``now`` or later)."""
        start = max(now, self._next_slot.get(key, now))
        self._next_slot[key] = start + 1.0 / rate
        return start

    def start_after(self, key: str) -> float:
        """The earliest time the next request of ``key`` may start (spacing of starts)."""
        return self._next_start.get(key, 0.0)

    def started(self, key: str, rate: float, now: float) -> None:
        """A request of ``key`` started at ``now``: the next one waits ``1 / rate``."""
        self._next_start[key] = now + 1.0 / rate
