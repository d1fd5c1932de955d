"""Reading the newest records of a topic on demand (attempt log, dead-letter listing, replay).

Kafka keeps no index by webhook, so a listing reads the newest ``window`` records of every
partition and filters them. It reads up to the high watermark of the fetch responses, not the
reported end offset, which the embedded broker can understate.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition

from app.kafka.metadata import topic_partitions
from app.kafka.security import client_options
from app.settings import Settings

T = TypeVar("T")


async def scan_topic(
    settings: Settings,
    topic: str,
    decode: Callable[[bytes | None, bytes], T | None],
    window: int,
    timeout: float = 20.0,
) -> list[T]:
    """Decoded records (``decode`` returns None to skip one) of the newest ``window`` per partition.

    The result is in no particular order; callers sort by their own time field.
    """
    consumer = AIOKafkaConsumer(**client_options(settings), enable_auto_commit=False)
    await consumer.start()
    found: list[T] = []
    try:
        try:
            partitions = await topic_partitions(consumer, topic, timeout=5.0)
        except LookupError:
            return found
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        starts = await consumer.beginning_offsets(tps)
        ends = await consumer.end_offsets(tps)
        for tp in tps:
            consumer.seek(tp, max(starts[tp], ends[tp] - window))
        deadline = time.monotonic() + timeout
        pending = set(tps)
        while pending and time.monotonic() < deadline:
            batches = await consumer.getmany(*pending, timeout_ms=300)
            for records in batches.values():
                for record in records:
                    if record.value is not None:
                        item = decode(record.key, record.value)
                        if item is not None:
                            found.append(item)
            for tp in list(pending):
                highwater = consumer.highwater(tp)
                if highwater is not None and await consumer.position(tp) >= highwater:
                    pending.discard(tp)
            await asyncio.sleep(0)
    finally:
        await consumer.stop()
    return found
