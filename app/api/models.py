"""Bodies of the admin API (``XIn`` / ``XOut``) and the write-only-secret merge rules (pure).

Secrets are write-only: an ``Out`` model never carries ``secret`` or the basic-auth password,
only whether one is set. On PUT and PATCH an absent or blank ``secret`` keeps the current one
(seed 004: "leave this field blank to keep the current secret unchanged"); an explicit
``null`` removes it. Likewise an ``auth`` object without ``password`` keeps the current one.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.model.events import EventName
from app.model.webhook_config import WebhookConfig


class BasicAuthOut(BaseModel):
    type: Literal["basic"] = "basic"
    username: str
    password_set: bool


class WebhookOut(BaseModel):
    """A webhook as the API shows it: everything but the secrets."""

    id: str
    account_id: str
    name: str
    url: str | None
    event_urls: dict[str, str]
    events: list[str]
    campaign_id: str | int | None
    content_type: str
    method: str
    auth: BasicAuthOut | None
    secret_set: bool
    log_response_body: bool
    active: bool
    custom_payload: list[dict[str, Any]] | None
    tracking: bool
    max_retries: int | None
    timeout_seconds: float | None
    rate_limit_per_second: float | None
    previous_secret_expires_at: float | None = Field(
        description="While in the future, the replaced secret still signs too."
    )
    disabled_reason: str | None

    @classmethod
    def of(cls, config: WebhookConfig) -> WebhookOut:
        data = config.model_dump(mode="json", exclude={"secret", "auth", "previous_secret"})
        auth = None
        if config.auth is not None:
            auth = BasicAuthOut(username=config.auth.username, password_set=True)
        return cls(**data, auth=auth, secret_set=config.secret is not None)


def _keep_blank_secrets(document: dict[str, Any], current: WebhookConfig | None) -> dict[str, Any]:
    merged = dict(document)
    wire = current.to_wire() if current is not None else {}
    if merged.get("secret", "") == "":
        if wire.get("secret"):
            merged["secret"] = wire["secret"]
        else:
            merged.pop("secret", None)
    auth = merged.get("auth")
    if isinstance(auth, dict) and auth.get("password", "") == "" and wire.get("auth"):
        merged["auth"] = {**auth, "password": wire["auth"]["password"]}
    return merged


def _rotate(
    merged: dict[str, Any], current: WebhookConfig | None, now: float, grace: float
) -> dict[str, Any]:
    """A new secret replaces the current one; the old one keeps signing for ``grace`` seconds.

    ``previous_secret`` is managed here only: a caller cannot set it.
    """
    merged = {k: v for k, v in merged.items() if k not in ("previous_secret",)}
    wire = current.to_wire() if current is not None else {}
    old, new = wire.get("secret"), merged.get("secret")
    if old and new and new != old and grace > 0:
        merged["previous_secret"], merged["previous_secret_expires_at"] = old, now + grace
    elif wire.get("previous_secret") and new == old:
        merged["previous_secret"] = wire["previous_secret"]
        merged["previous_secret_expires_at"] = wire.get("previous_secret_expires_at")
    else:
        merged.pop("previous_secret_expires_at", None)
    return merged


def merge_put(
    document: dict[str, Any], current: WebhookConfig | None, now: float = 0.0, grace: float = 0.0
) -> dict[str, Any]:
    """A full replacement; blank secrets keep the current ones; a new secret rotates."""
    return _rotate(_keep_blank_secrets(document, current), current, now, grace)


def merge_patch(
    document: dict[str, Any], current: WebhookConfig, now: float = 0.0, grace: float = 0.0
) -> dict[str, Any]:
    """Top-level fields of ``document`` replace the current ones; blank secrets are kept."""
    wire = current.to_wire()
    patched = {**wire, **document}
    if "auth" in document and isinstance(document["auth"], dict) and wire.get("auth"):
        patched["auth"] = {**wire["auth"], **document["auth"]}
    return _rotate(_keep_blank_secrets(patched, current), current, now, grace)


class TestIn(BaseModel):
    """``POST /api/webhooks/test`` and ``/api/webhooks/{id}/test``."""

    model_config = ConfigDict(extra="forbid")

    config: dict[str, Any] | None = Field(None, description="Unsaved config (test before saving).")
    event: EventName = Field(EventName.MESSAGE_SENT, description="Sample event type.")
    sample: dict[str, Any] | None = Field(
        None, description="An edited sample event; defaults to the seed sample of `event`."
    )
    timeout: float | None = Field(None, gt=0, description="Seconds; at most the request timeout.")


class TestOut(BaseModel):
    ok: bool
    status: int | None
    error: str | None
    duration_ms: float
    url: str
    request: dict[str, Any] = Field(description="Method, headers (no credentials) and body sent.")
    response_headers: dict[str, str]
    response_body: str | None


class ReplayIn(BaseModel):
    """Which dead letters to replay: by delivery ids, or all of a webhook, or a time range."""

    model_config = ConfigDict(extra="forbid")

    delivery_ids: list[str] | None = None
    webhook_id: str | None = None
    since: float | None = Field(None, description="Unix time; dead letters failed at or after.")
    until: float | None = Field(None, description="Unix time; dead letters failed before.")


class ReplayOut(BaseModel):
    replayed: list[str] = Field(description="Delivery ids put back on deliveries.")


class TrackIn(BaseModel):
    """``POST /track/{account_id}``: a receiver reports an open or a click (seed 000)."""

    token: str = Field(min_length=1)
    action: Literal["open", "click"]
    url: str | None = Field(None, description="The clicked URL, for clicks.")
