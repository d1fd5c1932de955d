"""Isolation from bad endpoints: a bulkhead and a circuit breaker per endpoint.

An endpoint is one webhook's URL (two webhooks on one host are separate endpoints, so one
account's broken path does not stop another's). Without a guard a hung endpoint holds every
delivery slot of the worker for the whole request timeout and starves the healthy ones.

- **Bulkhead**: at most ``max_in_flight`` requests to one endpoint at once. A job for a full
  endpoint waits for a slot while the endpoint makes progress (a burst to a healthy endpoint:
  a release hands the slot to one waiting job, first come first served). Once a full endpoint
  has finished no request for ``slow_after`` seconds (and its oldest is that old), a job does
  not wait but is routed as a failed attempt (``busy``) to the next retry tier, so the
  partition keeps moving. Judging by the oldest request alone sent jobs of a healthy but
  queued endpoint to the retry tier when one event fanned out to 20 webhooks (4,000 requests
  in flight): fan-out fell from ~3,500 to 1,347 deliveries/s.
- **Circuit breaker**: after ``failure_threshold`` consecutive failures an endpoint is *open*
  for ``cooldown`` seconds: its jobs skip the HTTP call and go straight to the next tier. Then
  one probe request is let through (*half-open*); a success closes the circuit, a failure
  opens it for another cooldown.

One instance per worker; the clock is injectable for tests.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class _Endpoint:
    last_done: float  # when a request last finished (or the endpoint was first seen)
    started: dict[int, float] = field(default_factory=dict)  # ticket -> start time
    failures: int = 0
    open_until: float = 0.0
    probing: bool = False
    waiters: deque[asyncio.Future[None]] = field(default_factory=deque)


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


@dataclass
class EndpointGuard:
    max_in_flight: int
    failure_threshold: int
    cooldown: float
    slow_after: float
    clock: Callable[[], float] = time.monotonic
    _endpoints: dict[str, _Endpoint] = field(default_factory=dict)
    _tickets: itertools.count[int] = field(default_factory=itertools.count)

    async def acquire(self, key: str) -> int | str:
        """A ticket for one request to ``key``, or the reason the request must be skipped."""
        while True:
            endpoint = self._endpoints.get(key)
            if endpoint is None:
                endpoint = self._endpoints[key] = _Endpoint(last_done=self.clock())
            now = self.clock()
            if endpoint.failures >= self.failure_threshold:
                if now < endpoint.open_until or endpoint.probing:
                    return f"circuit open after {endpoint.failures} consecutive failures"
                endpoint.probing = True  # half-open: this request is the probe
                break
            if len(endpoint.started) < self.max_in_flight:
                break
            oldest = min(endpoint.started.values())
            if now - max(endpoint.last_done, oldest) > self.slow_after:
                return (
                    f"busy: {len(endpoint.started)} requests in flight, "
                    f"none finished for {now - endpoint.last_done:.1f} s"
                )
            # Wait for a release (which wakes one waiter) or for slow_after, then look again.
            loop = asyncio.get_running_loop()
            waiter: asyncio.Future[None] = loop.create_future()
            endpoint.waiters.append(waiter)
            timer = loop.call_later(self.slow_after, _wake, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
        ticket = next(self._tickets)
        endpoint.started[ticket] = self.clock()
        return ticket

    def release(self, key: str, ticket: int, ok: bool) -> None:
        """Give back the ticket from :meth:`acquire` with the request's outcome."""
        endpoint = self._endpoints[key]
        endpoint.started.pop(ticket, None)
        endpoint.probing = False
        endpoint.last_done = self.clock()
        if ok:
            endpoint.failures = 0
            endpoint.open_until = 0.0
        else:
            endpoint.failures += 1
            if endpoint.failures >= self.failure_threshold:
                endpoint.open_until = endpoint.last_done + self.cooldown
        waiters = endpoint.waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                break
        if not endpoint.started and endpoint.failures == 0 and not waiters:
            del self._endpoints[key]  # forget healthy idle endpoints: memory stays bounded

    def is_open(self, key: str) -> bool:
        endpoint = self._endpoints.get(key)
        return endpoint is not None and endpoint.failures >= self.failure_threshold
