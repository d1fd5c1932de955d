"""Per-worker shared state: the config view and the HTTP client, started with the app."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from mode import Service

from app.delivery.endpoint_guard import EndpointGuard
from app.delivery.failure_streaks import FailureStreaks
from app.delivery.rate_limit import RateLimiter
from app.http.client import DeliveryClient
from app.kafka import transport
from app.kafka.batch_writer import BatchWriter
from app.kafka.config_view import ConfigView
from app.main import app, settings
from app.model.url_policy import UrlPolicy
from app.runtime import channels
from app.runtime.gc_tuning import tune_gc

log = logging.getLogger(__name__)


class Drain:
    """Counts the events this worker has in flight, so a graceful stop can finish them first
    (see ``Worker.on_stop`` in :mod:`app.worker`)."""

    def __init__(self) -> None:
        self._active = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @contextlib.contextmanager
    def track(self) -> Iterator[None]:
        self._active += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._active -= 1
            if self._active == 0:
                self._idle.set()

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing is in flight; False if something still is after ``timeout``."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True


drain = Drain()
#: Set once the batch writer is bound to the producer; the delivering agents wait for it.
writer_ready = asyncio.Event()
rate_limiter = RateLimiter()
failure_streaks = FailureStreaks(settings.auto_disable_after)
endpoint_guard = EndpointGuard(
    max_in_flight=settings.endpoint_max_in_flight,
    failure_threshold=settings.circuit_failure_threshold,
    cooldown=settings.circuit_cooldown,
    slow_after=settings.endpoint_slow_after,
)
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

    @Service.task
    async def _start_batch_writer(self) -> None:
        # Faust's aiokafka client is private API (faust-streaming is pinned); the agents wait
        # for `writer_ready` before any work.
        producer: Any = app.producer  # Faust's aiokafka Producer; ProducerT lacks the accessor
        await producer.maybe_start()
        topics = [channels.attempts_topic_name, *channels.retry_topic_names.values()]
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
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._view_task
        await delivery_client.close()
