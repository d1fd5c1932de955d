"""The delivery scheduler, its adaptive limit and its circuit breaker, without a broker.

``send`` is a coroutine of the test that plays an endpoint (fast, slow, shedding load, dead,
hung); ``park`` records what would go to ``deliveries.parked``. Orders and counts are asserted,
never timings.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from app.delivery.circuit import Circuit, State
from app.delivery.limiter import AdaptiveLimit, Signal
from app.delivery.scheduler import (
    Attempted,
    CircuitEffect,
    ParkReason,
    Scheduler,
    Ticket,
)
from app.model.events import EventName
from app.model.records import DeliveryJob, SourceRef

OK = Attempted(Signal.OK, CircuitEffect.SUCCESS, 0.001)
CONGESTED = Attempted(Signal.CONGESTED, CircuitEffect.FAILURE, 0.001)
_ids = itertools.count()


def job(webhook: str = "w") -> DeliveryJob:
    n = next(_ids)
    return DeliveryJob(
        delivery_id=f"msg_{n}",
        webhook_id=webhook,
        account_id="a",
        event=EventName.MESSAGE_SENT,
        payload={"n": n},
        created_at=0.0,
        source=SourceRef(topic="t", partition=0, offset=n),
    )


@dataclass
class Harness:
    """A scheduler with recorded sends, parks and settles."""

    endpoint: Callable[[Ticket], Awaitable[Attempted]]
    options: dict[str, float] = field(default_factory=dict)
    sent: list[str] = field(default_factory=list)
    parked: list[tuple[str, ParkReason, float]] = field(default_factory=list)
    settled: Counter[str] = field(default_factory=Counter)
    scheduler: Scheduler = field(init=False)

    def __post_init__(self) -> None:
        async def send(ticket: Ticket) -> Attempted:
            self.sent.append(ticket.job.delivery_id)
            return await self.endpoint(ticket)

        def park(ticket: Ticket, due: float, reason: ParkReason, detail: str) -> None:
            self.parked.append((ticket.job.delivery_id, reason, due))

        options = {
            "max_in_flight": 1000,
            "endpoint_floor": 1,
            "endpoint_ceiling": 256,
            "endpoint_initial": 8,
            "circuit_threshold": 3,
            "circuit_cooldown": 0.3,
            "queue_seconds": 5.0,
            "max_queued": 100_000,
            "park_max": 1.0,
            **self.options,
        }
        self.scheduler = Scheduler(send=send, park=park, **options)  # type: ignore[arg-type]

    def submit(
        self, webhook: str = "w", item: DeliveryJob | None = None, **fields: object
    ) -> Ticket:
        """Submit ``item`` (a new job by default) to ``webhook``'s endpoint, with ``fields``."""
        item = item if item is not None else job(webhook)
        ticket = Ticket(
            job=item,
            history=[],
            stage="deliver",
            endpoint=f"{webhook} https://{webhook}.example/",
            settle=lambda: self.settled.update([item.delivery_id]),
            **fields,  # type: ignore[arg-type]
        )
        self.scheduler.submit(ticket)
        return ticket

    async def until(self, check: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not check():
            assert asyncio.get_running_loop().time() < deadline, "condition not reached"
            await asyncio.sleep(0.005)

    def settled_once(self) -> bool:
        return all(count == 1 for count in self.settled.values())


# -- the adaptive limit ---------------------------------------------------------------------
def test_slow_start_doubles_per_round_trip_then_a_cut_ends_it() -> None:
    limit = AdaptiveLimit(floor=1, ceiling=256, initial=8)
    now = 0.0
    for _ in range(8):  # one round trip of 8 full-pipe successes
        limit.on_sample(Signal.OK, now, 1.0, now + 1, in_flight=7)
    assert limit.current == 16
    limit.on_sample(Signal.CONGESTED, now + 1, 1.0, now + 2, in_flight=15)
    assert limit.current == 14 and not limit.slow_start  # 16 x 0.9
    before = limit.limit
    for _ in range(14):
        limit.on_sample(Signal.OK, now + 2, 1.0, now + 3, in_flight=13)
    assert 14 < limit.limit < before + 1.01  # one per round trip from now on


def test_one_cut_per_window_however_many_requests_fail_together() -> None:
    limit = AdaptiveLimit(floor=1, ceiling=256, initial=40)
    for _ in range(40):  # 40 concurrent requests, all sent at t=0, all 503 at t=1
        limit.on_sample(Signal.CONGESTED, 0.0, 1.0, 1.0, in_flight=39)
    assert limit.current == 36


def test_a_failure_cuts_to_the_concurrency_it_was_sent_with() -> None:
    limit = AdaptiveLimit(floor=1, ceiling=256, initial=64)
    # 64 in flight; the endpoint sheds above 20: the 21st..64th get 503, sent with 21..64.
    for sent_with in range(64, 20, -1):
        limit.on_sample(Signal.CONGESTED, 0.0, 0.05, 0.05, in_flight=63, sent_with=sent_with)
    assert limit.current == 18  # 21 x 0.9, in one window, not ten
    limit.on_sample(Signal.CONGESTED, 0.0, 0.05, 0.06, in_flight=0, sent_with=40)
    assert limit.current == 18  # an older, higher one does not undo it


def test_an_unused_limit_does_not_grow_and_the_ceiling_and_floor_hold() -> None:
    limit = AdaptiveLimit(floor=2, ceiling=20, initial=8)
    for _ in range(100):
        limit.on_sample(Signal.OK, 0.0, 0.01, 0.01, in_flight=0)  # one request at a time
    assert limit.current == 8
    for _ in range(100):
        limit.on_sample(Signal.OK, 0.0, 0.01, 0.01, in_flight=19)
    assert limit.current == 20
    for n in range(100):
        limit.on_sample(Signal.CONGESTED, float(n), 0.01, float(n) + 0.5, in_flight=0)
    assert limit.current == 2


def test_rising_latency_cuts_but_a_steady_slow_endpoint_keeps_growing() -> None:
    steady = AdaptiveLimit(floor=1, ceiling=256, initial=8)
    for n in range(400):
        steady.on_sample(Signal.OK, float(n), 1.0, float(n) + 1, in_flight=int(steady.limit))
    assert steady.current == 256  # 1 s every time is no congestion
    queuing = AdaptiveLimit(floor=1, ceiling=256, initial=64, slow_start=False)
    for _ in range(200):
        queuing.on_sample(Signal.OK, 0.0, 0.2, 0.2, in_flight=63)
    peak = queuing.limit
    for n in range(20):  # the same endpoint now takes 1.5 s: it is queuing our requests
        queuing.on_sample(Signal.OK, float(n + 1), 1.5, float(n) + 2.5, in_flight=63)
    assert queuing.limit < peak * 0.9


def test_a_healthy_endpoint_with_log_normal_latencies_is_not_read_as_congested() -> None:
    import random

    rng = random.Random(7)  # noqa: S311 - latencies, not secrets
    limit = AdaptiveLimit(floor=1, ceiling=256, initial=16)
    for n in range(5000):  # median 250 ms, p99 about 2 s
        rtt = rng.lognormvariate(-1.386, 0.894)
        limit.on_sample(Signal.OK, n * 0.01, rtt, n * 0.01 + rtt, in_flight=int(limit.limit))
    assert limit.current >= 128


def test_a_fast_endpoint_keeps_its_limit_when_our_own_loop_adds_milliseconds() -> None:
    limit = AdaptiveLimit(floor=1, ceiling=256, initial=32, slow_start=False)
    for n in range(50):
        limit.on_sample(Signal.OK, n * 0.01, 0.001, n * 0.01, in_flight=31)
    for n in range(50):  # 1 ms -> 20 ms: 20 x baseline, but only 19 ms above it
        limit.on_sample(Signal.OK, 1 + n * 0.01, 0.02, 1 + n * 0.01, in_flight=31)
    assert limit.current >= 32


# -- the circuit ----------------------------------------------------------------------------
def test_the_circuit_counts_rounds_not_requests_and_half_opens_after_the_cooldown() -> None:
    circuit = Circuit(threshold=3, cooldown=10.0)
    for _ in range(50):  # a burst of concurrent failures, all sent at 0: one round
        circuit.on_failure(started=0.0, now=1.0)
    assert circuit.rounds == 1 and circuit.state(1.0) is State.CLOSED
    assert not circuit.on_failure(started=1.5, now=2.0)
    assert circuit.on_failure(started=2.5, now=3.0)  # the third round opens it
    assert circuit.state(5.0) is State.OPEN and not circuit.allows(5.0, in_flight=0)
    assert circuit.allows(13.0, in_flight=0) and not circuit.allows(13.0, in_flight=1)
    assert circuit.on_failure(started=13.0, now=14.0)  # a failed probe: open again
    assert circuit.state(20.0) is State.OPEN
    assert circuit.on_success() and circuit.state(30.0) is State.CLOSED


# -- the scheduler --------------------------------------------------------------------------
async def test_a_trickle_is_not_starved_by_a_backlog_when_the_worker_is_full() -> None:
    async def slow(ticket: Ticket) -> Attempted:
        await asyncio.sleep(0.01)
        return OK

    harness = Harness(slow, {"max_in_flight": 2, "endpoint_initial": 50})
    for _ in range(200):
        harness.submit("backlog")
    trickle = harness.submit("trickle")
    await harness.until(lambda: trickle.job.delivery_id in harness.sent)
    # Round robin: the trickle's one job starts within the first few, not after 200.
    assert harness.sent.index(trickle.job.delivery_id) < 4
    await harness.until(lambda: len(harness.settled) == 201)
    assert harness.settled_once() and not harness.parked


async def test_a_slow_healthy_endpoint_gets_far_more_than_its_initial_concurrency() -> None:
    in_flight, peak = 0, 0

    async def slow(ticket: Ticket) -> Attempted:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.05)
        in_flight -= 1
        return Attempted(Signal.OK, CircuitEffect.SUCCESS, 0.05)

    harness = Harness(slow)
    for _ in range(2000):
        harness.submit("slow")
    await harness.until(lambda: len(harness.settled) == 2000, timeout=30)
    assert peak > 100 and harness.settled_once() and not harness.parked


