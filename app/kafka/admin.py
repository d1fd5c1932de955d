"""Creating hookstream's topics on the broker (idempotent), before any worker subscribes.

The embedded broker auto-creates unknown topics with 4 partitions, so topics are created
explicitly with the configured partitions and configs (``webhooks`` is compacted).
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError

from app.kafka.security import client_options
from app.kafka.topics import TopicCatalog
from app.settings import Settings

log = logging.getLogger(__name__)


async def wait_for_broker(settings: Settings, timeout: float = 30.0) -> None:
    """Return once the broker answers metadata requests; raise after ``timeout`` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        admin = AIOKafkaAdminClient(**client_options(settings))
        try:
            await admin.start()
            await admin.list_topics()
            return
        except KafkaConnectionError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.2)
        finally:
            await admin.close()


async def create_topics(settings: Settings) -> list[str]:
    """Create every missing topic of the catalog; return the names that were created."""
    catalog = TopicCatalog.from_settings(settings)
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(
                name=spec.name,
                num_partitions=spec.partitions,
                replication_factor=settings.replication_factor,
                topic_configs=spec.config,
            )
            for spec in catalog.specs()
            if spec.name not in existing
        ]
        created = []
        for topic in missing:
            try:
                await admin.create_topics([topic])
                created.append(topic.name)
            except TopicAlreadyExistsError:
                pass  # another process created it between list and create
        if created:
            log.info("created topics: %s", ", ".join(created))
        return created
    finally:
        await admin.close()
