"""Reading the newest records of a topic on demand (attempt log, dead-letter listing, replay).

Kafka keeps no index by webhook, so a listing reads the newest ``window`` records of every
partition and filters them. Records are filtered by key before they are decoded (the attempt
and dead-letter topics are keyed by webhook id), and each partition is read newest first, in
chunks, so a listing that wants the newest ``newest`` matches stops as soon as every partition
has given that many. A scan that runs out of time says so (:attr:`Scan.truncated`) instead of
returning part of the window as if it were all of it.

It reads up to the high watermark of the fetch responses, not the reported end offset, which
the embedded broker can understate.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition

from app.kafka.metadata import topic_partitions
from app.kafka.security import client_options
from app.settings import Settings

T = TypeVar("T")
#: Records read per partition per step, newest first.
CHUNK = 5000


@dataclass
class Scan(Generic[T]):
    """What a scan found, and whether it covered its whole window."""

    items: list[T] = field(default_factory=list)
    truncated: bool = False


async def scan_topic(
    settings: Settings,
    topic: str,
    decode: Callable[[bytes | None, bytes], T | None],
    window: int,
    timeout: float = 20.0,
    keys: Collection[bytes] | None = None,
    newest: int | None = None,
) -> Scan[T]:
    """Decoded records (``decode`` returns None to skip one) among the newest ``window`` of
    each partition; only those with one of ``keys`` when given; per partition at most the
    ``newest``
    matches nearest its end when given. In no particular order: callers sort by their own
    time field (and keep their own ``newest``)."""
    consumer = AIOKafkaConsumer(**client_options(settings), enable_auto_commit=False)
    await consumer.start()
    scan: Scan[T] = Scan()
    deadline = time.monotonic() + timeout
    wanted = frozenset(keys) if keys is not None else None
    try:
        try:
            partitions = await topic_partitions(consumer, topic, timeout=5.0)
        except LookupError:
            return scan
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        starts = await consumer.beginning_offsets(tps)
        ends = await consumer.end_offsets(tps)
        for tp in tps:
            found: list[T] = []
            floor = max(starts[tp], ends[tp] - window)
            stop: int | None = None  # the first chunk reads to the high watermark
            begin = ends[tp]
            while begin > floor and (newest is None or len(found) < newest):
                begin = max(floor, begin - CHUNK)
                chunk, complete = await _read(consumer, tp, begin, stop, deadline, decode, wanted)
                found = chunk + found
                if not complete:
                    scan.truncated = True
                    break
                stop = begin
            scan.items += found[-newest:] if newest is not None else found
            if scan.truncated:
                break
    finally:
        await consumer.stop()
    return scan


async def _read(
    consumer: AIOKafkaConsumer,
    tp: TopicPartition,
    begin: int,
    stop: int | None,
    deadline: float,
    decode: Callable[[bytes | None, bytes], T | None],
    keys: frozenset[bytes] | None,
) -> tuple[list[T], bool]:
    """Matching records of ``tp`` from ``begin`` up to ``stop`` (or its high watermark), in
    offset order; and whether the range was read whole before ``deadline``."""
    consumer.seek(tp, begin)
    found: list[T] = []
    while time.monotonic() < deadline:
        batches = await consumer.getmany(tp, timeout_ms=300)
        for record in batches.get(tp, ()):
            if stop is not None and record.offset >= stop:
                return found, True
            if record.value is None or (keys is not None and record.key not in keys):
                continue
            item = decode(record.key, record.value)
            if item is not None:
                found.append(item)
        end = stop if stop is not None else consumer.highwater(tp)
        if end is not None and await consumer.position(tp) >= end:
            return found, True
        await asyncio.sleep(0)
    return found, False
