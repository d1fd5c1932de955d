"""The Faust app, alone: its settings and nothing else.

Importing this module imports no agent, page, channel or per-worker state: those import the
app and register themselves on it, and :mod:`app.worker`, the worker's entry module, imports
them and sets the worker class. Run a worker with ``hookstream worker`` or
``faust -A app.worker worker``.

Topics are raw bytes on the wire; every stage validates with its own pydantic model, so a bad
record becomes a specific error on ``events.invalid`` instead of a codec crash.
"""

from __future__ import annotations

import faust

from app.kafka import transport
from app.kafka.security import faust_credentials
from app.settings import get_settings

settings = get_settings()

#: Bytes per producer record batch (below the broker's usual 1 MiB message limit).
PRODUCER_MAX_BATCH_SIZE = 256 * 1024

app = faust.App(
    settings.app_id,
    broker=[f"{transport.SCHEME}://{server}" for server in settings.bootstrap_servers],
    broker_credentials=faust_credentials(settings),
    autodiscover=False,
    origin="app",
    topic_partitions=settings.partitions,
    topic_replication_factor=settings.replication_factor,
    broker_session_timeout=settings.broker_session_timeout,
    broker_commit_interval=settings.commit_interval,
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
)
