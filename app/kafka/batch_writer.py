"""Writing records in batches: the attempt log and the retry tiers, without a send per record.

Handing each record to the producer on its own (``producer.send``) cost a future, a pure-Python
murmur2 partitioner call and Faust's send wrapper per record: ~11 % of the worker's CPU at one
delivery per event (py-spy under ``make bench``). Here a record is appended to an open aiokafka
record batch of its topic-partition, and a batch goes to the producer when it is full, after
``linger`` seconds, or on :meth:`BatchWriter.flush`.

Custody: :mod:`app.kafka.transport` awaits :meth:`flush` before the producer's own flush, which
Faust runs before every offset commit. ``flush`` returns once every record appended before it
is on the broker, and raises if one was not (then and at every later flush), so an event's
offset is never committed before the records it caused (its attempt log, its retry). Keys
and partitioning are those of a keyed send (Kafka's murmur2 of the key), so a webhook's
records stay on one partition.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiokafka.partitioner import murmur2

log = logging.getLogger(__name__)

#: Remembered key -> partition mappings; cleared whole when full (keys are webhook ids).
_PARTITION_CACHE_SIZE = 65536


class BatchWriteError(RuntimeError):
    """A batch was not written: offsets must not be committed past the records it held."""


@dataclass
class _Partition:
    """One topic-partition's records: the batch being filled and the full ones to send."""

    topic: str
    partition: int
    open: Any = None  # aiokafka BatchBuilder
    #: Closed batches to send, each with a future that gets the producer's delivery future.
    full: deque[tuple[Any, asyncio.Future[Any]]] = field(default_factory=deque)
    sender: asyncio.Task[None] | None = None


class BatchWriter:
    """Buffers records per topic-partition; one per worker (see :mod:`app.runtime.state`).

    Each partition has one sender that hands its batches to the producer in order, one at a
    time: the producer keeps one batch per partition in its queue, and many senders waiting
    for the same partition exhaust aiokafka's wait early (its ``add_batch`` deducts the whole
    time waited on every wake-up; measured: ``KafkaTimeoutError`` within a minute at ~2,000
    records/s on one partition).
    """

    def __init__(self, linger: float) -> None:
        self._linger = linger
        self._producer: Any = None  # aiokafka.AIOKafkaProducer, once started
        self._partitions: dict[str, list[int]] = {}
        self._partition_of: dict[tuple[str, bytes], int] = {}
        self._tps: dict[tuple[str, int], _Partition] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._not_handed: set[asyncio.Future[Any]] = set()  # queued batches: their hand-over
        self._unconfirmed: set[asyncio.Future[Any]] = set()  # handed over: their delivery
        self._failure: BaseException | None = None

    async def start(self, producer: Any, topics: list[str]) -> None:
        """Bind to a started aiokafka producer and learn the partitions of ``topics``."""
        for topic in topics:
            self._partitions[topic] = sorted(await producer.partitions_for(topic))
        self._producer = producer

    def _partition(self, topic: str, key: bytes) -> int:
        partition = self._partition_of.get((topic, key))
        if partition is None:
            if len(self._partition_of) >= _PARTITION_CACHE_SIZE:
                self._partition_of.clear()
            partitions = self._partitions[topic]
            index = (murmur2(key) & 0x7FFFFFFF) % len(partitions)
            partition = self._partition_of[(topic, key)] = partitions[index]
        return partition

    def append(self, topic: str, key: bytes, value: bytes) -> None:
        """Add one record; it is sent within ``linger`` s, and is on the broker before any
        offset commit."""
        if self._producer is None:
            raise RuntimeError("batch writer used before the worker started")
        partition = self._partition(topic, key)
        tp = self._tps.get((topic, partition))
        if tp is None:
            tp = self._tps[(topic, partition)] = _Partition(topic, partition)
        if tp.open is None:
            tp.open = self._producer.create_batch()
        if tp.open.append(key=key, value=value, timestamp=None) is None:  # full: queue it
            self._queue(tp)
            tp.open = self._producer.create_batch()
            if tp.open.append(key=key, value=value, timestamp=None) is None:
                raise ValueError(f"a record of {len(value)} bytes does not fit in a batch")
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._linger, self._send_open)

    def _queue(self, tp: _Partition) -> None:
        """Close the open batch of ``tp`` and queue it for its sender."""
        handed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._not_handed.add(handed)
        handed.add_done_callback(self._not_handed.discard)
        tp.full.append((tp.open, handed))
        tp.open = None
        if tp.sender is None:
            tp.sender = asyncio.ensure_future(self._send_full(tp))

    def _send_open(self) -> None:
        self._timer = None
        for tp in self._tps.values():
            if tp.open is not None:
                self._queue(tp)

    async def _send_full(self, tp: _Partition) -> None:
        try:
            while tp.full:
                batch, handed = tp.full.popleft()
                try:
                    written = await self._producer.send_batch(
                        batch, tp.topic, partition=tp.partition
                    )
                except Exception as exc:
                    self._failed(exc, batch.record_count(), tp)
                    handed.set_result(None)
                    continue
                self._unconfirmed.add(written)
                written.add_done_callback(functools.partial(self._confirm, tp=tp))
                handed.set_result(written)
        finally:
            tp.sender = None

    def _confirm(self, written: asyncio.Future[Any], tp: _Partition) -> None:
        self._unconfirmed.discard(written)
        if written.cancelled() or written.exception() is not None:
            self._failed(None if written.cancelled() else written.exception(), None, tp)

    def _failed(self, exc: BaseException | None, records: int | None, tp: _Partition) -> None:
        size = f"{records} records" if records is not None else "records"
        log.error("a batch of %s to %s[%d] was not written: %r", size, tp.topic, tp.partition, exc)
        self._failure = exc or RuntimeError("cancelled")

    async def flush(self) -> None:
        """Send every open batch and wait until every record appended before this call is
        written; raise if one was not. Records appended meanwhile are not waited for: under
        steady load waiting for an idle writer made commits wait for a lull (34 s measured)."""
        if self._timer is not None:
            self._timer.cancel()
        self._send_open()
        waiting = list(self._unconfirmed)
        handed = await asyncio.gather(*self._not_handed) if self._not_handed else []
        waiting += [written for written in handed if written is not None]
        if waiting:
            await asyncio.gather(*waiting, return_exceptions=True)
        if self._failure is not None:
            raise BatchWriteError(f"records were not written: {self._failure!r}")
