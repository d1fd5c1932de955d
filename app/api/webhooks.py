"""``/api/webhooks``: create, list, read, replace, patch, delete, and test connection.

Writes go to the ``webhooks`` topic (the source of truth); a response comes only once the
write is acknowledged and applied to this worker's view. Reads first sync the view with the
topic (a barrier), so a GET on any worker sees every write acknowledged before it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import orjson
from faust.web import Request, Response, View
from pydantic import ValidationError

from app.api.access import APPLY_TIMEOUT, account_of_request, load_webhook, synced
from app.api.common import ApiError, api, current_caller, json_body, parse_body, unprocessable
from app.api.models import (
    DeletedOut,
    SecretRequiredError,
    TestIn,
    TestOut,
    ValidateIn,
    ValidOut,
    WebhookListOut,
    WebhookOut,
    merge_patch,
    merge_put,
)
from app.flow.join import parse_event
from app.flow.payload import custom_payload, standard_payload
from app.flow.tracking import message_of
from app.http.client import masked_headers
from app.main import app, settings
from app.model.errors import InvalidInputError
from app.model.events import EVENT_MODELS
from app.model.samples import sample_event
from app.model.url_policy import UrlPolicy
from app.model.webhook_config import WebhookConfig, validation_context
from app.runtime import channels
from app.runtime.state import config_view, delivery_client

_context = validation_context(
    UrlPolicy(settings.allow_http, settings.allow_private_networks),
    tracking=settings.tracking_secret is not None,
)


def _validate(document: Any) -> WebhookConfig:
    """A config the caller may write: valid, and of an account the caller may reach."""
    if not isinstance(document, dict):
        raise ApiError(422, "body must be a JSON object")
    try:
        config = WebhookConfig.model_validate(document, context=_context)
    except ValidationError as exc:
        raise unprocessable(exc) from None
    if not current_caller().may_see(config.account_id):
        raise ApiError(404, f"account {config.account_id!r} not found")
    return config


async def _write(key: str, value: bytes | None) -> None:
    metadata = await (await channels.webhooks.send(key=key.encode(), value=value))
    if not await config_view.wait_applied(metadata.partition, metadata.offset, APPLY_TIMEOUT):
        raise ApiError(503, "write acknowledged but not yet applied; retry the read later")


def _out(config: WebhookConfig, status: int, view: View) -> Response:
    return view.json(WebhookOut.of(config).model_dump(mode="json"), status=status)


def _as_created(document: dict[str, Any]) -> dict[str, Any]:
    """A new webhook's document as POST stores it: its id made by the server (a portal may not
    choose one), its account the portal link's when left out."""
    if "id" in document and not current_caller().is_admin:
        # A chosen id taken by another account would answer 409 and so tell the link that id
        # exists elsewhere: a portal's webhooks get theirs from the server.
        raise ApiError(422, "id: chosen by the server for a portal link's webhooks")
    document = {"id": f"wh_{uuid.uuid4().hex[:20]}", **document}
    if current_caller().account_id is not None:  # the admin names the account
        document.setdefault("account_id", current_caller().account_id)
    return merge_put(document, None)


def _as_replacement(document: dict[str, Any], current: WebhookConfig) -> dict[str, Any]:
    """``document`` as PUT stores it over ``current``. The path names the webhook, and so its
    account: a PUT that leaves account_id out keeps it (the portal's form never sends it);
    naming another one moves it. Blank secrets keep the stored ones."""
    document = {"account_id": current.account_id, **document, "id": current.id}
    return _merged(merge_put, document, current, settings.secret_rotation_grace)


# Registered before /api/webhooks/{webhook_id} for readability; methods do not overlap anyway.
@app.page("/api/webhooks/test")
class TestUnsaved(View):
    @api(accounts=True)
    async def post(self, request: Request) -> Response:
        body = await parse_body(request, TestIn)
        if body.config is None:
            raise ApiError(422, "config: required to test an unsaved webhook")
        document = {"id": f"test_{uuid.uuid4().hex[:12]}", **body.config}
        if current_caller().account_id is not None:
            document.setdefault("account_id", current_caller().account_id)
        return self.json(await _test(_validate(document), body))


@app.page("/api/webhooks/validate")
class Validate(View):
    """Field errors before anything is sent or saved (a form shows them next to its fields)."""

    @api(accounts=True)
    async def post(self, request: Request) -> Response:
        body = await parse_body(request, ValidateIn)
        if body.webhook_id is not None:
            _validate(_as_replacement(body.config, await load_webhook(body.webhook_id)))
        else:
            _validate(_as_created(body.config))
        return self.json(ValidOut(valid=True).model_dump(mode="json"))


