"""The bulkhead and circuit breaker, on a fake clock."""

from __future__ import annotations

import asyncio

from app.delivery.endpoint_guard import EndpointGuard


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def guard(clock: Clock) -> EndpointGuard:
    return EndpointGuard(
        max_in_flight=2, failure_threshold=3, cooldown=30, slow_after=1.0, clock=clock
    )


async def test_a_full_endpoint_that_answers_promptly_makes_the_next_job_wait() -> None:
    clock = Clock()
    g = guard(clock)
    first, second = await g.acquire("e"), await g.acquire("e")
    assert isinstance(first, int) and isinstance(second, int)
    waiting = asyncio.ensure_future(g.acquire("e"))
    await asyncio.sleep(0)
    assert not waiting.done()
    g.release("e", first, ok=True)
    assert isinstance(await asyncio.wait_for(waiting, 1), int)


async def test_a_full_slow_endpoint_is_skipped_without_waiting() -> None:
    clock = Clock()
    g = guard(clock)
    await g.acquire("e")
    await g.acquire("e")
    clock.now = 5.0
    reason = await g.acquire("e")
    assert isinstance(reason, str) and reason.startswith("busy")
    assert isinstance(await g.acquire("other"), int)  # other endpoints are not affected


async def test_the_circuit_opens_after_consecutive_failures_and_a_probe_closes_it() -> None:
    clock = Clock()
    g = guard(clock)
    for _ in range(3):
        ticket = await g.acquire("e")
        assert isinstance(ticket, int)
        g.release("e", ticket, ok=False)
    assert g.is_open("e")
    assert str(await g.acquire("e")).startswith("circuit open")
    clock.now = 31.0
    probe = await g.acquire("e")
    assert isinstance(probe, int)
    assert str(await g.acquire("e")).startswith("circuit open")  # one probe at a time
    g.release("e", probe, ok=False)
    assert str(await g.acquire("e")).startswith("circuit open")  # reopened
    clock.now = 62.0
    probe = await g.acquire("e")
    assert isinstance(probe, int)
    g.release("e", probe, ok=True)
    assert not g.is_open("e")
    assert isinstance(await g.acquire("e"), int)


async def test_a_success_resets_the_failure_count() -> None:
    g = guard(Clock())
    for ok in (False, False, True, False, False):
        ticket = await g.acquire("e")
        assert isinstance(ticket, int)
        g.release("e", ticket, ok=ok)
    assert not g.is_open("e")


async def test_a_full_endpoint_that_keeps_finishing_requests_is_not_slow() -> None:
    # A healthy endpoint with a queue (one event fanned out to many webhooks): its oldest
    # request is old, but requests keep finishing, so jobs wait for a slot instead of being
    # sent to the retry tier.
    clock = Clock()
    g = guard(clock)
    first, second = await g.acquire("e"), await g.acquire("e")
    assert isinstance(first, int) and isinstance(second, int)
    clock.now = 4.8
    g.release("e", first, ok=True)
    assert isinstance(await g.acquire("e"), int)  # full again; `second` started at 0
    clock.now = 5.0
    waiting = asyncio.ensure_future(g.acquire("e"))
    await asyncio.sleep(0)
    assert not waiting.done()  # waits: something finished 0.2 s ago
    g.release("e", second, ok=True)
    assert isinstance(await asyncio.wait_for(waiting, 1), int)


async def test_a_release_lets_exactly_one_waiting_job_through_in_arrival_order() -> None:
    # The limit holds with several jobs waiting (the previous design woke them all, which
    # cost CPU but gave the same outcome, so this checks the limit, not the wake-ups).
    clock = Clock()
    g = guard(clock)
    first, _ = await g.acquire("e"), await g.acquire("e")
    assert isinstance(first, int)
    waiting = [asyncio.ensure_future(g.acquire("e")) for _ in range(3)]
    await asyncio.sleep(0)
    g.release("e", first, ok=True)
    for _ in range(5):
        await asyncio.sleep(0)
    assert [w.done() for w in waiting] == [True, False, False]
    for w in waiting[1:]:
        w.cancel()
