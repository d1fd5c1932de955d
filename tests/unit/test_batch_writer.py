"""The batch writer's own rules, with aiokafka's real record batches and a producer double.

The real broker path (records readable on ``attempts`` and the retry tiers, custody through
worker kills) is covered by the integration tests; here each rule is checked exactly: order
and partitioning, flush waiting for the broker's confirmation, a lost batch failing every
later flush, and one batch at a time per partition.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict

import pytest
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.default_records import DefaultRecordBatch

from app.kafka.batch_writer import BatchWriteError, BatchWriter

PARTITIONS = [0, 1, 2, 3]


class ProducerDouble:
    """``create_batch``/``send_batch``/``partitions_for`` as aiokafka's producer has them.

    Like aiokafka's accumulator it holds one queued batch per partition: ``send_batch`` waits
    until the previous one of the partition is drained (taken by the sender), queues its batch
    and returns a future confirmed ``delay`` later. More than one caller waiting for the same
    partition is what exhausted aiokafka's wait, so it fails the test here.
    """

    def __init__(self, batch_size: int = 16384, delay: float = 0.002) -> None:
        self.batch_size = batch_size
        self.delay = delay
        self.written: dict[tuple[str, int], list[tuple[bytes, bytes]]] = defaultdict(list)
        self.callers: dict[tuple[str, int], int] = defaultdict(int)
        self.queued: dict[tuple[str, int], asyncio.Future[None]] = {}
        self.fail_next = False
        self.sends = 0

    async def partitions_for(self, topic: str) -> set[int]:
        return set(PARTITIONS)

    def create_batch(self) -> BatchBuilder:
        return BatchBuilder(self.batch_size, 0)

    async def send_batch(self, batch: BatchBuilder, topic: str, *, partition: int) -> object:
        tp = (topic, partition)
        self.callers[tp] += 1
        try:
            assert self.callers[tp] == 1, f"{self.callers[tp]} callers waiting for {tp}"
            while tp in self.queued:
                await self.queued[tp]
            loop = asyncio.get_running_loop()
            drained: asyncio.Future[None] = loop.create_future()
            confirmed: asyncio.Future[None] = loop.create_future()
            self.queued[tp] = drained
            self.sends += 1
            fail, self.fail_next = self.fail_next, False
            data = bytes(batch._build())

            def drain() -> None:
                del self.queued[tp]
                drained.set_result(None)
                loop.call_later(self.delay, confirm)

            def confirm() -> None:
                if fail:
                    confirmed.set_exception(ConnectionError("broker went away"))
                    return
                for record in DefaultRecordBatch(data):
                    self.written[tp].append((bytes(record.key), bytes(record.value)))
                confirmed.set_result(None)

            loop.call_later(self.delay, drain)
            return confirmed
        finally:
            self.callers[tp] -= 1


async def _writer(producer: ProducerDouble, linger: float = 10.0) -> BatchWriter:
    writer = BatchWriter(linger=linger)
    await writer.start(producer, ["attempts", "retry"])
    return writer


async def test_records_land_in_order_on_the_partition_a_keyed_send_would_choose() -> None:
    producer = ProducerDouble()
    writer = await _writer(producer)
    keys = [f"wh_{i}".encode() for i in range(12)]
    for n in range(300):
        key = keys[n % len(keys)]
        writer.append("attempts", key, b"%d" % n)
    await writer.flush()

    choose = DefaultPartitioner()
    for key in keys:
        partition = choose(key, PARTITIONS, PARTITIONS)
        values = [v for k, v in producer.written[("attempts", partition)] if k == key]
        expected = [b"%d" % n for n in range(300) if keys[n % len(keys)] == key]
        assert values == expected
    assert sum(len(r) for r in producer.written.values()) == 300


async def test_flush_returns_only_once_every_batch_is_confirmed() -> None:
    producer = ProducerDouble(delay=0.05)
    writer = await _writer(producer)
    writer.append("retry", b"wh_1", b"job")
    assert producer.written == {}
    await writer.flush()
    assert sum(len(r) for r in producer.written.values()) == 1


async def test_records_are_sent_after_the_linger_without_a_flush() -> None:
    producer = ProducerDouble()
    writer = await _writer(producer, linger=0.01)
    writer.append("attempts", b"wh_1", b"a")
    deadline = asyncio.get_running_loop().time() + 5
    while not producer.written and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.005)
    assert sum(len(r) for r in producer.written.values()) == 1


async def test_a_batch_that_was_not_written_fails_this_and_every_later_flush() -> None:
    producer = ProducerDouble()
    writer = await _writer(producer)
    producer.fail_next = True
    writer.append("attempts", b"wh_1", b"lost")
    with pytest.raises(BatchWriteError, match="broker went away"):
        await writer.flush()
    writer.append("attempts", b"wh_1", b"later")
    with pytest.raises(BatchWriteError):
        await writer.flush()  # the lost records' events must never be committed


async def test_a_busy_partition_sends_its_full_batches_one_at_a_time_in_order() -> None:
    # ~40 records per 4 KiB batch: 2,000 records on one key fill ~50 batches at once.
    producer = ProducerDouble(batch_size=4096, delay=0.001)
    writer = await _writer(producer)
    for n in range(2000):
        writer.append("attempts", b"wh_busy", b"%04d" % n + b"x" * 90)
    await writer.flush()
    (records,) = producer.written.values()
    assert [v[:4] for _, v in records] == [b"%04d" % n for n in range(2000)]
    assert producer.sends > 20


async def test_a_flush_under_steady_load_waits_only_for_what_came_before_it() -> None:
    # Records keep arriving while Faust commits; the commit must not wait for a lull.
    producer = ProducerDouble(batch_size=1024, delay=0.05)  # a batch per record, 50 ms each
    writer = await _writer(producer, linger=0.005)
    writer.append("attempts", b"wh_1", b"before")
    for n in range(5):  # a backlog, as under load: the sender is busy when the flush begins
        writer.append("attempts", b"wh_1", b"backlog%d" % n + b"x" * 800)
    stop = asyncio.Event()
    appended: list[bytes] = []

    async def keep_appending() -> None:
        while not stop.is_set():
            value = b"%06d" % len(appended) + b"x" * 800
            writer.append("attempts", b"wh_1", value)
            appended.append(value)
            await asyncio.sleep(0.002)

    appender = asyncio.ensure_future(keep_appending())
    try:
        await asyncio.sleep(0.01)  # some records arrive before the flush begins
        before_flush = list(appended)
        await asyncio.wait_for(writer.flush(), timeout=30)
        (records,) = producer.written.values()
        written = [v for _, v in records]  # what was on the "broker" when flush returned
        appended_by_then = len(appended)
    finally:
        stop.set()
        await appender
    backlog = [b"backlog%d" % n + b"x" * 800 for n in range(5)]
    # Everything appended before the flush began was written before it returned, in order...
    assert written[: 6 + len(before_flush)] == [b"before", *backlog, *before_flush]
    # ...and it did not wait for what kept arriving meanwhile (it returned mid-stream).
    assert len(written) - 6 < appended_by_then
