"""The delivery scheduler: a queue per endpoint, fair shares of the worker, and parking.

Every job is handed to :meth:`Scheduler.submit`, which never waits: the job joins its
endpoint's queue (one webhook URL: two webhooks on one host are separate endpoints), or is
*parked* (written to ``deliveries.parked`` by the ``park`` callback, to come back later) when it
cannot be sent soon. A caller learns that a job is done with through its ticket's ``settle``
callback, called exactly once: after the job was sent and routed (delivered, on a retry tier,
dead-lettered) or parked. The ingest agent acknowledges an event once all its jobs settled, so
no agent ever waits on one endpoint's capacity and custody is kept.

- **A skip is not a try.** Only :meth:`send` makes a real HTTP attempt, and only it spends one
  of the job's tries. An endpoint that is full, an open circuit or a rate limit parks the job
  with its attempt count unchanged.
- **Per-endpoint concurrency** is adaptive (:mod:`app.delivery.limiter`); the circuit breaker
  (:mod:`app.delivery.circuit`) stops sending to an endpoint that keeps failing, and the jobs
  of an open circuit are parked until it half-opens.
- **Fairness**: at most ``max_in_flight`` requests in the whole worker; when that is the limit,
  ready endpoints take turns one request at a time (round robin: deficit round robin with equal
  costs), so an endpoint with a backlog cannot starve one with a trickle.
- **Bounded waits in memory**: a queued job holds its event's offset, and so every later
  offset of its partition, uncommitted. A job is queued only if its endpoint should reach it
  within ``queue_seconds`` at its current pace; one that has waited longer is parked. A stalled
  endpoint (hung: nothing finishes) therefore keeps at most its requests in flight and a few
  seconds of jobs in memory.
- **Rate limits** reserve each job's start slot, ``1 / rate`` apart; a slot further away than
  ``rate_max_wait`` parks the job *until its slot*, keeping the reservation, so a burst is parked
  once per job (re-parking a job until a later slot made a burst of 1,000 at 1/s write
  ~250,000 parked records).

- **Ordering by key**: a ticket with an ``ordering_key`` joins its lane (webhook and record
  key); only the lane's head is queued, the next one after the head settled. Its retries are
  held here (``Attempted.retry_at``: it waits in the endpoint's delay heap, not on a retry
  tier, which would let later jobs of its key overtake it), and it is never parked: its event
  stays unacknowledged until it is delivered or dead-lettered, so after a crash or a rebalance
  the input topic gives the lane back in order.
- **Batching**: for a ticket with ``batch_max``, a request carries up to that many queued
  tickets of its endpoint (one batch ticket, its ``members``), sent when full or when the
  oldest has waited ``batch_wait``; it counts as one request for the limit and the rate.

Pure asyncio: no Faust, no aiohttp, no Kafka. The clock and randomness are injectable.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import random
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import Enum, StrEnum

from app.delivery.circuit import Circuit, State
from app.delivery.limiter import AdaptiveLimit, Signal
from app.delivery.rate_limit import RateLimiter
from app.model.records import AttemptResult, DeliveryJob

log = logging.getLogger(__name__)

#: A new endpoint's round trip is guessed at this until one is measured.
RTT_GUESS = 0.1
#: Idle endpoints whose learned limits are kept (least recently used beyond that are forgotten).
MAX_IDLE_ENDPOINTS = 10_000
#: How often stalled queues are checked for jobs that waited too long.
SWEEP_INTERVAL = 1.0
#: Least time between two offers of room to an endpoint's parked jobs.
ROOM_INTERVAL = 0.2


class ParkReason(StrEnum):
    RATE_LIMIT = "rate limit"
    CIRCUIT_OPEN = "circuit open"
    BUSY = "busy"
    STOPPING = "worker stopping"


class CircuitEffect(Enum):
    """What an attempt says to the circuit breaker."""

    SUCCESS = "success"
    FAILURE = "failure"
    NEUTRAL = "neutral"


@dataclass(frozen=True)
class Attempted:
    """What :data:`Send` reports about the attempt it made (or did not make)."""

    signal: Signal
    circuit: CircuitEffect
    rtt: float = 0.0
    #: A held (ordered) ticket that failed and retries at this unix time; None: settled.
    retry_at: float | None = None


#: No request was made (the job was dead-lettered before sending, or refused by policy).
NOTHING_SENT = Attempted(Signal.NONE, CircuitEffect.NEUTRAL)


@dataclass(eq=False)
class Ticket:
    """One job on its way: what to send, and what to do once it settled."""

    job: DeliveryJob
    history: list[AttemptResult]
    stage: str
    endpoint: str  # the queue it joins: webhook id and URL
    settle: Callable[[], None]  # called exactly once, when the job is routed or parked
    url: str = ""  # where it goes (for the attempt log of a parking)
    rate: float | None = None  # the webhook's rate limit, per second
    stale: Callable[[], bool] | None = None  # True once its event is no longer ours to send
    parks: int = 0  # how often it was parked before (backs off re-parking)
    slot: float | None = None  # its reserved rate-limit start (unix time)
    slot_epoch: str | None = None  # the scheduler that reserved it
    queued_at: float = 0.0
    sent_with: int = 0  # requests in flight to its endpoint when it was sent, itself included
    ordering_key: str | None = None  # its lane (webhook and record key), when ordered
    not_before: float = 0.0  # a held retry waits until then
    batch_max: int = 0  # >0: its webhook batches up to this many per request
    batch_wait: float = 0.0  # seconds the oldest may wait for a batch to fill
    pace: float | None = None  # a batching webhook's rate limit: batches start 1 / pace apart
    members: list[Ticket] | None = None  # a batch made here: the tickets it carries

    @property
    def webhook_id(self) -> str:
        return self.job.webhook_id

    @property
    def held(self) -> bool:
        """Ordered (or a batch of ordered tickets): retries wait here, it is never parked."""
        return self.ordering_key is not None or any(m.held for m in self.members or ())


#: Makes one real attempt of a ticket's job and routes the outcome (retry tier, dead letter,
#: attempt record); never raises for a network problem.
Send = Callable[[Ticket], Awaitable[Attempted]]
#: Writes the ticket's job to the parking topic, due at the given unix time, with the reason.
Park = Callable[[Ticket, float, ParkReason, str], None]


@dataclass(eq=False)
class _Endpoint:
    key: str
    webhook_id: str
    limit: AdaptiveLimit
    circuit: Circuit
    queue: deque[Ticket] = field(default_factory=deque)
    #: Held tickets waiting for their retry time: (due, seq, ticket).
    delayed: list[tuple[float, int, Ticket]] = field(default_factory=list)
    in_flight: int = 0
    in_ring: bool = False
    timer: asyncio.TimerHandle | None = None
    timer_at: float = 0.0
    last_done: float = 0.0  # when a request last finished (or the first was sent)
    room_offered: float = 0.0
    #: Its last finished request succeeded (a new endpoint is presumed healthy): only then
    #: are parked jobs offered its room early (a hung one's would only time out).
    answering: bool = True

    @property
    def busy(self) -> bool:
        return bool(self.queue) or bool(self.delayed) or self.in_flight > 0


@dataclass(frozen=True)
class EndpointView:
    """One endpoint as :meth:`Scheduler.snapshot` shows it (for metrics: no URL, which may
    carry a token in its query)."""

    webhook_id: str
    limit: int
    in_flight: int
    queued: int
    circuit: str


def _production_order(ticket: Ticket) -> tuple[str, int, int]:
    source = ticket.job.source
    return (source.topic, source.partition, source.offset)


def _nothing() -> None:
    return None


class Scheduler:
    def __init__(
        self,
        *,
        send: Send,
        park: Park,
        max_in_flight: int,
        endpoint_floor: int,
        endpoint_ceiling: int,
        endpoint_initial: int,
        circuit_threshold: int,
        circuit_cooldown: float,
        queue_seconds: float,
        max_queued: int,
        park_max: float,
        rate_max_wait: float = 1.0,
        clock: Callable[[], float] = time.time,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self._send = send
        self._park_job = park
        self._max_in_flight = max_in_flight
        self._floor, self._ceiling, self._initial = (
            endpoint_floor,
            endpoint_ceiling,
            endpoint_initial,
        )
        self._circuit_threshold, self._cooldown = circuit_threshold, circuit_cooldown
        self._queue_seconds = queue_seconds
        self._max_queued = max_queued
        self._park_max = max(park_max, circuit_cooldown)
        self._rates = RateLimiter(max_wait=rate_max_wait)
        self._clock, self._rng = clock, rng
        #: Identifies the rate-limit slots this scheduler reserved (a restart reserves anew).
        self.epoch = uuid.uuid4().hex
        self._endpoints: dict[str, _Endpoint] = {}
        self._idle: OrderedDict[str, None] = OrderedDict()
        self._ring: deque[_Endpoint] = deque()
        self._lanes: dict[str, deque[Ticket]] = {}
        self._seq = itertools.count()
        self._in_flight = 0
        self._queued = 0
        self._stopping = False
        self._room = asyncio.Event()
        self._room.set()
        self._no_requests = asyncio.Event()
        self._no_requests.set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.TimerHandle | None = None
        #: Called with a webhook id when its endpoint's circuit closes: parked jobs may go.
        self.on_recovered: list[Callable[[str], None]] = []
        #: Called with a webhook id and how many more jobs its endpoint can queue, when its
        #: queue has drained below half its bound: jobs parked while it was busy may come back
        #: now instead of at their guessed time (a slow endpoint stays busy, none re-parked).
        self.on_room: list[Callable[[str, int], object]] = []
        self.parked_total = 0

    # -- reads -------------------------------------------------------------------------------
    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def queued(self) -> int:
        return self._queued

    def snapshot(self, top: int = 10) -> list[EndpointView]:
        """The ``top`` busiest endpoints (queued + in flight), busiest first."""
        now = self._clock()
        busiest = sorted(
            (e for e in self._endpoints.values() if e.busy),
            key=lambda e: len(e.queue) + e.in_flight,
            reverse=True,
        )[:top]
        return [
            EndpointView(
                e.webhook_id, e.limit.current, e.in_flight, len(e.queue), e.circuit.state(now).value
            )
            for e in busiest
        ]

    def limits(self) -> list[int]:
        """The current limit of every endpoint the scheduler knows (for a histogram)."""
        return [e.limit.current for e in self._endpoints.values()]

    # -- submitting --------------------------------------------------------------------------
    async def room(self) -> None:
        """Wait while the worker holds ``max_queued`` jobs in memory (worker-wide backpressure:
        per-endpoint queues are bounded by time, this bounds them all)."""
        while self._queued >= self._max_queued:
            self._room.clear()
            await self._room.wait()

    def submit(self, ticket: Ticket) -> None:
        """Queue ``ticket`` on its endpoint, or park it; never waits."""
        now = self._clock()
        if self._stopping:
            self._park(ticket, now, ParkReason.STOPPING, "the worker is stopping")
            return
        endpoint = self._endpoint(ticket.endpoint, ticket.webhook_id)
        if ticket.ordering_key is not None:
            lane = self._lanes.setdefault(ticket.ordering_key, deque())
            lane.append(ticket)
            if len(lane) == 1:  # the lane's head: it goes now; the others after it settled
                self._enqueue(endpoint, ticket, now)
            return
        state = endpoint.circuit.state(now)
        if state is State.OPEN:
            due = self._circuit_due(endpoint, ticket, now)
            self._park(ticket, due, ParkReason.CIRCUIT_OPEN, self._circuit_detail(endpoint))
            return
        if ticket.rate is not None:
            if ticket.slot is None or ticket.slot_epoch != self.epoch:  # not ours: reserve
                ticket.slot = self._rates.reserve(ticket.webhook_id, ticket.rate, now)
                ticket.slot_epoch = self.epoch
            if ticket.slot - now > self._rates.max_wait:
                detail = f"next start slot in {ticket.slot - now:.1f} s at {ticket.rate:g}/s"
                self._park(ticket, ticket.slot, ParkReason.RATE_LIMIT, detail)
                return
        ahead = self._requests_ahead(endpoint, ticket)
        wait = self._expected_wait(endpoint, ahead, now)
        if ahead > endpoint.limit.current and wait > self._queue_seconds:
            self._park_busy(endpoint, ticket, wait, now)
            return
        self._enqueue(endpoint, ticket, now)

    @staticmethod
    def _requests_ahead(endpoint: _Endpoint, ticket: Ticket) -> int:
        """The requests it takes to send the queue and ``ticket``: a batched endpoint sends up
        to ``batch_max`` of its jobs per request."""
        per_request = max(1, ticket.batch_max)
        return -(-(len(endpoint.queue) + 1) // per_request)

    def _enqueue(self, endpoint: _Endpoint, ticket: Ticket, now: float) -> None:
        """Queue a ticket on its endpoint (held ones wait in its delay heap until due)."""
        if ticket.ordering_key is not None and ticket.rate is not None and ticket.slot is None:
            ticket.slot = self._rates.reserve(ticket.webhook_id, ticket.rate, now)  # waits here
            ticket.slot_epoch = self.epoch
        due = max(ticket.not_before, ticket.slot or 0.0) if ticket.held else ticket.not_before
        if due > now:
            heapq.heappush(endpoint.delayed, (due, next(self._seq), ticket))
            self._wake_at(endpoint, due)
            return
        ticket.queued_at = ticket.queued_at or now
        endpoint.queue.append(ticket)
        self._queued += 1
        self._ensure_sweeper()
        self._make_ready(endpoint)
        self._pump()

    def _release_delayed(self, endpoint: _Endpoint, now: float) -> None:
        """Move the held tickets that are due to the front of the queue: they are the oldest."""
        delayed = endpoint.delayed
        due: list[Ticket] = []
        while delayed and delayed[0][0] <= now:
            due.append(heapq.heappop(delayed)[2])
        for ticket in reversed(due):
            endpoint.queue.appendleft(ticket)
            self._queued += 1
        if delayed:
            self._wake_at(endpoint, delayed[0][0])

    # -- stopping ----------------------------------------------------------------------------
    async def stop(self, timeout: float) -> bool:
        """Graceful stop: start nothing more, let the requests in flight finish (up to
        ``timeout``), then park every job still queued. False if requests were still in flight
        (their events stay unacknowledged and are read again after the restart)."""
        self._stopping = True
        try:
            await asyncio.wait_for(self._no_requests.wait(), timeout)
            finished = True
        except TimeoutError:
            finished = False
        now = self._clock()
        for endpoint in list(self._endpoints.values()):
            while endpoint.queue:
                self._queued -= 1
                ticket = endpoint.queue.popleft()
                if not ticket.held:  # a held one stays unacknowledged: read again, in order
                    self._park(ticket, now, ParkReason.STOPPING, "the worker stopped")
        return finished

    # -- endpoints ---------------------------------------------------------------------------
    def _endpoint(self, key: str, webhook_id: str) -> _Endpoint:
        endpoint = self._endpoints.get(key)
        if endpoint is None:
            endpoint = self._endpoints[key] = _Endpoint(
                key,
                webhook_id,
                AdaptiveLimit(self._floor, self._ceiling, self._initial),
                Circuit(self._circuit_threshold, self._cooldown),
                last_done=self._clock(),
            )
        self._idle.pop(key, None)
        return endpoint

    def _forget_if_idle(self, endpoint: _Endpoint, now: float) -> None:
        if endpoint.busy or endpoint.circuit.state(now) is not State.CLOSED:
            return
        self._idle[endpoint.key] = None
        self._idle.move_to_end(endpoint.key)
        while len(self._idle) > MAX_IDLE_ENDPOINTS:
            key, _ = self._idle.popitem(last=False)
            old = self._endpoints.get(key)
            if old is not None and not old.busy:
                del self._endpoints[key]

    def _expected_wait(self, endpoint: _Endpoint, position: int, now: float) -> float:
        """Seconds until the job at ``position`` of the queue starts, at the endpoint's pace:
        its limit per round trip, doubling per round trip while in slow start (a new
        endpoint's burst drains in a few round trips, not at its initial limit)."""
        rtt = endpoint.limit.smoothed_rtt or RTT_GUESS
        if self._stalled(endpoint, rtt, now):
            return float("inf")
        if endpoint.circuit.state(now) is State.HALF_OPEN:
            return position * rtt  # one probe at a time
        ceiling = endpoint.limit.ceiling
        per_trip = float(endpoint.limit.current)
        trips = 0.0
        remaining = float(position)
        while endpoint.limit.slow_start and remaining > per_trip and per_trip < ceiling:
            remaining -= per_trip
            trips += 1
            per_trip = min(2 * per_trip, ceiling)
        return (trips + remaining / per_trip) * rtt

    # -- parking -----------------------------------------------------------------------------
    def _park(self, ticket: Ticket, due: float, reason: ParkReason, detail: str) -> None:
        try:
            self._park_job(ticket, due, reason, detail)
        except Exception:
            # Not parked, so not settled: its record stays unacknowledged and holds the
            # commit; it is read again after a restart or rebalance (settling it here would
            # commit past a job that is nowhere).
            log.exception("delivery %s could not be parked", ticket.job.delivery_id)
            return
        ticket.parks += 1
        self.parked_total += 1
        ticket.settle()

    def _backoff(self, base: float, parks: int) -> float:
        """A re-parked job waits twice as long each time, up to ``park_max``, jittered."""
        delay = min(self._park_max, base * 2.0 ** min(parks, 16))
        return delay * (0.5 + 0.5 * self._rng())

    def _circuit_due(self, endpoint: _Endpoint, ticket: Ticket, now: float) -> float:
        # Spread over the cooldown after it half-opens, so parked jobs do not all come back
        # at once to an endpoint that may still be down.
        return max(endpoint.circuit.open_until, now) + self._backoff(self._cooldown, ticket.parks)

    def _circuit_detail(self, endpoint: _Endpoint) -> str:
        return f"circuit open after {endpoint.circuit.rounds} failing rounds"

    def _park_busy(self, endpoint: _Endpoint, ticket: Ticket, wait: float, now: float) -> None:
        base = min(max(wait if wait != float("inf") else self._park_max, 1.0), self._park_max)
        detail = (
            f"{endpoint.in_flight} requests in flight (limit {endpoint.limit.current}), "
            f"{len(endpoint.queue)} queued"
        )
        self._park(ticket, now + self._backoff(base, ticket.parks), ParkReason.BUSY, detail)

    def _park_queue(self, endpoint: _Endpoint, now: float) -> None:
        """Park every queued job of an endpoint whose circuit just opened."""
        detail = self._circuit_detail(endpoint)
        kept: deque[Ticket] = deque()
        while endpoint.queue:
            ticket = endpoint.queue.popleft()
            if ticket.held:
                kept.append(ticket)  # waits for the circuit here: it cannot leave its lane
                continue
            self._queued -= 1
            due = self._circuit_due(endpoint, ticket, now)
            self._park(ticket, due, ParkReason.CIRCUIT_OPEN, detail)
        endpoint.queue = kept
        if kept:
            self._wake_at(endpoint, endpoint.circuit.open_until)
        self._update_room()

    def _ensure_sweeper(self) -> None:
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().call_later(SWEEP_INTERVAL, self._sweep)

    def _sweep(self) -> None:
        """Park the jobs that waited longer than ``queue_seconds`` (their endpoint is slower
        than its pace promised, or stalled), oldest first."""
        self._sweeper = None
        now = self._clock()
        for endpoint in list(self._endpoints.values()):
            queue = endpoint.queue
            while queue and not queue[0].held:
                # A batch's first job waits up to its max wait for the batch to fill, by design.
                if now - queue[0].queued_at <= self._queue_seconds + queue[0].batch_wait:
                    break
                ticket = queue.popleft()
                self._queued -= 1
                wait = self._expected_wait(endpoint, self._requests_ahead(endpoint, ticket), now)
                self._park_busy(endpoint, ticket, wait, now)
        self._update_room()
        if self._queued:
            self._ensure_sweeper()

    # -- dispatching -------------------------------------------------------------------------
    def _make_ready(self, endpoint: _Endpoint) -> None:
        if not endpoint.in_ring and endpoint.queue:
            endpoint.in_ring = True
            self._ring.append(endpoint)

    def _start_at(self, endpoint: _Endpoint, now: float) -> float | None:
        """When the head of ``endpoint``'s queue may start: ``now``, later (a rate slot), or
        None (nothing queued, or no capacity until a request finishes)."""
        if not endpoint.queue:
            return None
        state = endpoint.circuit.state(now)
        if state is State.OPEN:
            return endpoint.circuit.open_until
        allowed = 1 if state is State.HALF_OPEN else endpoint.limit.current
        if endpoint.in_flight >= allowed:
            return None
        head = endpoint.queue[0]
        at = now
        if head.rate is not None:
            at = max(at, head.slot or now, self._rates.start_after(head.webhook_id))
        if head.pace is not None:
            at = max(at, self._rates.start_after(head.webhook_id))
        filling = head.batch_max > 1 and head.members is None
        if filling and len(endpoint.queue) < head.batch_max:
            at = max(at, head.queued_at + head.batch_wait)  # wait for the batch to fill
        return at

    def _wake_at(self, endpoint: _Endpoint, at: float) -> None:
        if endpoint.timer is not None and endpoint.timer_at <= at:
            return
        if endpoint.timer is not None:
            endpoint.timer.cancel()
        loop = asyncio.get_running_loop()
        endpoint.timer_at = at
        endpoint.timer = loop.call_later(max(0.0, at - self._clock()), self._timer_fired, endpoint)

    def _timer_fired(self, endpoint: _Endpoint) -> None:
        endpoint.timer = None
        if endpoint.delayed:
            self._release_delayed(endpoint, self._clock())
        self._make_ready(endpoint)
        self._pump()

    def _pump(self) -> None:
        """Start requests, one per ready endpoint in turn, while the worker has capacity."""
        if self._stopping:
            return  # stop() parks what is queued
        now = self._clock()
        ring = self._ring
        while ring and self._in_flight < self._max_in_flight:
            endpoint = ring.popleft()
            endpoint.in_ring = False
            at = self._start_at(endpoint, now)
            if at is None:
                continue  # a finishing request makes it ready again
            if at > now:
                self._wake_at(endpoint, at)
                continue
            ticket = self._next_ticket(endpoint)
            if ticket is not None:
                self._start(endpoint, ticket, now)
            self._make_ready(endpoint)
        self._update_room()

    def _next_ticket(self, endpoint: _Endpoint) -> Ticket | None:
        """The head of the queue, or a batch of up to ``batch_max`` queued tickets; tickets
        whose record is no longer this worker's are dropped unsent on the way."""
        queue = endpoint.queue
        chosen: list[Ticket] = []
        limit = max(1, queue[0].batch_max) if queue[0].members is None else 1
        while queue and len(chosen) < limit:
            if chosen and (queue[0].members is not None or queue[0].batch_max <= 1):
                break  # a pre-made batch (a retry) or an unbatched ticket goes alone
            ticket = queue.popleft()
            self._queued -= 1
            if ticket.stale is not None and ticket.stale():
                self._drop_stale(ticket)
                continue
            chosen.append(ticket)
        if not chosen:
            return None
        first = chosen[0]
        if len(chosen) == 1 and (first.batch_max <= 1 or first.members is not None):
            return first  # the common case: one request, one job, nothing to order
        # A batch's members in the order they were produced: a job that came back from
        # parking is queued behind later ones, and a key's events are in one partition.
        chosen.sort(key=_production_order)
        first = chosen[0]
        return Ticket(
            job=first.job,
            history=[],
            stage=first.stage,
            endpoint=first.endpoint,
            settle=_nothing,  # its members settle one by one
            url=first.url,
            batch_max=first.batch_max,
            pace=first.pace,
            members=chosen,
        )

    def _drop_stale(self, ticket: Ticket) -> None:
        """A rebalance ended its record's generation: the partition's owner (another worker,
        or this one again: every partition is read again from its committed offset) reads it
        again and sends it, in order if ordered. The lane keeps only the tickets of
        the current generation, already in order behind the dropped one; its new head goes."""
        ticket.settle()
        key = ticket.ordering_key
        lane = self._lanes.get(key) if key is not None else None
        if key is None or not lane or lane[0] is not ticket:
            return
        current: deque[Ticket] = deque()
        for queued in list(lane)[1:]:
            if queued.stale is not None and queued.stale():
                queued.settle()  # never queued: nothing else will settle it
            else:
                current.append(queued)
        if not current:
            del self._lanes[key]
            return
        self._lanes[key] = current
        # Soon, not now: this runs inside the dispatch loop, which must not re-enter itself.
        asyncio.get_running_loop().call_soon(self._enqueue_lane_head, key, current[0])

    def _enqueue_lane_head(self, key: str, head: Ticket) -> None:
        lane = self._lanes.get(key)
        if lane and lane[0] is head:
            self._enqueue(self._endpoint(head.endpoint, head.webhook_id), head, self._clock())

    def _update_room(self) -> None:
        if self._queued < self._max_queued:
            self._room.set()

    def _start(self, endpoint: _Endpoint, ticket: Ticket, now: float) -> None:
        if not endpoint.in_flight:
            endpoint.last_done = now  # "nothing finished for a while" counts from here
        endpoint.in_flight += 1
        ticket.sent_with = endpoint.in_flight
        self._in_flight += 1
        self._no_requests.clear()
        rate = ticket.rate if ticket.rate is not None else ticket.pace
        if rate is not None:
            self._rates.started(ticket.webhook_id, rate, now)
        task = asyncio.ensure_future(self._run(endpoint, ticket, now))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, endpoint: _Endpoint, ticket: Ticket, started: float) -> None:
        attempted = NOTHING_SENT
        try:
            attempted = await self._send(ticket)
        except Exception:  # send routes every outcome itself; a bug must not stop the queue
            log.exception("delivery %s failed unexpectedly", ticket.job.delivery_id)
        finally:
            endpoint.in_flight -= 1
            self._in_flight -= 1
            if not self._in_flight:
                self._no_requests.set()
            now = self._clock()
            endpoint.last_done = now
            self._learn(endpoint, attempted, started, now, ticket.sent_with)
            if attempted.retry_at is not None and ticket.held and not self._stopping:
                ticket.not_before = attempted.retry_at  # waits here, its lane held behind it
                self._enqueue(endpoint, ticket, now)
            else:
                self._settled(ticket, now)
            self._make_ready(endpoint)
            self._pump()
            self._offer_room(endpoint, now)
            self._forget_if_idle(endpoint, now)

    def _settled(self, ticket: Ticket, now: float) -> None:
        """A ticket (or each member of a batch) is done with: settle it and let its lane's
        next ticket go."""
        for member in ticket.members or [ticket]:
            member.settle()
            key = member.ordering_key
            lane = self._lanes.get(key) if key is not None else None
            if key is not None and lane and lane[0] is member:
                lane.popleft()
                if lane:
                    nxt = lane[0]
                    self._enqueue(self._endpoint(nxt.endpoint, nxt.webhook_id), nxt, now)
                else:
                    del self._lanes[key]

    def room_for(self, key: str) -> int:
        """How many more jobs endpoint ``key`` (a ticket's ``endpoint``) would queue now rather
        than park: 0 while its circuit is not closed, it is stalled, its last request failed,
        or the worker stops. A parked job read back while its endpoint has room goes at once,
        not at its guessed time (after a restart nothing else would wake it early: no request
        of its endpoint finishes)."""
        if self._stopping:
            return 0
        now = self._clock()
        endpoint = self._endpoints.get(key)
        if endpoint is None:
            allowance = self._allowance(self._initial, RTT_GUESS)
            return max(0, min(allowance, self._max_queued - self._queued))
        return max(0, self._room_of(endpoint, now)[0])

    def _stalled(self, endpoint: _Endpoint, rtt: float, now: float) -> bool:
        """Requests in flight, and nothing finished for a while (a hung endpoint)."""
        return bool(endpoint.in_flight) and now - endpoint.last_done > max(
            self._queue_seconds, 2 * rtt
        )

    def _allowance(self, limit: int, rtt: float) -> int:
        """The jobs an endpoint sends within ``queue_seconds`` at ``limit`` per round trip."""
        return max(limit, int(limit / rtt * self._queue_seconds))

    def _room_of(self, endpoint: _Endpoint, now: float) -> tuple[int, int]:
        """(room, allowance): the jobs ``endpoint`` can still queue, of the ``allowance`` it
        sends within ``queue_seconds`` at its pace; no room unless it is healthy."""
        if not endpoint.answering or endpoint.circuit.state(now) is not State.CLOSED:
            return 0, 0
        rtt = endpoint.limit.smoothed_rtt or RTT_GUESS
        if self._stalled(endpoint, rtt, now):
            return 0, 0  # what it was given is not coming back
        allowance = self._allowance(endpoint.limit.current, rtt)
        return min(allowance, self._max_queued - self._queued) - len(endpoint.queue), allowance

    def _offer_room(self, endpoint: _Endpoint, now: float) -> None:
        """Tell the listeners an endpoint has room (at most every ``ROOM_INTERVAL`` while it is
        busy; always once it went idle, or its parked jobs would wait for their guessed time)."""
        if not self.on_room or self._stopping:
            return
        if endpoint.busy and now - endpoint.room_offered < ROOM_INTERVAL:
            return
        room, allowance = self._room_of(endpoint, now)
        if room <= 0 or room < allowance // 2:
            return
        endpoint.room_offered = now
        for listener in self.on_room:
            listener(endpoint.webhook_id, room)

    def _learn(
        self, endpoint: _Endpoint, attempted: Attempted, started: float, now: float, sent_with: int
    ) -> None:
        endpoint.limit.on_sample(
            attempted.signal, started, attempted.rtt, now, endpoint.in_flight, sent_with
        )
        if attempted.signal is not Signal.NONE:
            endpoint.answering = attempted.signal is Signal.OK
        circuit = endpoint.circuit
        if attempted.circuit is CircuitEffect.SUCCESS:
            if circuit.on_success():
                log.info("endpoint %s recovered: circuit closed", endpoint.key)
                for listener in self.on_recovered:
                    listener(endpoint.webhook_id)
        elif attempted.circuit is CircuitEffect.FAILURE and circuit.on_failure(started, now):
            log.warning(
                "endpoint %s: circuit open for %.0f s after %d failing rounds",
                endpoint.key,
                self._cooldown,
                circuit.rounds,
            )
            self._park_queue(endpoint, now)
