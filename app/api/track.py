"""``POST /track/{account_id}``: receivers report opens and clicks with the token (seed 000).

No admin token: the signed ``x-hookstream-token`` is the credential. An accepted report
becomes a ``message open`` / ``message clicked`` event on ``events.messages``, so webhooks
subscribed to opens and clicks fire as for any other event.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, cast

import orjson
from aiohttp import web
from faust.web import Request, Response, View
from pydantic import ValidationError

from app import metrics
from app.api.common import ApiError, api, json_body, unprocessable
from app.api.models import AcceptedOut, TrackIn
from app.flow.join import parse_event
from app.flow.tracking import TokenError, verify_token
from app.main import app, settings
from app.model.errors import InvalidInputError
from app.model.events import EventFamily, EventName
from app.runtime import channels

_ACTIONS = {"open": EventName.MESSAGE_OPEN, "click": EventName.MESSAGE_CLICKED}


async def _document(request: Request) -> Any:
    aio = cast(web.Request, request)  # Faust's aiohttp driver passes aiohttp's request
    if aio.content_type == "application/x-www-form-urlencoded":
        return dict(await aio.post())
    return await json_body(request)


@app.page("/track/{account_id}")
class Track(View):
    @api(admin=False)
    async def post(self, request: Request, account_id: str) -> Response:
        if settings.tracking_secret is None:
            raise ApiError(503, "feedback is disabled: HOOKSTREAM_TRACKING_SECRET is not set")
        try:
            report = TrackIn.model_validate(await _document(request))
        except ValidationError as exc:
            raise unprocessable(exc) from None
        key = settings.tracking_secret.get_secret_value().encode()
        try:
            claims = verify_token(key, report.token, time.time())
        except TokenError as exc:
            raise ApiError(401, str(exc)) from None
        if claims.account_id != account_id:
            raise ApiError(403, "token belongs to another account")
        name = _ACTIONS[report.action]
        event: dict[str, Any] = {"event": name.value, **claims.message}
        if name is EventName.MESSAGE_CLICKED:
            event["click_url"] = report.url or ""
        event_id = f"fb_{uuid.uuid4().hex}"
        event.update(account_id=account_id, event_id=event_id)
        raw = orjson.dumps(event)
        try:
            parse_event(raw, EventFamily.MESSAGES)
        except InvalidInputError as exc:
            raise ApiError(422, f"token message cannot make a {name.value} event: {exc}") from None
        await (await channels.events_messages.send(key=account_id.encode(), value=raw))
        metrics.feedback.labels(report.action).inc()
        return self.json(AcceptedOut(event_id=event_id).model_dump(mode="json"), status=202)
