"""Sending invalid input to ``events.invalid``: nothing bad is dropped silently."""

from __future__ import annotations

import base64
import logging
import time

from faust.types import EventT

from app.model.records import INVALID_VALUE_CAP, InvalidRecord
from app.runtime import channels

log = logging.getLogger(__name__)


async def report_invalid(
    event: EventT[bytes], error: str, stage: str, value: bytes | None = None
) -> None:
    """Record ``event``'s raw bytes (or ``value``, e.g. redacted) with the reason; wait until
    the broker has it."""
    message = event.message
    raw = (
        value if value is not None else message.value if isinstance(message.value, bytes) else None
    )
    key = message.key if isinstance(message.key, bytes) else None
    record = InvalidRecord(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=key.decode("utf-8", "replace") if key is not None else None,
        value_base64=base64.b64encode(raw[:INVALID_VALUE_CAP]).decode()
        if raw is not None
        else None,
        value_size=len(raw) if raw is not None else None,
        error=error,
        stage=stage,
        at=time.time(),
    )
    log.warning(
        "invalid record %s[%d]@%d: %s", message.topic, message.partition, message.offset, error
    )
    await (await channels.events_invalid.send(key=key, value=record.to_bytes()))
