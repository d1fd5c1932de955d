"""What the caller of a request may reach: every account for the admin, one for a portal link.

Another account's webhook looks to a portal caller exactly like a webhook that does not exist
(404), so a link cannot even learn which ids exist elsewhere.
"""

from __future__ import annotations

from app.api.common import ApiError, current_caller
from app.model.webhook_config import WebhookConfig
from app.runtime.state import config_view

APPLY_TIMEOUT = 15.0


async def synced() -> None:
    """Bring this worker's view up to every write acknowledged before the request."""
    if not await config_view.sync(APPLY_TIMEOUT):
        raise ApiError(503, "config view is behind the webhooks topic; try again")


async def load_webhook(webhook_id: str) -> WebhookConfig:
    """The webhook, if the caller may see it; 404 otherwise."""
    await synced()
    config = config_view.get(webhook_id)
    if config is None or not current_caller().may_see(config.account_id):
        raise ApiError(404, f"webhook {webhook_id!r} not found")
    return config


def account_of_request(requested: str | None) -> str:
    """The account a listing or a write is about: the portal link's own (an other account's id
    is 404), or for the admin the one asked for (422 when none is)."""
    caller = current_caller()
    if caller.account_id is not None:
        if requested not in (None, caller.account_id):
            raise ApiError(404, f"account {requested!r} not found")
        return caller.account_id
    if not requested:
        raise ApiError(422, "account_id: required")
    return requested


def visible_webhook_ids() -> set[str] | None:
    """The webhook ids a portal caller's account has (None: the admin sees every one)."""
    caller = current_caller()
    if caller.account_id is None:
        return None
    return {c.id for c in config_view.for_account(caller.account_id)}
