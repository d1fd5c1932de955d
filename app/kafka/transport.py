"""Faust's aiokafka transport with a configurable consumer fetch wait and a cheaper drain loop.

Faust builds its consumer with ``fetch_max_wait_ms=1500`` and no setting to change it. The
embedded broker holds *every* fetch for the whole wait, data or not (it answers when the wait
runs out), so the wait is added to every delivery. ``HOOKSTREAM_CONSUMER_FETCH_MAX_WAIT_MS``
sets it; default 20. Measured on the embedded broker at 1,000 events/s, 2 partitions: p99
40 ms at 20, 44 at 30, 58 at 50 (8 partitions: 71 at 20, 75 at 50; at 5 and 10 the fetches
themselves swamp the broker). Draining a 100k backlog it made no difference beyond the
run-to-run spread: 2,804-2,915 deliveries/s at 20, 2,268-3,525 at 50. On a broker that
answers as soon as data arrives (Kafka) the wait matters less.

Its consumer hands each fetched message to the streams without Faust's per-message race: Faust
awaits ``wait_first(callback(message), suspend_flow.wait())`` for every message, which makes
four tasks and an ``asyncio.wait`` (~24 us a message, measured under uvloop) to be able to
drop the message when a rebalance suspends the flow while the callback waits. The callback
waits only while the flow is suspended or a stream's buffer is full, so while the flow is
active it is awaited directly, and Faust's race is kept otherwise. The one difference: a
message whose stream buffer was full when a rebalance began is still handed over once there is
room, and may be processed by this worker as well as by the partition's new owner: a duplicate
with the same delivery id, which at-least-once allows.

A retry tier's full stream buffer does not stop the loop. Faust's callback *awaits* room in a
full buffer, and the loop is one for every topic the worker reads, so one full stream stopped
them all: a tier's actors sleep until their jobs are due, its buffer filled behind them (a hung
endpoint's jobs), and ingest stopped for every webhook until the first of those jobs fell due
(measured: the benchmark's isolation scenario at 1,212 instead of ~3,300 deliveries/s, and the
scenario after it at 1,222/s). For the topics in :data:`leave_on_broker_when_full`, a message
whose buffer is full is left on the broker instead: its partition seeks back to it and is
paused (as Faust pauses one under buffer pressure) until the buffer has drained, then is read
again from that message. Other topics keep Faust's behaviour: their actors free room within
milliseconds, and waiting for it is plain backpressure (seeking back there re-read ~40 fetches
of input per 100k-event burst for nothing).

The commit position is hookstream's own (:mod:`app.kafka.commit_ledger`), not Faust's list of
acknowledged offsets, which commits past unsettled records when they settle out of order
(upstream issue #606): every record handed to a stream is entered in the consumer's ledger,
an acknowledgement settles its exact record (of its own generation), and a commit moves each
partition to what the ledger allows (:meth:`Consumer.force_commit` has the sequence). After a
rebalance every partition is sought to its committed offset one at a time (Faust's single
seek over all of them fails as a whole when one was just revoked), and a record fetched in a
generation that has ended is never handed over.

It also runs hooks before the producer's flush (:data:`before_flush`): the batch writer hands
over its open record batches there, so they are on the broker before any commit.

Registered as the ``hookstream://`` broker scheme (used by :mod:`app.main`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from typing import Any, cast

from aiokafka import TopicPartition
from aiokafka.errors import IllegalStateError
from faust.transport import consumer as faust_consumer
from faust.transport.drivers import TRANSPORTS
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP
from mode.utils.futures import notify

from app.kafka.commit_ledger import CommitLedger
from app.settings import get_settings

SCHEME = "hookstream"
log = logging.getLogger(__name__)

#: Awaited, in order, before every producer flush (and so before every offset commit).
before_flush: list[Callable[[], Awaitable[None]]] = []
#: Topics whose streams hold events for long (the retry tiers): a message for a full buffer
#: of theirs stays on the broker rather than stopping the fetch loop of every topic.
leave_on_broker_when_full: set[str] = set()


class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # aiokafka keeps the value until start() builds its fetcher; this is the one knob
        # Faust does not pass through.
        consumer._fetch_max_wait_ms = get_settings().consumer_fetch_max_wait_ms
        return consumer

    async def committed_offsets(self, partitions: set[Any]) -> dict[Any, int | None]:
        """The group's committed offset of each partition (None: none yet), in one request."""
        return cast(dict[Any, int | None], await self.call_thread(self._committed, partitions))

    async def _committed(self, partitions: set[Any]) -> dict[Any, int | None]:
        # aiokafka's committed() asks once per partition; its coordinator takes a set (the
        # pinned aiokafka 0.14's API, as committed() itself uses it).
        coordinator = self._ensure_consumer()._coordinator
        wanted = {tp: TopicPartition(tp.topic, tp.partition) for tp in partitions}
        found = await coordinator.fetch_committed_offsets(set(wanted.values()))
        offsets: dict[Any, int | None] = {}
        for tp, key in wanted.items():
            committed = found.get(key)
            offsets[tp] = (
                committed.offset if committed is not None and committed.offset >= 0 else None
            )
        return offsets

    async def earliest_offsets_of(self, partitions: set[Any]) -> dict[Any, int]:
        """The first offset each partition still holds (where a group with no commit starts:
        ``auto_offset_reset=earliest``)."""
        return cast(dict[Any, int], await self.call_thread(self._earliest, partitions))

    async def _earliest(self, partitions: set[Any]) -> dict[Any, int]:
        wanted = {tp: TopicPartition(tp.topic, tp.partition) for tp in partitions}
        found = await self._ensure_consumer().beginning_offsets(list(wanted.values()))
        return {tp: int(found[key]) for tp, key in wanted.items() if key in found}

    async def seek_to(self, tp: Any, offset: int) -> None:
        """Seek ``tp`` to ``offset``."""
        await self.call_thread(self._seek_to, tp, offset)

    async def _seek_to(self, tp: Any, offset: int) -> None:
        self._ensure_consumer().seek(TopicPartition(tp.topic, tp.partition), offset)


