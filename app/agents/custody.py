"""Custody of an input record: settled once every job it caused has settled.

The agents read with ``stream.noack()`` and hand jobs to the scheduler without waiting, so a
record is settled (and its offset may be committed) only when each of its jobs was delivered,
handed to a retry tier, parked or dead-lettered; the records those steps wrote are on the
broker before the commit (:meth:`app.kafka.transport.Consumer.force_commit`). The commit
position is the consumer's ledger (:mod:`app.kafka.commit_ledger`): a partition commits up to
its lowest unsettled record, so one slow job holds later offsets back, never forward.

A rebalance ends the generation the record was read in. Every partition this worker has then,
kept or new, is read again from its committed offset, so a record of an ended generation is
*stale*: its jobs still queued are dropped unsent (:meth:`stale` tells the scheduler; the copy
read again sends them, in order if ordered), and settling it acknowledges nothing. A request
already in flight finishes; its copy may be sent again, with the same delivery id.
"""

from __future__ import annotations

from typing import Any, Protocol, cast

from faust.types import EventT, StreamT


class Generation(Protocol):
    """What custody reads of the commit ledger: the consumer generation being read."""

    generation: int | None


class Custody:
    __slots__ = ("_event", "_generation", "_ledger", "_left")

    def __init__(self, event: EventT[Any], jobs: int, ledger: Generation) -> None:
        self._event = event
        self._ledger = ledger
        self._left = jobs
        self._generation = event.message.generation_id
        if jobs == 0:
            self._ack()

    def stale(self) -> bool:
        """True once a rebalance ended the generation the record was read in."""
        return self._generation != self._ledger.generation

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
