"""Custody of an input record: acknowledged once every job it caused has settled.

The agents read with ``stream.noack()`` and hand jobs to the scheduler without waiting, so a
record is acknowledged (and its offset may be committed) only when each of its jobs was
delivered, handed to a retry tier, parked or dead-lettered; the records those steps wrote are
on the broker before the commit (the batch writer is flushed first). Faust commits the
contiguous acknowledged prefix of each partition, so one slow job holds later offsets back,
never forward.

A record whose partition was revoked meanwhile is not acknowledged: Faust would add its offset
to the commit set of a partition that now belongs to another worker. Its jobs still queued are
dropped unsent (the new owner reads the record again), which is what :meth:`stale` tells the
scheduler. A record of a partition this worker *kept* through the rebalance is not stale: Faust
means to seek a kept partition back to its committed offset, but that seek covers every
partition at once and fails as a whole when one of them was just revoked ("exception performing
seek when flow not active", seen on Tansu), and then nothing reads those records again. So its
jobs go on and are acknowledged; when the seek did happen, the records read again are sent once
more, with the same delivery ids, behind the first ones (order per key holds).
"""

from __future__ import annotations

from typing import Any, cast

from faust.types import TP, EventT, StreamT

from app.main import app

_assigned: tuple[int | None, frozenset[TP]] = (None, frozenset())


def _assignment(generation: int) -> frozenset[TP]:
    """This worker's partitions in ``generation`` (read once per generation: Faust sets the
    generation when the new assignment is known)."""
    global _assigned
    if _assigned[0] != generation:
        _assigned = (generation, frozenset(app.consumer.assignment()))
    return _assigned[1]


class Custody:
    __slots__ = ("_event", "_generation", "_left")

    def __init__(self, event: EventT[Any], jobs: int) -> None:
        self._event = event
        self._left = jobs
        self._generation = event.message.generation_id
        if jobs == 0:
            self._ack()

    def stale(self) -> bool:
        """True once a rebalance gave the record's partition to another worker."""
        generation = app.consumer_generation_id
        if self._generation is None or self._generation == generation:
            return False
        return self._event.message.tp not in _assignment(generation)

    def settle(self) -> None:
        """One job of the record is settled; the last one acknowledges the record."""
        self._left -= 1
        if self._left == 0:
            self._ack()

    def _ack(self) -> None:
        if not self.stale():
            self._event.ack()


def unacknowledged(stream: StreamT[bytes]) -> StreamT[bytes]:
    """``stream`` with acknowledgements left to :class:`Custody` (Faust's ``noack``, which its
    ``StreamT`` protocol does not declare)."""
    return cast(StreamT[bytes], cast(Any, stream).noack())
