"""How late this worker's event loop runs its callbacks: the lag a request's round trip picks up
inside the worker, whatever the endpoint does.

A timer asks to run every ``interval`` seconds and measures how much later than asked it ran;
the lag is a moving average of that (about the last ten ticks). Under full CPU load it is the
wait of every ready callback, an answer's included, so a round trip not well above it says
that the worker, not the endpoint, is what requests wait for (see :mod:`app.delivery.limiter`).
The timer runs while the scheduler sends and stops after a few idle ticks.
"""

from __future__ import annotations

import asyncio

INTERVAL = 0.05
WEIGHT = 0.1
IDLE_TICKS = 40  # 2 s without a request started: stop ticking


class LoopLag:
    def __init__(self, interval: float = INTERVAL) -> None:
        self._interval = interval
        self._handle: asyncio.TimerHandle | None = None
        self._due = 0.0
        self._idle = 0
        self.value = 0.0  # seconds

    def ensure_running(self) -> None:
        """Called for each request started: keeps the timer going (and starts it)."""
        self._idle = 0
        if self._handle is None:
            loop = asyncio.get_running_loop()
            self._due = loop.time() + self._interval
            self._handle = loop.call_at(self._due, self._tick)

    def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        late = max(0.0, now - self._due)
        self.value += WEIGHT * (late - self.value)
        self._idle += 1
        if self._idle >= IDLE_TICKS:
            self._handle = None
            self.value = 0.0
            return
        self._due = now + self._interval
        self._handle = loop.call_at(self._due, self._tick)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
