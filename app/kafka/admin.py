"""Creating hookstream's topics on the broker (idempotent), before any worker subscribes.

Topics are created explicitly with the configured partitions and configs (``webhooks`` is
compacted): the embedded broker auto-creates unknown topics with 4 partitions and no config,
and a production Kafka cluster usually has ``auto.create.topics.enable=false`` (the local Apache
Kafka broker too, so the suite proves that nothing relies on it).
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError, for_code

from app.kafka.security import client_options
from app.kafka.topics import TopicCatalog
from app.model.errors import HookstreamError
from app.settings import Settings

log = logging.getLogger(__name__)


class TopicCreationError(HookstreamError):
    """The cluster refused a topic (not because it exists): the message names it and why."""


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


async def create_topics(settings: Settings, timeout: float = 60.0) -> list[str]:
    """Create every missing topic of the catalog; return the names that were created.

    Each topic's answer is checked (a create request succeeds as a whole while single topics
    fail: the broker says why per topic), retriable refusals are retried until ``timeout``,
    and the call returns once every topic of the catalog is in the cluster's metadata, so a
    worker that subscribes next sees all of them (a cluster with
    ``auto.create.topics.enable=false`` creates nothing on its own).
    """
    catalog = TopicCatalog.from_settings(settings)
    specs = {spec.name: spec for spec in catalog.specs()}
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    try:
        existing = set(await admin.list_topics())
        pending = {name: spec for name, spec in specs.items() if name not in existing}
        created: list[str] = []
        while pending:
            response = await admin.create_topics(
                [
                    NewTopic(
                        name=spec.name,
                        num_partitions=spec.partitions,
                        replication_factor=settings.replication_factor,
                        topic_configs=spec.config,
                    )
                    for spec in pending.values()
                ]
            )
            for name, code, message, *_ in response.topic_errors:
                error = for_code(code) if code else None
                if error is None:
                    created.append(name)
                elif error is not TopicAlreadyExistsError:  # another process made it: fine
                    if not error.retriable or loop.time() > deadline:
                        raise TopicCreationError(
                            f"cannot create topic {name}: {error.__name__}: {message or ''}"
                        )
                    continue
                pending.pop(name, None)
            if pending:
                await asyncio.sleep(0.5)
        while not set(specs) <= set(await admin.list_topics()):
            if loop.time() > deadline:
                raise TopicCreationError("created topics did not appear in the cluster metadata")
            await asyncio.sleep(0.1)
        if created:
            log.info("created topics: %s", ", ".join(created))
        return created
    finally:
        await admin.close()
