"""The Faust topic objects of the catalog (raw bytes; models are applied by each stage)."""

from __future__ import annotations

from typing import Any

from app.kafka import transport
from app.kafka.topics import TopicCatalog
from app.main import app, settings
from app.model.events import EventFamily

catalog: TopicCatalog = TopicCatalog.from_settings(settings)


def _raw_topic(*names: str) -> Any:
    return app.topic(
        *names,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.partitions,
        internal=False,
    )


events = _raw_topic(catalog.events_contacts, catalog.events_messages)
#: For producing feedback events (a multi-topic object cannot send to one of its names).
events_messages = _raw_topic(catalog.events_messages)
webhooks = _raw_topic(catalog.webhooks)
deliveries = _raw_topic(catalog.deliveries)
retry_topic_names: dict[int, str] = {t: catalog.retry(t) for t in range(1, catalog.retry_tiers + 1)}
retry_tiers = {t: _raw_topic(name) for t, name in retry_topic_names.items()}
deliveries_parked = _raw_topic(catalog.deliveries_parked)
parked_topic_name: str = catalog.deliveries_parked
# Streams that hold records for long (tiers until due, the parking lane while it is full).
transport.leave_on_broker_when_full.update([*retry_topic_names.values(), parked_topic_name])
#: Resolved once: the delivery path names these topics for every attempt.
attempts_topic_name: str = catalog.attempts
deliveries_failed = _raw_topic(catalog.deliveries_failed)
attempts = _raw_topic(catalog.attempts)
events_invalid = _raw_topic(catalog.events_invalid)

FAMILY_BY_TOPIC = {
    catalog.events_contacts: EventFamily.CONTACTS,
    catalog.events_messages: EventFamily.MESSAGES,
}
