"""The webhook-config view: every worker's complete, in-memory copy of the ``webhooks`` topic.

Why not a Faust table: table recovery stops at the partition end offset the broker reports,
and the embedded broker reports *first offset of the last batch + 1*, so a restarted worker
could silently miss the tail of a batch of config writes. The view instead

1. reads every partition of ``webhooks`` from the beginning with its own group-less consumer
   (each worker sees all webhooks, whichever event partitions it owns), and
2. decides it is complete with a *barrier*: at start it writes one marker record to each
   partition and is ready only once it has read past every marker. Everything acknowledged
   before the markers was written before them, so nothing can be missed, whatever end offsets
   the broker reports.

After that it keeps tailing, so config changes apply within one fetch. ``applied`` (next offset
per partition) lets a writer wait until its own write is visible (read-your-write).
Invalid configs are skipped here (the previous valid version stays in force); the
``webhooks`` validator agent, which owns each partition once in the consumer group, reports
them to ``events.invalid`` so a bad record is reported once, not once per worker restart.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from app.kafka.metadata import topic_partitions
from app.kafka.security import client_options
from app.model.errors import InvalidInputError
from app.model.url_policy import UrlPolicy
from app.model.webhook_config import WebhookConfig, parse_config_record
from app.settings import Settings

log = logging.getLogger(__name__)

BARRIER_HEADER = "hookstream-barrier"
BARRIER_KEY_PREFIX = "__barrier__."


async def _stop_quietly(what: str, client: AIOKafkaConsumer | AIOKafkaProducer) -> None:
    """Stop a client of the view; a failure to stop is logged, and does not hide the error
    (or the cancellation) that ended the view."""
    try:
        await client.stop()
    except Exception:
        log.warning("config view: stopping its %s failed", what, exc_info=True)


def is_barrier(headers: Iterable[tuple[str, bytes]] | None) -> bool:
    """Whether a webhooks record is a view barrier marker, not a config."""
    return any(name == BARRIER_HEADER for name, _ in headers or ())


class ConfigView:
    """Webhook configs by id and by account, rebuilt from the webhooks topic at every start."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self._settings = settings
        self._topic = topic
        self._policy = UrlPolicy(settings.allow_http, settings.allow_private_networks)
        self._by_id: dict[str, WebhookConfig] = {}
        self._by_account: dict[str, dict[str, WebhookConfig]] = {}
        self.applied: dict[int, int] = {}
        self.ready = asyncio.Event()
        self.loaded_at_ready: int | None = None
        self._partitions: list[int] = []
        self._producer: AIOKafkaProducer | None = None
        self._caught_up = asyncio.Condition()

    # -- reads -------------------------------------------------------------------------------
    def get(self, webhook_id: str) -> WebhookConfig | None:
        return self._by_id.get(webhook_id)

    def for_account(self, account_id: str) -> Iterable[WebhookConfig]:
        return self._by_account.get(account_id, {}).values()

    def __len__(self) -> int:
        return len(self._by_id)

    async def wait_applied(self, partition: int, offset: int, timeout: float) -> bool:
        """Wait until the record at ``offset`` of ``partition`` is applied; False on timeout."""

        async def _wait() -> None:
            async with self._caught_up:
                await self._caught_up.wait_for(lambda: self.applied.get(partition, 0) > offset)

        try:
            await asyncio.wait_for(_wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def sync(self, timeout: float = 10.0) -> bool:
        """Wait until everything written to the topic before this call is applied.

        Writes a barrier marker to every partition and waits to read past them, so a reader on
        any worker sees every write acknowledged before it asked (read-your-write).
        """
        await self.ready.wait()
        barrier = await self._write_barrier(self._partitions)
        for partition, offset in barrier.items():
            if not await self.wait_applied(partition, offset, timeout):
                return False
        return True

    # -- writes (from the topic only) --------------------------------------------------------
    def apply(self, key: bytes | None, value: bytes | None) -> None:
        """Apply one record of the webhooks topic (a config, or a tombstone)."""
        if value is None:
            if key is not None:
                self._remove(key.decode("utf-8", "replace"))
            return
        try:
            config = parse_config_record(
                key, value, self._policy, tracking=self._settings.tracking_secret is not None
            )
        except InvalidInputError as exc:
            log.debug("config view skips an invalid webhook config: %s", exc)
            return
        self._remove(config.id)
        self._by_id[config.id] = config
        self._by_account.setdefault(config.account_id, {})[config.id] = config

    def _remove(self, webhook_id: str) -> None:
        old = self._by_id.pop(webhook_id, None)
        if old is not None:
            account = self._by_account.get(old.account_id, {})
            account.pop(webhook_id, None)
            if not account:
                self._by_account.pop(old.account_id, None)

    # -- the loop ----------------------------------------------------------------------------
    async def run(self) -> None:
        """Load to the barrier, set ``ready``, then tail forever (cancel to stop)."""
        consumer = AIOKafkaConsumer(
            **client_options(self._settings),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            partitions = self._partitions = await topic_partitions(consumer, self._topic)
            tps = [TopicPartition(self._topic, p) for p in partitions]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            barrier = await self._write_barrier(partitions)
            log.info("config view loading %d partitions of %s", len(tps), self._topic)
            while True:
                batches = await consumer.getmany(timeout_ms=500, max_records=5000)
                await self._apply_batches(batches)
                if not self.ready.is_set() and all(
                    self.applied.get(p, 0) > offset for p, offset in barrier.items()
                ):
                    self.loaded_at_ready = len(self)
                    log.info("config view ready: %d webhooks", len(self))
                    self.ready.set()
        finally:
            await _stop_quietly("consumer", consumer)
            if self._producer is not None:
                await _stop_quietly("producer", self._producer)
                self._producer = None

    async def _apply_batches(self, batches: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        if not batches:
            return
        for tp, records in batches.items():
            for record in records:
                if not is_barrier(record.headers):
                    self.apply(record.key, record.value)
                self.applied[tp.partition] = record.offset + 1
        async with self._caught_up:
            self._caught_up.notify_all()

    async def _write_barrier(self, partitions: list[int]) -> dict[int, int]:
        """Write one marker per partition; return the offset each was written at."""
        if self._producer is None:
            self._producer = AIOKafkaProducer(**client_options(self._settings), acks="all")
            await self._producer.start()
        producer = self._producer
        token = uuid.uuid4().hex.encode()
        sent = [
            await producer.send(
                self._topic,
                key=f"{BARRIER_KEY_PREFIX}{p}".encode(),
                value=b'{"barrier":"' + token + b'"}',
                partition=p,
                headers=[(BARRIER_HEADER, token)],
            )
            for p in partitions
        ]
        metadata = await asyncio.gather(*sent)
        return {m.partition: m.offset for m in metadata}
