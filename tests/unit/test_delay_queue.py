"""The parking lane's delay queue: due order, early wakes by key, and its memory bound."""

from __future__ import annotations

import asyncio
import time

from app.delivery.delay_queue import DelayQueue


async def test_items_come_back_in_due_order_not_in_arrival_order() -> None:
    back: list[str] = []
    queue: DelayQueue[str] = DelayQueue(100, back.append)
    now = time.time()
    for name, delay in [("late", 0.15), ("soon", 0.01), ("middle", 0.08)]:
        await queue.put("w", now + delay, name)
    deadline = time.monotonic() + 5
    while len(back) < 3 and time.monotonic() < deadline:
        await asyncio.sleep(0.005)
    assert back == ["soon", "middle", "late"] and len(queue) == 0


async def test_wake_hands_back_the_earliest_of_a_key_up_to_a_limit_never_a_slot_holder() -> None:
    back: list[str] = []
    queue: DelayQueue[str] = DelayQueue(100, back.append)
    far = time.time() + 3600
    for n in range(5):
        await queue.put("busy", far + n, f"b{n}")
    await queue.put("busy", far - 1, "slot", early=False)  # a rate-limit slot: not before due
    await queue.put("other", far, "o")
    assert queue.wake("busy", limit=2) == 2
    assert back == ["b0", "b1"]
    assert queue.wake("busy") == 3 and back[2:] == ["b2", "b3", "b4"]
    assert queue.waiting("busy") == 1 and len(queue) == 2  # "slot" and "o" still wait


async def test_a_full_queue_makes_put_wait_until_an_item_is_handed_back() -> None:
    back: list[str] = []
    queue: DelayQueue[str] = DelayQueue(2, back.append)
    far = time.time() + 3600
    await queue.put("w", far, "a")
    await queue.put("w", far, "b")
    third = asyncio.ensure_future(queue.put("w", far, "c"))
    await asyncio.sleep(0.01)
    assert not third.done()
    queue.wake("w", limit=1)
    await asyncio.wait_for(third, 5)
    assert back == ["a"] and len(queue) == 2


async def test_discarded_items_free_their_room_and_are_never_handed_back() -> None:
    handed: list[int] = []
    queue: DelayQueue[int] = DelayQueue(3, handed.append, clock=lambda: 0.0)
    for n in range(3):
        await queue.put("wh", 100.0 + n, n)
    assert queue.discard(lambda item: item != 1) == 2
    assert len(queue) == 1
    assert queue.waiting("wh") == 1
    await asyncio.wait_for(queue.put("other", 50.0, 9), timeout=1)  # room again at once
    assert queue.wake("wh") == 1
    assert handed == [1]
