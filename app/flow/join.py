"""The join (pure): parse an input event, match it to webhooks, and make one job per match.

The delivery id is what receivers deduplicate on (it is sent as ``webhook-id``), so it must be
the same however often the same event is processed: it is derived from the event id and the
webhook id, or, for events without an id, from the record's topic/partition/offset.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

import orjson
from pydantic import ValidationError

from app.flow.payload import custom_payload, standard_payload
from app.flow.tracking import message_of
from app.model.errors import InvalidInputError, describe_validation_error
from app.model.events import EVENT_MODELS, EventBase, EventFamily, canonical_event_name
from app.model.records import DeliveryJob, SourceRef
from app.model.webhook_config import Ordering, WebhookConfig


def parse_event(raw: bytes | None, family: EventFamily) -> tuple[EventBase, dict[str, Any]]:
    """Validate the bytes of an input record; return the event and its JSON document.

    Raises :class:`InvalidInputError` with a specific reason for anything that is not a valid
    event of ``family``.
    """
    if raw is None:
        raise InvalidInputError("record has no value")
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidInputError(f"value is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise InvalidInputError(f"event must be a JSON object, got {type(document).__name__}")
    name = document.get("event")
    if not isinstance(name, str):
        raise InvalidInputError("event: missing or not a string")
    try:
        canonical = canonical_event_name(name)
    except ValueError as exc:
        raise InvalidInputError(f"event: {exc}") from None
    model = EVENT_MODELS[canonical]
    if model.family is not family:
        raise InvalidInputError(
            f"event {canonical.value!r} belongs on events.{model.family.value}, "
            f"not events.{family.value}"
        )
    try:
        event = model.model_validate(document)
    except ValidationError as exc:
        raise InvalidInputError(f"{canonical.value}: {describe_validation_error(exc)}") from None
    document["event"] = canonical.value
    return event, document


def delivery_id(event: EventBase, webhook_id: str, source: SourceRef) -> str:
    """A stable id for (event, webhook), in the Standard Webhooks ``msg_`` style."""
    if event.event_id is not None:
        basis = f"e\x00{event.account_id}\x00{event.event_id}\x00{webhook_id}"
    else:
        basis = f"o\x00{source.topic}\x00{source.partition}\x00{source.offset}\x00{webhook_id}"
    return "msg_" + hashlib.sha256(basis.encode()).hexdigest()[:32]


def matches(webhook: WebhookConfig, event: EventBase) -> bool:
    """Whether ``webhook`` wants ``event``: active, subscribed, in its campaign scope."""
    if not webhook.active or not webhook.subscribes_to(event.event_name):
        return False
    if webhook.campaign_id is not None:
        return event.campaign_id is not None and str(event.campaign_id) == str(webhook.campaign_id)
    return True


def ordering_key(record_key: bytes | None) -> str | None:
    """The text of an input record's key (hex when it is not UTF-8); None for no key: a record
    without a key has no order to keep (Kafka spreads such records over partitions)."""
    if record_key is None:
        return None
    try:
        return record_key.decode()
    except UnicodeDecodeError:
        return "hex:" + record_key.hex()


def jobs_for_event(
    event: EventBase,
    document: dict[str, Any],
    webhooks: Iterable[WebhookConfig],
    source: SourceRef,
    now: float,
    record_key: bytes | None = None,
) -> list[DeliveryJob]:
    """One job per matching webhook; the standard payload is built once and shared. A webhook
    that orders by key gets the record's key on its job."""
    jobs: list[DeliveryJob] = []
    key_text: str | None = None
    standard: dict[str, Any] | None = None
    for webhook in webhooks:
        if webhook.account_id != event.account_id or not matches(webhook, event):
            continue
        if webhook.custom_payload is not None:
            payload = custom_payload(document, webhook.custom_payload)
        else:
            standard = standard if standard is not None else standard_payload(event, document)
            payload = standard
        jobs.append(
            DeliveryJob.model_construct(  # built from validated data: no second validation
                delivery_id=delivery_id(event, webhook.id, source),
                webhook_id=webhook.id,
                account_id=event.account_id,
                event=event.event_name,
                event_id=event.event_id,
                payload=payload,
                created_at=now,
                source=source,
                message=message_of(document) if webhook.tracking else None,
                ordering_key=(
                    (key_text := key_text or ordering_key(record_key))
                    if webhook.ordering is Ordering.KEY
                    else None
                ),
                members=None,
            )
        )
    return jobs