class Consumer(faust_aiokafka.Consumer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: What may be committed: the records handed over and not yet settled.
        self.ledger: CommitLedger[TP] = CommitLedger()
        #: One resume callback per partition: a buffer keeps a set of them, by identity.
        self._resume_when_drained: dict[Any, Callable[[], None]] = {}

    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    # -- the commit position ------------------------------------------------------------------
    async def on_partitions_assigned(self, assigned: set[TP], generation_id: int = 0) -> None:
        """A new generation: the ledger starts afresh before anything of it is read, and so
        does the fetch loop's record of what it read (a hand-over that ended after the revoke,
        its put cancelled by Faust's flow-control clear, wrote one of the ended generation:
        kept, it would skip the records from the committed offset up to it)."""
        self.ledger.start(generation_id)
        self._read_offset.clear()
        await super().on_partitions_assigned(assigned, generation_id)

    async def perform_seek(self) -> None:
        """Seek every assigned partition to its committed offset, one partition at a time.

        Faust seeks them all in one call that fails as a whole when one of them is no longer
        assigned (a rebalance under way; on Tansu: "exception performing seek when flow not
        active"), which left kept partitions unread from their committed offsets. Here a
        partition that cannot be sought is said and skipped; the others are sought.
        """
        thread = cast(ConsumerThread, self._thread)
        assignment = set(self.assignment())
        if not assignment:
            return
        try:
            committed = await thread.committed_offsets(assignment)
            fresh = {tp for tp, offset in committed.items() if offset is None}
            # No commit yet: sought to its first record, a real position. (A seek to the
            # beginning leaves none until aiokafka's reset is done, and Faust's livelock
            # check then failed on an assertion and crashed a worker in a chaos run.)
            earliest = await thread.earliest_offsets_of(fresh) if fresh else {}
        except Exception as exc:  # a broker restarting; a new assignment starts at them anyway
            log.warning("could not read the committed offsets (%r); not seeking", exc)
            for tp in assignment:  # what was read is no guide to what comes now
                self._read_offset[faust_consumer.ensure_TP(tp)] = None
            return
        for tp, offset in committed.items():
            position = offset if offset is not None else earliest.get(tp)
            try:
                if position is None:
                    raise LookupError("no committed or earliest offset")
                await thread.seek_to(tp, position)
            except Exception as exc:  # revoked meanwhile, or the broker went away
                log.warning("%s[%d]: not sought to %s: %r", tp.topic, tp.partition, position, exc)
                self._read_offset[faust_consumer.ensure_TP(tp)] = None
                continue
            tp = faust_consumer.ensure_TP(tp)
            self._read_offset[tp] = position if position else None
            self._committed_offset[tp] = offset if offset else None
            self.ledger.floor(tp, offset)

    def ack(self, message: Any) -> bool:
        """The record's jobs all settled: it is settled in the ledger (Faust's own list of
        acknowledged offsets is neither kept nor read)."""
        if message.acked:
            return False
        message.acked = True
        self._unacked_messages.discard(message)
        self.ledger.settle(message.tp, message.offset, message.generation_id)
        notify(self._waiting_for_ack)
        return True

    def _filter_tps_with_pending_acks(self, topics: Any = None) -> Iterator[TP]:
        return (
            tp
            for tp in self.ledger.partitions()
            if topics is None or tp in topics or tp.topic in topics
        )

    def _filter_committable_offsets(self, tps: Iterable[TP]) -> dict[TP, int]:
        return self.ledger.committable(tps)

    async def force_commit(self, topics: Any = None, start_new_transaction: bool = True) -> bool:
        """Commit what the ledger allows, as one sequence:

        1. Take the committable offsets from the ledger (first: every record that a job
           settled before this moment wrote was appended to the batch writer before it).
        2. Flush the batch writer (:data:`before_flush`): its batches are on the broker, or
           this raises and nothing is committed.
        3. Flush the producer: every other record sent before (dead letters, reports).
        4. Commit the offsets of step 1 for the partitions still assigned.
        5. Raise the ledger's floor to them.

        :meth:`Faust's commit <faust.transport.consumer.Consumer.commit>` calls this one
        commit at a time; after :meth:`CommitLedger.close` (the graceful stop) step 1 is empty.
        """
        offsets = self.ledger.committable(self._filter_tps_with_pending_acks(topics))
        if not offsets:
            return False
        await self.app.producer.flush()  # steps 2 and 3: Producer.flush
        assignment = self.assignment()
        offsets = {tp: offset for tp, offset in offsets.items() if tp in assignment}
        if not offsets or not await self._commit(offsets):
            return False
        self.ledger.committed(offsets)
        self._committed_offset.update(offsets)
        self.app.monitor.on_tp_commit(offsets)
        return True

    def _full_buffer(self, tp: Any) -> Any:
        """The full stream buffer that a message of ``tp`` must not wait for, if any."""
        if tp.topic not in leave_on_broker_when_full:
            return None
        conductor: Any = self.app.topics  # its partition -> channels index is private
        for channel in conductor._tp_index.get(tp, ()):
            if channel.queue.full():
                return channel.queue
        return None

    async def _leave_on_broker(self, tp: Any, offset: int, buffer: Any) -> None:
        """Read ``tp`` again from ``offset`` once ``buffer`` has drained; fetch none of it until
        then (Faust's own pause under buffer pressure, and its own resume)."""
        # Faust's partition sets hold its own TP type (they assert it), not aiokafka's.
        tp = faust_consumer.ensure_TP(tp)
        resume = self._resume_when_drained.get(tp)
        if resume is None:
            resume = self._resume_when_drained[tp] = functools.partial(self.on_buffer_drop, tp)
        self.on_buffer_full(tp)
        buffer.in_pressure_high_state(resume)
        # Revoked meanwhile (the client's rebalance runs in its own thread): the message is
        # the new owner's to read from the committed offset, not ours to hand over.
        with contextlib.suppress(IllegalStateError):
            await self.seek(tp, offset)

    async def _drain_messages(self, fetcher: Any) -> None:
        """Faust's fetch loop (read offsets, gaps, commit-every), with the cheaper hand-over."""
        callback = self.callback
        flow = self.app.flow_control
        flow_active = flow.is_active
        suspend_flow = self.suspend_flow
        read_offset = self._read_offset
        acks_enabled_for = self.app.topics.acks_enabled_for
        consumer_stopped = self._stopped.is_set
        fetcher_stopped = fetcher._stopped.is_set
        full_buffer = self._full_buffer
        ledger = self.ledger
        hand_over = ledger.hand_over
        since_yield = 0
        try:
            while not (consumer_stopped() or fetcher_stopped()):
                self.diag.set_flag(faust_consumer.CONSUMER_FETCHING)
                messages = cast(AsyncIterator[Any], self.getmany(timeout=1.0))
                await asyncio.sleep(0)  # getmany may return at once, again and again
                if self.should_stop:
                    continue
                left: set[Any] = set()  # partitions sought back in this batch
                async for tp, message in messages:
                    if tp in left:
                        continue
                    since_yield += 1
                    if since_yield > 100:
                        await asyncio.sleep(0)
                        since_yield = 0
                    offset = message.offset
                    last = read_offset[tp]
                    if last is not None and offset < last:
                        continue  # already read (a re-fetch after a seek)
                    if last and offset - last > 1 and acks_enabled_for(message.topic):
                        # Offsets with no record (a transaction marker, a compacted record)
                        # are passed over by the ledger; in a plain topic a gap would be
                        # records lost between the broker and us, so it is said.
                        log.warning(
                            "%s[%d]: no records at offsets %d..%d",
                            tp.topic,
                            tp.partition,
                            last + 1,
                            offset - 1,
                        )
                    generation = message.generation_id
                    if flow_active() and not suspend_flow.is_set():
                        buffer = full_buffer(tp)
                        if buffer is not None:
                            await self._leave_on_broker(tp, offset, buffer)
                            left.add(tp)
                            continue
                        # Entered before the hand-over, which may yield: its agent could
                        # settle it before this line ran again.
                        if not hand_over(tp, offset, generation):
                            continue  # fetched in a generation that has ended
                        await callback(message)
                    else:
                        if not hand_over(tp, offset, generation):
                            continue
                        await self.wait_first(callback(message), suspend_flow.wait())
                    if ledger.generation == generation:
                        # Not after a rebalance during the hand-over: the partition was sought
                        # back to its committed offset then, and must be read from there.
                        read_offset[tp] = offset
                self.diag.unset_flag(faust_consumer.CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                return
            raise
        finally:
            self.diag.unset_flag(faust_consumer.CONSUMER_FETCHING)


class Producer(faust_aiokafka.Producer):
    async def flush(self) -> None:
        for hook in before_flush:
            await hook()
        await super().flush()


class Transport(faust_aiokafka.Transport):
    Consumer = Consumer
    Producer = Producer


TRANSPORTS.aliases[SCHEME] = f"{__name__}:Transport"
