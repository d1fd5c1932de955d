"""The partitions of a topic, for clients that assign partitions themselves (no group).

aiokafka's ``partitions_for_topic`` answers from the client's cached metadata, which holds only
the topics the client tracks; a group-less consumer tracks none. Apache Kafka answers a metadata
request for no topics with no topics, so such a consumer never learns a partition. The embedded
broker answers it with every topic, which hid this until the suite ran on Kafka 4.4 (the config
view waited forever for a ``webhooks`` topic that existed).
"""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer


async def topic_partitions(
    consumer: AIOKafkaConsumer, topic: str, timeout: float = 10.0
) -> list[int]:
    """The partition ids of ``topic``, sorted; ``LookupError`` if it has none after ``timeout``."""
    # Tracking the topic makes every later metadata refresh of this client include it.
    # aiokafka keeps that behind its client object (pinned version, see pyproject.toml).
    client = consumer._client
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        await client.add_topic(topic)
        partitions = consumer.partitions_for_topic(topic)
        if partitions:
            return sorted(partitions)
        if asyncio.get_running_loop().time() > deadline:
            raise LookupError(f"topic {topic} does not exist; run 'hookstream topics create'")
        await asyncio.sleep(0.2)
        await client.force_metadata_update()
