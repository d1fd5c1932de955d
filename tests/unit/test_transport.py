"""The transport's consumer without a broker: what its fetch loop hands over, what an
acknowledgement settles, and the commit sequence (a Faust app that is never started, with a
fake fetch and a fake producer)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from types import SimpleNamespace
from typing import Any

import faust
import pytest
from faust.types import TP
from faust.types.tuples import ConsumerMessage

from app.kafka import transport

P0 = TP("events.messages", 0)
P1 = TP("events.messages", 1)


def _message(offset: int, generation: int, tp: TP = P0) -> ConsumerMessage:
    return ConsumerMessage(
        tp.topic, tp.partition, offset, 0.0, 0, [], None, b"{}", None, tp=tp,
        generation_id=generation,
    )  # fmt: skip


@pytest.fixture
def consumer() -> Any:
    app = faust.App(
        f"t-{uuid.uuid4().hex[:8]}",
        broker=f"{transport.SCHEME}://127.0.0.1:1",
        autodiscover=False,
    )
    app.flow_control.resume()  # as after an assignment
    made = app.consumer
    assert isinstance(made, transport.Consumer)
    made.ledger.start(1)
    return made


async def _drain(
    consumer: Any,
    batches: list[list[ConsumerMessage]],
    callback: Callable[[ConsumerMessage], Awaitable[None]],
) -> None:
    """Run the consumer's fetch loop over ``batches``, then stop it."""
    fetcher = SimpleNamespace(_stopped=asyncio.Event())
    pending = iter(batches)

    async def getmany(timeout: float) -> AsyncIterator[tuple[TP, ConsumerMessage]]:
        batch = next(pending, None)
        if batch is None:
            fetcher._stopped.set()
            return
        for message in batch:
            yield message.tp, message

    consumer.getmany = getmany
    consumer.callback = callback
    await consumer._drain_messages(fetcher)


async def test_records_handed_over_are_held_until_acknowledged(consumer: Any) -> None:
    handed: list[ConsumerMessage] = []

    async def callback(message: ConsumerMessage) -> None:
        handed.append(message)

    await _drain(consumer, [[_message(o, 1) for o in range(5)]], callback)
    assert [m.offset for m in handed] == [0, 1, 2, 3, 4]
    for message in (handed[1], handed[3], handed[4]):
        assert consumer.ack(message)
    assert consumer.ledger.committable() == {P0: 0}
    consumer.ack(handed[0])
    assert consumer.ledger.committable() == {P0: 2}
    assert not consumer.ack(handed[0])  # once


async def test_a_record_fetched_in_an_ended_generation_is_not_handed_over(consumer: Any) -> None:
    handed: list[int] = []

    async def callback(message: ConsumerMessage) -> None:
        handed.append(message.offset)

    consumer.ledger.start(2)
    await _drain(consumer, [[_message(7, 1), _message(8, 2)]], callback)
    assert handed == [8]
    assert consumer.ledger.committable() == {P0: 8}


async def test_a_rebalance_during_a_hand_over_leaves_the_partition_to_be_read_again(
    consumer: Any,
) -> None:
    handed: list[int] = []

    async def callback(message: ConsumerMessage) -> None:
        handed.append(message.offset)
        if message.offset == 5:
            consumer.ledger.start(2)  # the group rebalanced while the stream had it
            consumer._read_offset[P0] = 3  # the seek to the committed offset

    await _drain(consumer, [[_message(4, 1), _message(5, 1), _message(6, 1)]], callback)
    assert handed == [4, 5]  # 6 was fetched in the ended generation
    assert consumer._read_offset[P0] == 3  # not overwritten: 3.. is read again
    for offset in (4, 5):
        assert consumer.ack(_message(offset, 1))  # acknowledged, but settles nothing
    assert consumer.ledger.committable() == {}


async def test_a_commit_flushes_first_and_commits_what_was_settled_before_it(
    consumer: Any,
) -> None:
    events: list[str] = []
    for offset in range(4):
        consumer.ledger.hand_over(P0, offset, 1)
    consumer.ledger.hand_over(P1, 0, 1)
    consumer.ack(_message(0, 1))
    consumer.ack(_message(1, 1))

    async def flush() -> None:
        events.append("flush")
        consumer.ack(_message(2, 1))  # settles during the flush: its records may be unsent

    async def commit(offsets: dict[TP, int]) -> bool:
        events.append(f"commit {dict(offsets)}")
        return True

    consumer.app._producer = SimpleNamespace(flush=flush)
    consumer._commit = commit
    consumer.assignment = lambda: {P0}  # P1 was revoked meanwhile
    assert await consumer.force_commit()
    assert events == ["flush", f"commit { {P0: 2} }"]
    assert consumer.ledger.committable() == {P0: 3, P1: 0}
    consumer.ledger.close()
    assert not await consumer.force_commit()
    assert events[2:] == []


class _Thread:
    """The consumer thread's calls perform_seek makes, with what a broker would answer."""

    def __init__(self, committed: dict[TP, int | None], earliest: dict[TP, int]) -> None:
        self.committed, self.earliest = committed, earliest
        self.sought: dict[TP, int] = {}
        self.refuse: set[TP] = set()

    async def committed_offsets(self, partitions: set[TP]) -> dict[TP, int | None]:
        return {tp: self.committed.get(tp) for tp in partitions}

    async def earliest_offsets_of(self, partitions: set[TP]) -> dict[TP, int]:
        return {tp: self.earliest[tp] for tp in partitions}

    async def seek_to(self, tp: TP, offset: int) -> None:
        if tp in self.refuse:
            raise RuntimeError("not assigned")
        self.sought[tp] = offset


async def test_every_partition_is_sought_one_at_a_time_and_one_failure_stops_no_other(
    consumer: Any,
) -> None:
    p2 = TP("events.messages", 2)
    thread = _Thread({P0: 40, P1: None, p2: 7}, {P1: 3})
    thread.refuse.add(p2)
    consumer._thread = thread
    consumer.assignment = lambda: {P0, P1, p2}
    consumer._read_offset[p2] = 99  # read before: no guide once its seek failed
    await consumer.perform_seek()
    assert thread.sought == {P0: 40, P1: 3}  # no commit yet: its first record
    assert consumer._read_offset[P0] == 40 and consumer._read_offset[p2] is None
    consumer.ledger.hand_over(P0, 40, 1)
    consumer.ledger.settle(P0, 40, 1)
    assert consumer.ledger.committable() == {P0: 41}


async def test_a_new_generation_forgets_what_the_fetch_loop_read_in_the_last_one(
    consumer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def faust_s_own(self: Any, assigned: Any, generation_id: int = 0) -> None:
        return None

    monkeypatch.setattr(transport.faust_aiokafka.Consumer, "on_partitions_assigned", faust_s_own)
    consumer._read_offset[P0] = 500  # written by a hand-over that ended after the revoke
    await consumer.on_partitions_assigned({P0}, 2)
    assert consumer.ledger.generation == 2
    assert consumer._read_offset[P0] is None  # records from the committed offset are read
