"""Feedback tokens (seed 000): signed, tamper-proof, expiring; sent as ``x-hookstream-token``.

A token names the account, webhook, delivery and the message (the seed message fields), so a
receiver can report an open or click later with nothing but the token, and hookstream can
rebuild a complete ``message open`` / ``message clicked`` event from it. Format: see
:mod:`app.flow.signed_tokens`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from app.flow import signed_tokens
from app.flow.signed_tokens import TokenError

__all__ = ["TOKEN_HEADER", "TokenError", "TrackingClaims", "issue_token", "verify_token"]

TOKEN_HEADER = "x-hookstream-token"  # noqa: S105 - a header name

#: The seed message fields a token carries (those of message sent / open / clicked / ...).
MESSAGE_FIELDS = ("message_id", "message_uid", "sending_type", "name", "from", "to")


class TrackingClaims(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    account_id: str
    webhook_id: str
    delivery_id: str
    message: dict[str, Any]
    exp: float


def message_of(payload_source: dict[str, Any]) -> dict[str, Any] | None:
    """The seed message fields of an event document, or None when it is not an email message."""
    if not all(field in payload_source for field in MESSAGE_FIELDS):
        return None
    return {field: payload_source[field] for field in MESSAGE_FIELDS}


def issue_token(key: bytes, claims: TrackingClaims) -> str:
    return signed_tokens.issue(key, claims)


def verify_token(key: bytes, token: str, now: float) -> TrackingClaims:
    """The claims of a valid token; :class:`TokenError` when it is bad, tampered or expired."""
    return signed_tokens.verify(key, token, TrackingClaims, now)
