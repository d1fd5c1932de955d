"""The parking lane's waiting room: parked jobs held until they are due, in due order.

Parked records arrive on ``deliveries.parked`` in the order they were parked, not in the order
they fall due (a rate-limited job due in 1 s can follow one whose endpoint's circuit keeps it
away for minutes), so they cannot simply wait in partition order as a retry tier's do. The
lane holds up to ``capacity`` of them in a heap by due time, each unacknowledged until it is
handed back (a crash reads them again); past that the reader waits, and the broker holds the
rest. An item is handed back at its due time, or at once when its key (a webhook) is woken
because its endpoint recovered.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(order=True)
class _Entry(Generic[T]):
    due: float
    seq: int
    key: str = field(compare=False)
    item: T = field(compare=False)
    early: bool = field(default=True, compare=False)  # may be woken before it is due
    gone: bool = field(default=False, compare=False)  # handed back already (woken early)


class DelayQueue(Generic[T]):
    def __init__(
        self, capacity: int, hand_back: Callable[[T], None], clock: Callable[[], float] = time.time
    ) -> None:
        self._capacity = capacity
        self._hand_back = hand_back
        self._clock = clock
        self._heap: list[_Entry[T]] = []
        self._by_key: dict[str, dict[int, _Entry[T]]] = {}  # key -> seq -> entry
        self._seq = itertools.count()
        self._held = 0
        self._room = asyncio.Event()
        self._room.set()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = float("inf")

    def __len__(self) -> int:
        return self._held

    async def put(self, key: str, due: float, item: T, early: bool = True) -> None:
        """Hold ``item`` until ``due`` (unix time), or until :meth:`wake` if ``early``; waits
        while the queue is full."""
        while self._held >= self._capacity:
            self._room.clear()
            await self._room.wait()
        entry = _Entry(due, next(self._seq), key, item, early)
        heapq.heappush(self._heap, entry)
        self._by_key.setdefault(key, {})[entry.seq] = entry
        self._held += 1
        self._arm()

    def wake(self, key: str, limit: int | None = None) -> int:
        """Hand back the items of ``key`` that may go early, the earliest due first, at most
        ``limit``; how many were handed back."""
        entries = self._by_key.get(key)
        if not entries:
            return 0
        candidates = [e for e in entries.values() if e.early]
        chosen = heapq.nsmallest(limit, candidates) if limit is not None else candidates
        for entry in chosen:
            entry.gone = True
            del entries[entry.seq]
            self._release(entry)
        if not entries:
            self._by_key.pop(key, None)
        return len(chosen)

    def discard(self, unwanted: Callable[[T], bool]) -> int:
        """Drop the items ``unwanted`` picks, without handing them back (a rebalance made
        them another generation's: their records are read again); how many were dropped."""
        dropped = 0
        for key, entries in list(self._by_key.items()):
            for seq, entry in list(entries.items()):
                if unwanted(entry.item):
                    entry.gone = True
                    del entries[seq]
                    self._held -= 1
                    dropped += 1
            if not entries:
                del self._by_key[key]
        if dropped and self._held < self._capacity:
            self._room.set()
        return dropped

    def waiting(self, key: str) -> int:
        """Items of ``key`` held now."""
        return len(self._by_key.get(key, ()))

    def _release(self, entry: _Entry[T]) -> None:
        self._held -= 1
        if self._held < self._capacity:
            self._room.set()
        self._hand_back(entry.item)

    def _arm(self) -> None:
        while self._heap and self._heap[0].gone:
            heapq.heappop(self._heap)
        if not self._heap:
            return
        due = self._heap[0].due
        if self._timer is not None and self._timer_at <= due:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = due
        delay = max(0.0, due - self._clock())
        self._timer = asyncio.get_running_loop().call_later(delay, self._fire)

    def _fire(self) -> None:
        self._timer, self._timer_at = None, float("inf")
        now = self._clock()
        heap = self._heap
        while heap and (heap[0].gone or heap[0].due <= now):
            entry = heapq.heappop(heap)
            if entry.gone:
                continue
            entry.gone = True
            siblings = self._by_key.get(entry.key)
            if siblings is not None:
                siblings.pop(entry.seq, None)
                if not siblings:
                    del self._by_key[entry.key]
            self._release(entry)
        self._arm()
