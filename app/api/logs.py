"""``/api/webhooks/{id}/attempts``, ``/api/failed`` and ``/api/failed/replay``.

Listings read the newest ``HOOKSTREAM_LOG_SCAN_RECORDS`` records of each partition of the
``attempts`` / ``deliveries.failed`` topics on demand (see :mod:`app.kafka.log_scan`).
"""

from __future__ import annotations

import orjson
from faust.web import Request, Response, View
from pydantic import ValidationError

from app import metrics
from app.api.common import ApiError, api, parse_body
from app.api.models import ReplayIn, ReplayOut
from app.kafka.log_scan import scan_topic
from app.kafka.replay import list_dead_letters, replay, select
from app.main import app, settings
from app.model.records import AttemptRecord
from app.runtime import channels

MAX_LIMIT = 1000


def _limit(request: Request, default: int = 50) -> int:
    raw = request.query.get("limit", str(default))
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise ApiError(422, f"limit: must be a whole number from 1 to {MAX_LIMIT}")
    return int(raw)


@app.page("/api/webhooks/{webhook_id}/attempts")
class Attempts(View):
    @api()
    async def get(self, request: Request, webhook_id: str) -> Response:
        limit = _limit(request)

        def decode(record_key: bytes | None, value: bytes) -> AttemptRecord | None:
            try:
                record: AttemptRecord = AttemptRecord.from_bytes(value)
            except (ValidationError, orjson.JSONDecodeError):
                return None
            return record

        scan = await scan_topic(
            settings,
            channels.catalog.attempts,
            decode,
            settings.log_scan_records,
            key=webhook_id.encode(),
            newest=limit,
        )
        records = sorted(scan.items, key=lambda r: r.result.at, reverse=True)[:limit]
        return self.json(
            {
                "attempts": [r.model_dump(mode="json") for r in records],
                "truncated": scan.truncated,
            }
        )


@app.page("/api/failed")
class Failed(View):
    @api()
    async def get(self, request: Request) -> Response:
        limit = _limit(request, default=100)
        scan = await list_dead_letters(settings, request.query.get("webhook_id"), newest=limit)
        return self.json(
            {"failed": [x.model_dump(mode="json") for x in scan.items], "truncated": scan.truncated}
        )


@app.page("/api/failed/replay")
class Replay(View):
    @api()
    async def post(self, request: Request) -> Response:
        body = await parse_body(request, ReplayIn)
        if body.delivery_ids is None and body.webhook_id is None and body.since is None:
            raise ApiError(422, "say what to replay: delivery_ids, webhook_id, or since/until")
        scan = await list_dead_letters(settings, body.webhook_id)
        letters = select(scan.items, body.delivery_ids, body.webhook_id, body.since, body.until)

        async def send(key: bytes, value: bytes) -> None:
            await (await channels.deliveries.send(key=key, value=value))

        replayed = await replay(letters, send)
        metrics.replays.inc(len(replayed))
        return self.json(
            ReplayOut(replayed=replayed, truncated=scan.truncated).model_dump(mode="json")
        )
