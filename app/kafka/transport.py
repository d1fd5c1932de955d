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

It also runs hooks before the producer's flush (:data:`before_flush`), which Faust calls
right before it commits offsets: the batch writer hands over its open record batches there.

Registered as the ``hookstream://`` broker scheme (used by :mod:`app.main`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

from aiokafka.errors import IllegalStateError
from faust.transport import consumer as faust_consumer
from faust.transport.drivers import TRANSPORTS
from faust.transport.drivers import aiokafka as faust_aiokafka

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


class Consumer(faust_aiokafka.Consumer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: One resume callback per partition: a buffer keeps a set of them, by identity.
        self._resume_when_drained: dict[Any, Callable[[], None]] = {}

    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

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
                        # count as acknowledged: a gap in a plain topic would be records lost
                        # between the broker and us, so it is said.
                        log.warning(
                            "%s[%d]: no records at offsets %d..%d; committing past them",
                            tp.topic,
                            tp.partition,
                            last + 1,
                            offset - 1,
                        )
                        await self._add_gap(tp, last + 1, offset)
                    if self._commit_every is not None and self._n_acked >= self._commit_every:
                        self._n_acked = 0
                        await self.commit()
                    if flow_active() and not suspend_flow.is_set():
                        buffer = full_buffer(tp)
                        if buffer is not None:
                            await self._leave_on_broker(tp, offset, buffer)
                            left.add(tp)
                            continue
                        await callback(message)
                    else:
                        await self.wait_first(callback(message), suspend_flow.wait())
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
