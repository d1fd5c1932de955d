"""Webhooks validator: reports invalid webhook configs to ``events.invalid``, once each.

The config view (on every worker) skips invalid configs silently; this agent owns each
partition of ``webhooks`` once in the consumer group with committed offsets, so a bad config
is reported once, not by every worker at every restart.
"""

from __future__ import annotations

from faust.types import StreamT

from app.agents.reporting import report_invalid
from app.kafka.config_view import is_barrier
from app.main import app, settings
from app.model.errors import InvalidInputError
from app.model.url_policy import UrlPolicy
from app.model.webhook_config import parse_config_record, redact_config_bytes
from app.runtime import channels

_policy = UrlPolicy(settings.allow_http, settings.allow_private_networks)


@app.agent(channels.webhooks, name="hookstream.webhooks")
async def validate_webhooks(stream: StreamT[bytes]) -> None:
    async for event in stream.events():
        message = event.message
        if event.value is None or is_barrier(
            message.headers.items() if isinstance(message.headers, dict) else message.headers
        ):
            continue
        try:
            parse_config_record(
                message.key, event.value, _policy, tracking=settings.tracking_secret is not None
            )
        except InvalidInputError as exc:
            await report_invalid(
                event, str(exc), stage="webhooks", value=redact_config_bytes(event.value)
            )
