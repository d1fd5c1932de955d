"""``/api/webhooks/{id}/attempts``, ``/api/failed``, ``/api/failed/replay`` and ``/api/invalid``.

Listings read the newest ``HOOKSTREAM_LOG_SCAN_RECORDS`` records of each partition of the
``attempts`` / ``deliveries.failed`` topics on demand (see :mod:`app.kafka.log_scan`).
"""

from __future__ import annotations

import time

import orjson
from faust.web import Request, Response, View
from pydantic import ValidationError

from app import metrics
from app.api.access import account_of_request, load_webhook, synced, visible_webhook_ids
from app.api.common import ApiError, api, parse_body
from app.api.models import (
    AttemptsOut,
    FailedOut,
    InvalidEntry,
    InvalidOut,
    ReplayIn,
    ReplayOut,
    StatsOut,
    WebhookStats,
)
from app.kafka.invalid_log import list_invalid
from app.kafka.log_scan import scan_topic
from app.kafka.replay import delivered_since_failing, list_dead_letters, replay, select
from app.main import app, settings
from app.model.records import AttemptRecord, Outcome
from app.runtime import channels
from app.runtime.state import config_view

MAX_LIMIT = 1000
DAY = 86400.0


async def _webhooks_asked(webhook_id: str | None) -> set[str] | None:
    """The webhooks a listing is about: the one asked for (if the caller may see it), else
    every webhook of a portal caller's account; None: all (the admin asked for none)."""
    if webhook_id is not None:
        await load_webhook(webhook_id)
        return {webhook_id}
    await synced()
    return visible_webhook_ids()


def _limit(request: Request, default: int = 50) -> int:
    raw = request.query.get("limit", str(default))
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise ApiError(422, f"limit: must be a whole number from 1 to {MAX_LIMIT}")
    return int(raw)


@app.page("/api/webhooks/{webhook_id}/attempts")
class Attempts(View):
    @api(accounts=True)
    async def get(self, request: Request, webhook_id: str) -> Response:
        limit = _limit(request)
        await load_webhook(webhook_id)  # 404 for another account's

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
            keys={webhook_id.encode()},
            newest=limit,
        )
        records = sorted(scan.items, key=lambda r: r.result.at, reverse=True)[:limit]
        return self.json(
            AttemptsOut(attempts=records, truncated=scan.truncated).model_dump(mode="json")
        )


@app.page("/api/failed")
class Failed(View):
    @api(accounts=True)
    async def get(self, request: Request) -> Response:
        limit = _limit(request, default=100)
        scan = await list_dead_letters(
            settings, await _webhooks_asked(request.query.get("webhook_id")), newest=limit
        )
        resolved = await delivered_since_failing(settings, scan.items)
        failed = [x for x in scan.items if x.job.delivery_id not in resolved]
        out = FailedOut(failed=failed, truncated=scan.truncated, resolved=len(resolved))
        return self.json(out.model_dump(mode="json"))


def _since(request: Request) -> float | None:
    raw = request.query.get("since")
    if raw is None:
        return None
    try:
        return float(raw)
    except ValueError:
        raise ApiError(422, "since: must be a unix time in seconds") from None


@app.page("/api/invalid")
class Invalid(View):
    """What ``events.invalid`` holds: operators only (a record may belong to any account)."""

    @api()
    async def get(self, request: Request) -> Response:
        limit = _limit(request, default=100)
        scan = await list_invalid(settings, _since(request), limit)
        entries = [
            InvalidEntry(
                at=r.at,
                topic=r.topic,
                partition=r.partition,
                offset=r.offset,
                stage=r.stage,
                reason=r.error,
            )
            for r in scan.items
        ]
        return self.json(
            InvalidOut(invalid=entries, truncated=scan.truncated).model_dump(mode="json")
        )


@app.page("/api/failed/replay")
class Replay(View):
    @api(accounts=True)
    async def post(self, request: Request) -> Response:
        body = await parse_body(request, ReplayIn)
        if body.delivery_ids is None and body.webhook_id is None and body.since is None:
            raise ApiError(422, "say what to replay: delivery_ids, webhook_id, or since/until")
        scan = await list_dead_letters(settings, await _webhooks_asked(body.webhook_id))
        letters = select(scan.items, body.delivery_ids, body.webhook_id, body.since, body.until)
        resolved = await delivered_since_failing(settings, letters)
        letters = [x for x in letters if x.job.delivery_id not in resolved]  # delivered since

        async def send(key: bytes, value: bytes) -> None:
            await (await channels.deliveries.send(key=key, value=value))

        replayed = await replay(letters, send)
        metrics.replays.inc(len(replayed))
        return self.json(
            ReplayOut(replayed=replayed, truncated=scan.truncated).model_dump(mode="json")
        )


@app.page("/api/webhook-stats")
class Stats(View):
    """The portal's list: each webhook's last real attempt and its failures of the last 24 h,
    from the newest attempt records of the account's webhooks."""

    @api(accounts=True)
    async def get(self, request: Request) -> Response:
        account_id = account_of_request(request.query.get("account_id"))
        await synced()
        ids = {c.id for c in config_view.for_account(account_id)}
        since = time.time() - DAY

        def decode(record_key: bytes | None, value: bytes) -> AttemptRecord | None:
            try:
                record: AttemptRecord = AttemptRecord.from_bytes(value)
            except (ValidationError, orjson.JSONDecodeError):
                return None
            return None if record.result.skipped else record  # a parking is no attempt

        scan = await scan_topic(
            settings,
            channels.catalog.attempts,
            decode,
            settings.log_scan_records,
            keys={i.encode() for i in ids},
        )
        stats = {webhook_id: WebhookStats() for webhook_id in ids}
        #: Per webhook, each delivery's last outcome in the window (its tries are one delivery).
        outcomes: dict[str, dict[str, Outcome]] = {webhook_id: {} for webhook_id in ids}
        for record in sorted(scan.items, key=lambda r: r.result.at):
            entry = stats[record.webhook_id]
            entry.last_status, entry.last_error = record.result.status, record.result.error
            entry.last_outcome, entry.last_at = record.outcome.value, record.result.at
            if record.result.at >= since:  # a batch's attempt counts for its members
                for delivery_id in record.members or [record.delivery_id]:
                    outcomes[record.webhook_id][delivery_id] = record.outcome
        for webhook_id, last in outcomes.items():
            # Failed: dead-lettered and not delivered since (a replay that went through).
            stats[webhook_id].failures_24h = sum(o is Outcome.FAILED for o in last.values())
        return self.json(StatsOut(stats=stats, truncated=scan.truncated).model_dump(mode="json"))
