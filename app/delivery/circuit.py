"""The circuit breaker of one endpoint: when it keeps failing, stop sending for a while.

It counts failure *rounds*, not failed requests: a failure counts only if its request started
after the previously counted failure had finished. Forty requests in flight that all get a 503
when a receiver sheds load are one round (the limiter cuts concurrency for it); a dead endpoint
fails round after round. After ``threshold`` rounds with no success the circuit *opens* for
``cooldown`` seconds: no request is sent, and the endpoint's jobs are parked until then
(waiting costs them no try). Then it is *half-open*: one probe at a time; a success closes it,
a failure opens it for another cooldown.

What counts as a failure here: no response (timeout, connection error), 5xx and 429. A 4xx is
an endpoint that is up and refusing one request, so it neither fails nor heals the circuit.
Pure: the clock is passed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class State(Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


@dataclass
class Circuit:
    threshold: int
    cooldown: float
    rounds: int = 0
    open_until: float = 0.0
    _last_failure_done: float = float("-inf")

    def state(self, now: float) -> State:
        if self.rounds < self.threshold:
            return State.CLOSED
        return State.OPEN if now < self.open_until else State.HALF_OPEN

    def allows(self, now: float, in_flight: int) -> bool:
        """Whether a request may start now (half-open: one probe at a time)."""
        state = self.state(now)
        return state is State.CLOSED or (state is State.HALF_OPEN and in_flight == 0)

    def on_success(self) -> bool:
        """Record a success; True when it closed an open (or half-open) circuit."""
        was_open = self.rounds >= self.threshold
        self.rounds = 0
        self.open_until = 0.0
        return was_open

    def on_failure(self, started: float, now: float) -> bool:
        """Record a failure of a request sent at ``started``; True when the circuit opened."""
        if self.rounds >= self.threshold:  # a failed probe: open for another cooldown
            self.open_until = now + self.cooldown
            self._last_failure_done = now
            return True
        if started < self._last_failure_done:
            return False  # in flight with the failure already counted: the same round
        self.rounds += 1
        self._last_failure_done = now
        if self.rounds >= self.threshold:
            self.open_until = now + self.cooldown
            return True
        return False