@app.page("/api/webhooks")
class WebhookCollection(View):
    @api(accounts=True)
    async def get(self, request: Request) -> Response:
        account_id = account_of_request(request.query.get("account_id"))
        await synced()
        hooks = sorted(config_view.for_account(account_id), key=lambda c: c.id)
        listing = WebhookListOut(webhooks=[WebhookOut.of(c) for c in hooks])
        return self.json(listing.model_dump(mode="json"))

    @api(accounts=True)
    async def post(self, request: Request) -> Response:
        document = await json_body(request)
        if isinstance(document, dict):
            document = _as_created(document)
        config = _validate(document)
        await synced()
        if config_view.get(config.id) is not None:
            raise ApiError(409, f"webhook {config.id!r} exists; use PUT or PATCH")
        await _write(config.id, _wire(config))
        return _out(config, 201, self)


@app.page("/api/webhooks/{webhook_id}")
class WebhookItem(View):  # every method: admin or the webhook's own account
    @api(accounts=True)
    async def get(self, request: Request, webhook_id: str) -> Response:
        return _out(await load_webhook(webhook_id), 200, self)

    @api(accounts=True)
    async def put(self, request: Request, webhook_id: str) -> Response:
        document = await json_body(request)
        current = await load_webhook(webhook_id)
        if isinstance(document, dict):
            document = _as_replacement(document, current)
        config = _validate(document)
        await _write(webhook_id, _wire(config))
        return _out(config, 200, self)

    @api(accounts=True)
    async def patch(self, request: Request, webhook_id: str) -> Response:
        document = await json_body(request)
        current = await load_webhook(webhook_id)
        if not isinstance(document, dict):
            raise ApiError(422, "body must be a JSON object")
        config = _validate(
            _merged(
                merge_patch, {**document, "id": webhook_id}, current, settings.secret_rotation_grace
            )
        )
        await _write(webhook_id, _wire(config))
        return _out(config, 200, self)

    @api(accounts=True)
    async def delete(self, request: Request, webhook_id: str) -> Response:
        await load_webhook(webhook_id)
        await _write(webhook_id, None)
        return self.json(DeletedOut(deleted=webhook_id).model_dump(mode="json"))


@app.page("/api/webhooks/{webhook_id}/test")
class TestSaved(View):
    @api(accounts=True)
    async def post(self, request: Request, webhook_id: str) -> Response:
        body = await parse_body(request, TestIn)
        if body.config is not None:
            raise ApiError(422, "config: not allowed here; test an unsaved config at /test")
        return self.json(await _test(await load_webhook(webhook_id), body))


def _merged(
    merge: Callable[[dict[str, Any], WebhookConfig, float, float], dict[str, Any]],
    document: dict[str, Any],
    current: WebhookConfig,
    grace: float,
) -> dict[str, Any]:
    """``merge`` (PUT or PATCH rules) of ``document`` onto ``current``; 422 when the change
    needs secrets given again."""
    try:
        return merge(document, current, time.time(), grace)
    except SecretRequiredError as exc:
        raise ApiError(422, f"invalid: {exc}", exc.errors) from None


def _wire(config: WebhookConfig) -> bytes:
    return orjson.dumps(config.to_wire())


async def _test(config: WebhookConfig, body: TestIn) -> dict[str, Any]:
    """Send one real request exactly as the pipeline would, with a sample event."""
    document = (
        body.sample if body.sample is not None else sample_event(body.event, config.account_id)
    )
    document = {**document, "account_id": config.account_id}
    family = EVENT_MODELS[body.event].family
    try:
        event, parsed = parse_event(orjson.dumps(document), family)
    except InvalidInputError as exc:
        raise ApiError(422, f"sample: {exc}") from None
    payload = (
        custom_payload(parsed, config.custom_payload)
        if config.custom_payload is not None
        else standard_payload(event, parsed)
    )
    timeout = min(body.timeout or settings.request_timeout, settings.request_timeout)
    outcome = await delivery_client.attempt(
        config,
        event.event_name,
        [payload] if config.batch is not None else payload,  # a batch of one, as sent for real
        f"msg_test_{uuid.uuid4().hex}",
        attempt=1,
        read_body=True,
        message=message_of(parsed),
        timeout=timeout,
    )
    sent_headers = masked_headers(outcome.request_headers or {})
    request = outcome.request
    return TestOut(
        ok=outcome.ok,
        status=outcome.result.status,
        error=outcome.result.error,
        duration_ms=outcome.result.duration_ms,
        url=outcome.result.url,
        request={
            "method": request.method if request else config.method.value,
            "headers": sent_headers,
            "body": request.body.decode("utf-8", "replace") if request and request.body else None,
        },
        response_headers=dict(outcome.response_headers),
        response_body=outcome.response_body,
    ).model_dump(mode="json")
