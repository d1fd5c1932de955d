"""Per-worker shared state: the config view, the HTTP client and the batch writer, started with
the app. The delivery scheduler, which needs the deliver agent's send and park, lives with it
(:mod:`app.agents.deliver`)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

from faust.types import TP
from mode import Service

from app import metrics
from app.delivery.failure_streaks import FailureStreaks
from app.http.client import DeliveryClient
from app.kafka import transport
from app.kafka.batch_writer import BatchWriter
from app.kafka.commit_ledger import CommitLedger
from app.kafka.config_view import ConfigView
from app.main import app, settings
from app.model.url_policy import UrlPolicy
from app.runtime import channels
from app.runtime.gc_tuning import tune_gc

log = logging.getLogger(__name__)


#: Set once the batch writer is bound to the producer; the delivering agents wait for it.
writer_ready = asyncio.Event()
failure_streaks = FailureStreaks(settings.auto_disable_after)
config_view = ConfigView(settings, channels.catalog.webhooks)
batch_writer = BatchWriter(linger=settings.batch_linger_ms / 1000)
transport.before_flush.append(batch_writer.flush)
delivery_client = DeliveryClient(
    UrlPolicy(settings.allow_http, settings.allow_private_networks),
    timeout=settings.request_timeout,
    tracking_key=(
        settings.tracking_secret.get_secret_value().encode() if settings.tracking_secret else None
    ),
    tracking_ttl=settings.tracking_token_ttl,
)


def commit_ledger() -> CommitLedger[TP]:
    """The worker's commit ledger (the consumer's: it enters every record handed over)."""
    consumer: Any = app.consumer  # hookstream's transport Consumer; ConsumerT lacks .ledger
    return cast(CommitLedger[TP], consumer.ledger)


async def wait_ready() -> None:
    """Until the worker can deliver: config view caught up, batch writer bound."""
    await config_view.ready.wait()
    await writer_ready.wait()


@app.service
class RuntimeService(Service):
    """Runs the config view for the life of the worker and closes the HTTP session at stop."""

    _view_task: asyncio.Task[None] | None = None

    async def on_start(self) -> None:
        self._view_task = asyncio.ensure_future(self._run_view())
        ledger = commit_ledger()
        metrics.records_unsettled.set_function(ledger.outstanding)

    @Service.task
    async def _start_batch_writer(self) -> None:
        # Faust's aiokafka client is private API (faust-streaming is pinned); the agents wait
        # for `writer_ready` before any work.
        producer: Any = app.producer  # Faust's aiokafka Producer; ProducerT lacks the accessor
        await producer.maybe_start()
        topics = [
            channels.attempts_topic_name,
            channels.parked_topic_name,
            *channels.retry_topic_names.values(),
        ]
        await batch_writer.start(producer._ensure_producer(), topics)
        writer_ready.set()

    @Service.task
    async def _tune_gc_when_ready(self) -> None:
        await wait_ready()  # what exists now is the worker's long-lived state
        tune_gc()

    async def _run_view(self) -> None:
        # The view restarts from the beginning after an error: applying records is idempotent,
        # and a view that is already ready keeps serving its last state meanwhile.
        while True:
            try:
                await config_view.run()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("config view failed; restarting it in 1 s")
                await asyncio.sleep(1.0)

    async def on_stop(self) -> None:
        if self._view_task is not None:
            self._view_task.cancel()
            try:
                await self._view_task
            except asyncio.CancelledError:
                pass  # what cancel() asked for
            except Exception:
                log.exception("the config view failed while stopping")
        await delivery_client.close()
