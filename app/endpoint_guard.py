"""Isolation from bad endpoints: a bulkhead and a circuit breaker per endpoint.

An endpoint is one webhook's URL (two webhooks on one host are separate endpoints, so one
account's broken path does not stop another's). Without a guard a hung endpoint holds every
delivery slot of the worker for the whole request timeout and starves the healthy ones.

- **Bulkhead**: at most ``max_in_flight`` requests to one endpoint at once. A job for a full
  endpoint waits for a slot while the endpoint answers promptly (a burst to a healthy
  endpoint); once its oldest request has been waiting longer than ``slow_after`` seconds the
  job does not wait but is routed as a failed attempt (``busy``) to the next retry tier, so the
  partition keeps moving.
- **Circuit breaker**: after ``failure_threshold`` consecutive failures an endpoint is *open*
  for ``cooldown`` seconds: its jobs skip the HTTP call and go straight to the next tier. Then
  one probe request is let through (*half-open*); a success closes the circuit, a failure
  opens it for another cooldown.

One instance per worker; the clock is injectable for tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class _Endpoint:
    started: dict[int, float] = field(default_factory=dict)  # ticket -> start time
    failures: int = 0
    open_until: float = 0.0
    probing: bool = False
    freed: asyncio.Event = field(default_factory=asyncio.Event)


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
            endpoint = self._endpoints.setdefault(key, _Endpoint())
            now = self.clock()
            if endpoint.failures >= self.failure_threshold:
                if now < endpoint.open_until or endpoint.probing:
                    return f"circuit open after {endpoint.failures} consecutive failures"
                endpoint.probing = True  # half-open: this request is the probe
                break
            if len(endpoint.started) < self.max_in_flight:
                break
            oldest = min(endpoint.started.values())
            if now - oldest > self.slow_after:
                return (
                    f"busy: {len(endpoint.started)} requests in flight, "
                    f"oldest for {now - oldest:.1f} s"
                )
            endpoint.freed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(endpoint.freed.wait(), self.slow_after)
        ticket = next(self._tickets)
        endpoint.started[ticket] = self.clock()
        return ticket

    def release(self, key: str, ticket: int, ok: bool) -> None:
        """Give back the ticket from :meth:`acquire` with the request's outcome."""
        endpoint = self._endpoints[key]
        endpoint.started.pop(ticket, None)
        endpoint.probing = False
        endpoint.freed.set()
        if ok:
            endpoint.failures = 0
            endpoint.open_until = 0.0
        else:
            endpoint.failures += 1
            if endpoint.failures >= self.failure_threshold:
                endpoint.open_until = self.clock() + self.cooldown
        if not endpoint.started and endpoint.failures == 0:
            del self._endpoints[key]  # forget healthy idle endpoints: memory stays bounded

    def is_open(self, key: str) -> bool:
        endpoint = self._endpoints.get(key)
        return endpoint is not None and endpoint.failures >= self.failure_threshold
