"""Feedback tokens (seed 000): signed, tamper-proof, expiring; sent as ``x-hookstream-token``.

A token names the account, webhook, delivery and the message (the seed message fields), so a
receiver can report an open or click later with nothing but the token, and hookstream can
rebuild a complete ``message open`` / ``message clicked`` event from it. Format:
``base64url(json claims) + "." + base64url(HMAC-SHA256(key, first part))``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, ValidationError

from app.model.errors import HookstreamError

TOKEN_HEADER = "x-hookstream-token"  # noqa: S105 - a header name

#: The seed message fields a token carries (those of message sent / open / clicked / ...).
MESSAGE_FIELDS = ("message_id", "message_uid", "sending_type", "name", "from", "to")


class TokenError(HookstreamError):
    """A token is malformed, tampered with or expired; the message says which."""


class TrackingClaims(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    account_id: str
    webhook_id: str
    delivery_id: str
    message: dict[str, Any]
    exp: float


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def message_of(payload_source: dict[str, Any]) -> dict[str, Any] | None:
    """The seed message fields of an event document, or None when it is not an email message."""
    if not all(field in payload_source for field in MESSAGE_FIELDS):
        return None
    return {field: payload_source[field] for field in MESSAGE_FIELDS}


def issue_token(key: bytes, claims: TrackingClaims) -> str:
    body = _b64(orjson.dumps(claims.model_dump()))
    return f"{body}.{_b64(hmac.new(key, body.encode(), hashlib.sha256).digest())}"


def verify_token(key: bytes, token: str, now: float) -> TrackingClaims:
    """The claims of a valid token; :class:`TokenError` when it is bad, tampered or expired."""
    body, _, signature = token.partition(".")
    if not body or not signature:
        raise TokenError("malformed token")
    expected = hmac.new(key, body.encode(), hashlib.sha256).digest()
    try:
        given = _unb64(signature)
    except ValueError:
        raise TokenError("malformed token signature") from None
    if not hmac.compare_digest(expected, given):
        raise TokenError("token signature does not match (tampered or foreign)")
    try:
        claims = TrackingClaims.model_validate(orjson.loads(_unb64(body)))
    except (ValueError, ValidationError):
        raise TokenError("malformed token claims") from None
    if claims.exp < now:
        raise TokenError("token has expired")
    return claims
