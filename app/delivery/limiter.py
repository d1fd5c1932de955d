"""How many requests one endpoint gets at once: an adaptive limit, like TCP's congestion window.

Real receivers answer in 200 ms to a few seconds and shed load when pushed too hard, so a fixed
cap is wrong both ways: too low for a slow, healthy endpoint (a 1 s endpoint at 50 in flight
gets 50 deliveries/s whatever it could take), too high for one that is struggling.

- **Slow start**: the limit grows by one per success while it is the bottleneck (the requests
  in flight fill at least half of it), so it doubles every round trip, until the first sign of
  congestion.
- **Congestion avoidance**: then it grows by ``1 / limit`` per success, one per round trip.
- **Decrease**: a timeout, a connection error, a 5xx, a 429 or 503, or a latency that has
  risen well above the endpoint's baseline cuts it to :data:`BACKOFF` times the smaller of the
  limit and the concurrency the failed request was sent with: a 503 to the 21st request in
  flight says the endpoint takes about 20, however far slow start had overshot (one x0.9 cut
  per round trip took ~10 round trips and hundreds of 503s to come down from 64 to 20). A
  failure of a request sent before the last cut cuts again only if it shows a lower capacity
  (TCP's one decrease per window), so a burst of concurrent 503s cuts once.
- **Latency**: a short-term average of the round trip (the last ~20) above ``2 x`` the long-
  term one (the last ~200) *and* above it by 0.1 s, for 8 samples in a row, counts as
  congestion: the endpoint is queuing our requests. Averages, not the minimum: a healthy
  endpoint whose latency varies (log-normal around 250 ms, p99 2 s) has a minimum far below its
  mean, and comparing with the minimum would read it as congested forever. The absolute margin
  keeps a fast endpoint's limit steady when the worker's own event loop, not the endpoint, adds
  the milliseconds (at 8,000 deliveries/s a 1 ms endpoint measures 5-20 ms).

Between ``floor`` and ``ceiling`` (``HOOKSTREAM_ENDPOINT_MIN_IN_FLIGHT`` and
``HOOKSTREAM_ENDPOINT_MAX_IN_FLIGHT``). Pure: the clock is passed in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

#: The multiplicative decrease. 0.9 (Netflix's AIMD default) rather than TCP's 0.5: an endpoint
#: that sheds load above N settles just under N instead of sawing between N/2 and N.
BACKOFF = 0.9
LATENCY_FACTOR = 2.0
LATENCY_MARGIN = 0.1
#: Weight of a new round trip in the short-term and the long-term average.
SHORT_TERM = 0.05
LONG_TERM = 0.005
#: Consecutive samples the short-term average must stay high before it counts: a cluster of
#: tail latencies (p99 2 s around a 250 ms median) is not an endpoint queuing our requests.
LATENCY_STRIKES = 8


class Signal(Enum):
    """What one attempt says about the endpoint's capacity."""

    OK = "ok"  # answered promptly enough: 2xx, or a 4xx (up, but refusing this request)
    CONGESTED = "congested"  # timeout, connection error, 5xx, 429, 503
    NONE = "none"  # nothing was sent (refused by policy): says nothing


@dataclass
class AdaptiveLimit:
    floor: int
    ceiling: int
    initial: int
    limit: float = 0.0
    slow_start: bool = True
    smoothed_rtt: float | None = None  # short-term
    long_rtt: float | None = None
    _strikes: int = 0
    _samples: int = 0
    _cut_at: float = field(default=float("-inf"))

    def __post_init__(self) -> None:
        self.floor = max(1, self.floor)
        self.ceiling = max(self.floor, self.ceiling)
        if not self.limit:
            self.limit = float(min(self.ceiling, max(self.floor, self.initial)))

    @property
    def current(self) -> int:
        """Requests allowed in flight now."""
        return int(self.limit)

    def _observe_rtt(self, rtt: float) -> None:
        short, long = self.smoothed_rtt, self.long_rtt
        self._samples += 1
        self.smoothed_rtt = rtt if short is None else short + SHORT_TERM * (rtt - short)
        # A plain mean until it has 1 / LONG_TERM samples: a first few fast answers must not
        # make every later ordinary one look like congestion.
        weight = max(LONG_TERM, 1.0 / self._samples)
        self.long_rtt = rtt if long is None else long + weight * (rtt - long)

    def _latency_congested(self) -> bool:
        short, long = self.smoothed_rtt, self.long_rtt
        high = (
            short is not None
            and long is not None
            and short > LATENCY_FACTOR * long
            and short > long + LATENCY_MARGIN
        )
        self._strikes = self._strikes + 1 if high else 0
        return self._strikes >= LATENCY_STRIKES

    def on_sample(
        self,
        signal: Signal,
        started: float,
        rtt: float,
        now: float,
        in_flight: int,
        sent_with: int | None = None,
    ) -> None:
        """Update the limit with one finished attempt.

        ``started``: when it was sent (same clock as ``now``); ``in_flight``: requests still
        in flight to this endpoint, this one excluded; ``sent_with``: requests in flight when
        it was sent, this one included.
        """
        if signal is Signal.NONE:
            return
        if signal is Signal.OK:
            self._observe_rtt(rtt)
            if not self._latency_congested():
                if in_flight + 1 >= self.limit / 2:  # only grow a limit that is in use
                    self.limit += 1.0 if self.slow_start else 1.0 / self.limit
                    self.limit = min(self.limit, float(self.ceiling))
                return
        if started >= self._cut_at:  # the first sign of this congestion: cut
            load = min(self.limit, float(sent_with)) if sent_with else self.limit
        elif sent_with and sent_with * BACKOFF < self.limit:
            load = float(sent_with)  # sent before the cut, but it shows a lower capacity
        else:
            return  # sent before the last cut: the cut already answered it
        self.slow_start = False
        self.limit = max(float(self.floor), min(self.limit, load * BACKOFF))
        self._cut_at = now
