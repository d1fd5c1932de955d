"""The delivery ids this worker delivered lately, so a copy of one is not sent again.

At least once means copies: after a crash or a rebalance a record is read again from its
committed offset, and a job parked more than once has several parking records. Each copy of a
job this worker already delivered with a 2xx settles at once, unsent (the receiver would drop
it by ``webhook-id`` anyway; this spares the endpoint the request). Bounded: the oldest ids
are forgotten first. Per worker: a copy read by another worker is still sent, as at least
once allows.
"""

from __future__ import annotations

from collections import deque


class RecentlyDelivered:
    __slots__ = ("_ids", "_order")

    def __init__(self, capacity: int) -> None:
        self._ids: set[str] = set()
        self._order: deque[str] = deque(maxlen=capacity)

    def add(self, delivery_id: str) -> None:
        if delivery_id in self._ids:
            return
        order = self._order
        if len(order) == order.maxlen:
            self._ids.discard(order[0])  # the deque drops it as the new one goes in
        order.append(delivery_id)
        self._ids.add(delivery_id)

    def __contains__(self, delivery_id: object) -> bool:
        return delivery_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)
