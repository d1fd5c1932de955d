"""The Faust app (alone here): its settings, and the modules that register agents and pages.

Run it with ``hookstream worker`` (which creates the topics first), or ``faust -A app.main
worker``. Topics are raw bytes on the wire; every stage validates with its own pydantic model,
so a bad record becomes a specific error on ``events.invalid`` instead of a codec crash.
"""

from __future__ import annotations

import asyncio
from typing import Any

import faust

from app import faust_transport
from app.kafka_security import faust_credentials
from app.settings import get_settings

settings = get_settings()

#: Bytes per producer record batch (below the broker's usual 1 MiB message limit).
PRODUCER_MAX_BATCH_SIZE = 256 * 1024


class Worker(faust.Worker):
    """Faust's worker without its terminal spinner.

    At log level WARN and above Faust sets the root logger to DEBUG so the spinner turns on
    every record; under load that alone cost ~10 % of the worker's CPU (py-spy).
    """

    def on_setup_root_logger(self, logger: Any, level: int) -> None:
        self.spinner = None
        super().on_setup_root_logger(logger, level)

    async def on_stop(self) -> None:
        """Graceful stop (SIGTERM): finish what is in flight, commit it, and nothing more.

        1. Stop handing events to the agents (as Faust does when it stops its consumer).
        2. Wait for the deliveries in flight, up to the request timeout + 5 s.
        3. Commit the offsets of everything finished, then turn further commits off: while
           stopping, Faust cancels its actors and acknowledges the event each one holds (a
           retry waiting out its delay, a delivery still running after the wait). Committing
           those would lose them; uncommitted, they are redelivered after the restart.
        """
        from app.runtime import drain

        consumer: Any = app.consumer  # Faust's Consumer; its protocol type lacks force_commit
        assignment = consumer.assignment()
        consumer.stop_flow()
        app.flow_control.suspend()
        consumer.pause_partitions(assignment)
        app.flow_control.clear()
        timeout = settings.request_timeout + 5
        self.log.info("draining in-flight deliveries (up to %.0f s)", timeout)
        if not await drain.wait_idle(timeout):
            self.log.warning("stopping with deliveries still in flight; they will be redelivered")
        await asyncio.sleep(0.1)  # let the actors acknowledge what they finished
        # force_commit: commit() returns without committing while a periodic commit runs.
        await consumer.maybe_wait_for_commit_to_finish()
        committed = await consumer.force_commit()
        self.log.info("drained; final commit %s", "done" if committed else "had nothing new")

        async def _no_commit(*args: Any, **kwargs: Any) -> bool:
            return False

        consumer.commit = _no_commit
        await super().on_stop()


app = faust.App(
    settings.app_id,
    broker=[f"{faust_transport.SCHEME}://{server}" for server in settings.bootstrap_servers],
    broker_credentials=faust_credentials(settings),
    autodiscover=False,
    origin="app",
    topic_partitions=settings.partitions,
    topic_replication_factor=settings.replication_factor,
    broker_session_timeout=settings.broker_session_timeout,
    broker_heartbeat_interval=min(3.0, settings.broker_session_timeout / 3),
    consumer_auto_offset_reset="earliest",
    # Retry tiers hold events while they wait out their delay; a rebalance must not wait for
    # them (an unfinished event is simply processed again by the new owner: at least once).
    stream_wait_empty=False,
    producer_linger_ms=settings.producer_linger_ms,
    # The batch writer's batches are this big: 16 KiB (the default) held ~45 attempt records,
    # so a busy partition needed dozens of produce round trips a second.
    producer_max_batch_size=PRODUCER_MAX_BATCH_SIZE,
    producer_acks=-1,
    datadir=settings.data_dir,
    web_host=settings.web_host,
    web_in_thread=False,
    Worker=Worker,
)

# Registration side effects: agents and web pages attach themselves to ``app``.
from app import web  # noqa: E402, F401
from app.agents import deliver, ingest, webhooks  # noqa: E402, F401
from app.api import logs, track  # noqa: E402, F401
from app.api import webhooks as webhooks_api  # noqa: E402, F401
