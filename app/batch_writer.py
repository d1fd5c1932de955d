"""Writing records in batches: the attempt log and the retry tiers, without a send per record.

Handing each record to the producer on its own (``producer.send``) cost a future, a pure-Python
murmur2 partitioner call and Faust's send wrapper per record: ~11 % of the worker's CPU at one
delivery per event (py-spy under ``make bench``). Here a record is appended to an open aiokafka
record batch of its topic-partition, and a batch goes to the producer when it is full, after
``linger`` seconds, or on :meth:`BatchWriter.flush`.

Custody: :mod:`app.faust_transport` awaits :meth:`flush` before the producer's own flush, which
Faust runs before every offset commit. ``flush`` returns once every batch handed over so far is
on the broker, and raises if one was not, so an event's offset is never committed before the
records it caused (its attempt log, its retry) are written. Keys and partitioning are those of
a keyed send (Kafka's murmur2 of the key), so a webhook's records stay on one partition.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiokafka.partitioner import murmur2

log = logging.getLogger(__name__)

#: Remembered key -> partition mappings; cleared whole when full (keys are webhook ids).
_PARTITION_CACHE_SIZE = 65536


class BatchWriteError(RuntimeError):
    """A batch was not written: offsets must not be committed past the records it held."""


class BatchWriter:
    """Buffers records per topic-partition; one per worker (see :mod:`app.runtime`)."""

    def __init__(self, linger: float) -> None:
        self._linger = linger
        self._producer: Any = None  # aiokafka.AIOKafkaProducer, once started
        self._partitions: dict[str, list[int]] = {}
        self._partition_of: dict[tuple[str, bytes], int] = {}
        self._open: dict[tuple[str, int], Any] = {}  # (topic, partition) -> BatchBuilder
        self._timer: asyncio.TimerHandle | None = None
        self._in_flight: set[asyncio.Task[None]] = set()
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
        tp = (topic, self._partition(topic, key))
        batch = self._open.get(tp)
        if batch is None:
            batch = self._open[tp] = self._producer.create_batch()
        if batch.append(key=key, value=value, timestamp=None) is None:  # full: send, start anew
            self._send(tp, self._open.pop(tp))
            batch = self._open[tp] = self._producer.create_batch()
            if batch.append(key=key, value=value, timestamp=None) is None:
                raise ValueError(f"a record of {len(value)} bytes does not fit in a batch")
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._linger, self._send_open)

    def _send_open(self) -> None:
        self._timer = None
        for tp in list(self._open):
            self._send(tp, self._open.pop(tp))

    def _send(self, tp: tuple[str, int], batch: Any) -> None:
        task = asyncio.ensure_future(self._write(tp, batch))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    async def _write(self, tp: tuple[str, int], batch: Any) -> None:
        topic, partition = tp
        try:
            written = await self._producer.send_batch(batch, topic, partition=partition)
            await written
        except Exception as exc:
            log.error(
                "a batch of %d records to %s[%d] was not written: %r",
                batch.record_count(),
                topic,
                partition,
                exc,
            )
            self._failure = exc

    async def flush(self) -> None:
        """Send every open batch and wait until all are written; raise if one was not."""
        if self._timer is not None:
            self._timer.cancel()
        self._send_open()
        while self._in_flight:
            await asyncio.gather(*self._in_flight)
        if self._failure is not None:
            raise BatchWriteError(f"records were not written: {self._failure!r}")