async def test_an_endpoint_that_sheds_load_above_20_settles_near_20() -> None:
    in_flight, shed, peak_late = 0, 0, 0
    done = 0

    async def shedding(ticket: Ticket) -> Attempted:
        nonlocal in_flight, shed, peak_late, done
        in_flight += 1
        if done > 500:
            peak_late = max(peak_late, in_flight)
        overloaded = in_flight > 20
        await asyncio.sleep(0.005)
        in_flight -= 1
        done += 1
        if overloaded:
            shed += 1
            return Attempted(Signal.CONGESTED, CircuitEffect.FAILURE, 0.005)
        return Attempted(Signal.OK, CircuitEffect.SUCCESS, 0.005)

    harness = Harness(shedding, {"circuit_threshold": 1000})
    for _ in range(3000):
        harness.submit("shed")
    await harness.until(lambda: len(harness.settled) == 3000, timeout=30)
    assert shed < 3000 * 0.1  # most requests succeed the first time
    assert 15 <= peak_late <= 23  # the limit settled near what the endpoint takes


async def test_a_dead_endpoint_opens_its_circuit_parks_its_jobs_and_a_probe_closes_it() -> None:
    alive = False
    recovered: list[str] = []

    async def dead(ticket: Ticket) -> Attempted:
        await asyncio.sleep(0.001)
        return OK if alive else CONGESTED

    harness = Harness(dead, {"endpoint_initial": 1, "max_in_flight": 10})
    harness.scheduler.on_recovered.append(recovered.append)
    for _ in range(20):
        harness.submit("dead")
    await harness.until(lambda: len(harness.settled) == 20)
    # Three failing rounds of one request each opened it; every other job was parked untried.
    assert len(harness.sent) == 3
    assert [reason for _, reason, _ in harness.parked] == [ParkReason.CIRCUIT_OPEN] * 17
    late = harness.submit("dead")  # while open: parked at once, not tried
    assert harness.parked[-1][:2] == (late.job.delivery_id, ParkReason.CIRCUIT_OPEN)
    alive = True
    await asyncio.sleep(0.35)  # past the cooldown: the circuit half-opens (a pause, not a wait)
    probe = harness.submit("dead")
    await harness.until(lambda: probe.job.delivery_id in harness.settled)
    assert recovered == ["dead"] and harness.settled_once()


