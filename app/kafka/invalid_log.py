"""Reading ``events.invalid`` for operators: what was refused, where it was, and why.

The listing gives each record's place, stage and reason, never its raw value (a refused
webhook config may carry a secret; the value is kept on the topic, redacted, for a consumer
that needs it).
"""

from __future__ import annotations

import orjson
from pydantic import ValidationError

from app.kafka.log_scan import Scan, scan_topic
from app.kafka.topics import TopicCatalog
from app.model.records import InvalidRecord
from app.settings import Settings


async def list_invalid(settings: Settings, since: float | None, limit: int) -> Scan[InvalidRecord]:
    """The newest ``limit`` records of ``events.invalid`` refused at or after ``since``,
    newest first."""

    def decode(_key: bytes | None, value: bytes) -> InvalidRecord | None:
        try:
            record = InvalidRecord.from_bytes(value)
        except (ValidationError, orjson.JSONDecodeError):
            return None
        return record if since is None or record.at >= since else None

    topic = TopicCatalog.from_settings(settings).events_invalid
    scan = await scan_topic(settings, topic, decode, settings.log_scan_records, newest=limit)
    scan.items = sorted(scan.items, key=lambda r: r.at, reverse=True)[:limit]
    return scan