async def test_a_hung_endpoint_keeps_a_few_seconds_of_jobs_in_memory_and_parks_the_rest() -> None:
    async def hung(ticket: Ticket) -> Attempted:
        await asyncio.sleep(3600)
        return OK

    async def fast(ticket: Ticket) -> Attempted:
        return OK

    calls: dict[str, Callable[[Ticket], Awaitable[Attempted]]] = {"hung": hung, "fast": fast}

    async def route(ticket: Ticket) -> Attempted:
        return await calls[ticket.webhook_id](ticket)

    harness = Harness(route, {"queue_seconds": 0.5, "endpoint_initial": 4})
    for _ in range(100):
        harness.submit("hung")
    await harness.until(lambda: len(harness.parked) == 96, timeout=5)  # all but the 4 in flight
    assert {reason for _, reason, _ in harness.parked} == {ParkReason.BUSY}
    fast = [harness.submit("fast").job.delivery_id for _ in range(50)]
    await harness.until(lambda: all(d in harness.settled for d in fast))
    assert all(d in harness.sent for d in fast)  # none parked: the hung endpoint takes no turns
    assert harness.scheduler.in_flight == 4  # only the hung endpoint's requests still hang


async def test_parked_jobs_are_offered_room_once_their_endpoint_goes_idle() -> None:
    """The room offer is throttled while an endpoint is busy, but never skipped when its last
    request finished: parked jobs would otherwise wait for their guessed due time."""
    gate = asyncio.Event()

    async def slow(ticket: Ticket) -> Attempted:
        await gate.wait()
        return OK

    harness = Harness(slow, {"queue_seconds": 0.5, "endpoint_initial": 4})
    offers: list[tuple[str, int]] = []
    harness.scheduler.on_room.append(lambda webhook, room: offers.append((webhook, room)))
    key = harness.submit().endpoint
    assert harness.scheduler.room_for(key) > 0
    for _ in range(99):
        harness.submit()
    await harness.until(lambda: len(harness.parked) > 0)
    gate.set()  # everything finishes at once: the offers in between are throttled
    await harness.until(lambda: harness.scheduler.in_flight == 0 and not harness.scheduler.queued)
    assert offers, "no room offered although the endpoint went idle"
    assert offers[-1][0] == "w" and offers[-1][1] == harness.scheduler.room_for(key)


async def test_no_room_for_an_endpoint_that_fails_whose_circuit_is_open_or_that_is_stalled() -> (
    None
):
    async def dead(ticket: Ticket) -> Attempted:
        return CONGESTED

    harness = Harness(dead, {"circuit_threshold": 1, "circuit_cooldown": 60.0})
    key = harness.submit("dead").endpoint
    await harness.until(lambda: bool(harness.settled))
    assert harness.scheduler.room_for(key) == 0  # its circuit is open

    answers = [CONGESTED]

    async def timing_out(ticket: Ticket) -> Attempted:
        return answers[0]

    failing = Harness(timing_out, {"circuit_threshold": 1000})
    key = failing.submit().endpoint
    await failing.until(lambda: bool(failing.settled))
    assert failing.scheduler.room_for(key) == 0  # closed circuit, but its last request failed
    answers[0] = OK
    failing.submit()
    await failing.until(lambda: len(failing.settled) == 2)
    assert failing.scheduler.room_for(key) > 0  # it answers again

    async def hung(ticket: Ticket) -> Attempted:
        await asyncio.sleep(3600)
        return OK

    stalled = Harness(hung, {"queue_seconds": 0.05})
    key = stalled.submit().endpoint
    assert stalled.scheduler.room_for(key) > 0
    await stalled.until(lambda: stalled.scheduler.room_for(key) == 0, timeout=5)


async def test_a_rate_limited_burst_is_parked_once_per_job_until_its_own_slot() -> None:
    starts: list[float] = []
    loop = asyncio.get_running_loop()

    async def record(ticket: Ticket) -> Attempted:
        starts.append(loop.time())
        return OK

    harness = Harness(record)
    harness.scheduler._rates.max_wait = 0.05  # slots more than 50 ms away are parked
    tickets = [harness.submit("paced", rate=100.0) for _ in range(50)]
    await harness.until(lambda: len(harness.settled) == 50)
    parked = {d for d, _, _ in harness.parked}
    assert 40 <= len(parked) <= 46 and len(harness.parked) == len(parked)
    assert {reason for _, reason, _ in harness.parked} == {ParkReason.RATE_LIMIT}
    # Woken at its slot, a parked job keeps its reservation: it is queued, not parked again.
    again = [t for t in tickets if t.job.delivery_id in parked]
    latest = max(t.slot or 0.0 for t in again)
    await asyncio.sleep(max(0.0, latest - time.time()))  # the park lane wakes each at its slot
    harness.settled.clear()
    for ticket in again:
        ticket.settle = lambda d=ticket.job.delivery_id: harness.settled.update([d])
        harness.scheduler.submit(ticket)
    await harness.until(lambda: len(harness.settled) == len(again), timeout=5)
    assert len(harness.parked) == len(parked)  # none parked a second time
    assert min(b - a for a, b in itertools.pairwise(starts)) >= 0.5 / 100


async def test_stop_lets_requests_in_flight_finish_and_parks_what_is_queued() -> None:
    release = asyncio.Event()

    async def held(ticket: Ticket) -> Attempted:
        await release.wait()
        return OK

    harness = Harness(held, {"endpoint_initial": 2, "max_in_flight": 2})
    for _ in range(10):
        harness.submit("held")
    await harness.until(lambda: harness.scheduler.in_flight == 2)
    stopping = asyncio.ensure_future(harness.scheduler.stop(timeout=5))
    await asyncio.sleep(0)
    release.set()
    assert await stopping
    assert len(harness.sent) == 2
    assert [r for _, r, _ in harness.parked] == [ParkReason.STOPPING] * 8
    assert len(harness.settled) == 10 and harness.settled_once()
    harness.submit("held")  # after stop: parked, never sent
    assert len(harness.sent) == 2 and harness.parked[-1][1] is ParkReason.STOPPING


async def test_a_job_whose_event_moved_to_another_worker_is_dropped_unsent() -> None:
    async def fast(ticket: Ticket) -> Attempted:
        return OK

    harness = Harness(fast, {"max_in_flight": 1, "endpoint_initial": 1})
    blocker = harness.submit("w")
    moved = harness.submit("w", stale=lambda: True)
    await harness.until(lambda: len(harness.settled) == 2)
    assert harness.sent == [blocker.job.delivery_id] and moved.job.delivery_id in harness.settled


@pytest.mark.parametrize("queued", [5, 50])
async def test_room_waits_while_the_worker_holds_max_queued_jobs(queued: int) -> None:
    release = asyncio.Event()

    async def held(ticket: Ticket) -> Attempted:
        await release.wait()
        return OK

    harness = Harness(held, {"max_queued": 10, "endpoint_initial": 1, "max_in_flight": 1})
    for _ in range(queued):
        harness.submit("w")
    waiting = asyncio.ensure_future(harness.scheduler.room())
    await asyncio.sleep(0.01)
    assert waiting.done() is (queued <= 10)
    release.set()
    await asyncio.wait_for(waiting, 5)


# -- ordered lanes and batches --------------------------------------------------------------
async def test_a_failing_head_holds_its_key_only_and_retries_here_in_order() -> None:
    failures = {"k0": 2}  # the first event of key k0 fails twice
    sent: list[tuple[str, int]] = []

    async def endpoint(ticket: Ticket) -> Attempted:
        key = ticket.ordering_key or ""
        n = int(ticket.job.payload["n"])
        sent.append((key, n))
        if key.endswith("k0") and n == 0 and failures["k0"] > 0:
            failures["k0"] -= 1
            return Attempted(
                Signal.CONGESTED, CircuitEffect.FAILURE, 0.001, retry_at=time.time() + 0.05
            )
        return OK

    harness = Harness(endpoint, {"circuit_threshold": 1000})
    for n in range(5):
        for key in ("k0", "k1"):
            item = job("w").model_copy(update={"payload": {"n": n}})
            harness.submit("w", item, ordering_key=f"w\x00{key}")
    await harness.until(lambda: len(harness.settled) == 10)
    per_key: dict[str, list[int]] = {}
    for key, n in sent:
        per_key.setdefault(key, []).append(n)
    assert per_key["w\x00k0"] == [0, 0, 0, 1, 2, 3, 4]  # two failed tries of 0, then in order
    assert per_key["w\x00k1"] == [0, 1, 2, 3, 4]
    # k1 was not held by k0's retries: all of it went before k0's first retry.
    first_retry = [i for i, (k, n) in enumerate(sent) if k.endswith("k0")][1]
    assert max(i for i, (k, _) in enumerate(sent) if k.endswith("k1")) < first_retry
    assert harness.settled_once() and not harness.parked


async def test_a_lane_read_again_after_a_rebalance_on_the_same_worker_is_sent_in_order() -> None:
    """Faust seeks a partition this worker keeps back to its committed offset: the lane then
    holds the old generation's tickets and, behind them, the same events again. The old ones
    are dropped and the new ones go, in order; none is left waiting forever."""
    release = asyncio.Event()
    generation = {"now": 1}
    sent: list[tuple[int, int]] = []

    async def endpoint(ticket: Ticket) -> Attempted:
        sent.append((ticket.job.payload["gen"], ticket.job.payload["n"]))  # type: ignore[arg-type]
        await release.wait()
        return OK

    harness = Harness(endpoint)

    def submit(gen: int, n: int) -> None:
        item = job("w").model_copy(update={"payload": {"gen": gen, "n": n}})
        harness.submit("w", item, stale=lambda: gen != generation["now"], ordering_key="w\x00k")

    for n in range(3):
        submit(1, n)
    await harness.until(lambda: len(sent) == 1)  # generation 1's head is in flight
    generation["now"] = 2  # the rebalance: the partition is read again from event 0
    for n in range(3):
        submit(2, n)
    release.set()
    await harness.until(lambda: len(harness.settled) == 6)
    assert sent == [(1, 0), (2, 0), (2, 1), (2, 2)]


async def test_batches_carry_up_to_max_events_in_order_and_the_rest_after_the_wait() -> None:
    batches: list[list[int]] = []

    async def endpoint(ticket: Ticket) -> Attempted:
        assert ticket.members is not None
        batches.append([int(m.job.payload["n"]) for m in ticket.members])
        return OK

    harness = Harness(endpoint)
    for n in range(250):
        item = job("b").model_copy(update={"payload": {"n": n}})
        harness.submit("b", item, batch_max=100, batch_wait=0.05)
    await harness.until(lambda: len(harness.settled) == 250)
    assert [len(b) for b in batches] == [100, 100, 50]
    assert [n for b in batches for n in b] == list(range(250))


async def test_a_job_that_cannot_be_parked_is_not_settled() -> None:
    async def never(ticket: Ticket) -> Attempted:
        raise AssertionError("a stopping scheduler sends nothing")

    harness = Harness(never)
    await harness.scheduler.stop(timeout=1)

    def broken(ticket: Ticket, due: float, reason: ParkReason, detail: str) -> None:
        raise ValueError("the record does not fit in a batch")

    harness.scheduler._park_job = broken  # type: ignore[method-assign]
    harness.submit("w")  # a stopping scheduler parks everything: here, it cannot
    assert harness.settled == Counter()  # its record holds the commit; it is read again
    harness.scheduler._park_job = lambda *args: None  # type: ignore[method-assign]
    harness.submit("w")
    assert sum(harness.settled.values()) == 1
