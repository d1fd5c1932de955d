"""Signed, expiring tokens (pure): ``base64url(json claims) + "." + base64url(HMAC-SHA256)``.

Used for the feedback tokens receivers report opens and clicks with (:mod:`app.flow.tracking`)
and for portal links scoped to one account (:mod:`app.flow.portal`), each with its own key and
its own claims model, so a token of one kind is never accepted as the other.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Protocol, TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from app.model.errors import HookstreamError


class TokenError(HookstreamError):
    """A token is malformed, tampered with or expired; the message says which."""


class _Expiring(Protocol):
    exp: float


C = TypeVar("C", bound=BaseModel)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def issue(key: bytes, claims: BaseModel) -> str:
    body = _b64(orjson.dumps(claims.model_dump()))
    return f"{body}.{_b64(hmac.new(key, body.encode(), hashlib.sha256).digest())}"


def verify(key: bytes, token: str, model: type[C], now: float) -> C:
    """The claims of a valid token; :class:`TokenError` when it is bad, tampered or expired.
    ``model`` must have an ``exp`` (unix time) field."""
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
        claims = model.model_validate(orjson.loads(_unb64(body)))
    except (ValueError, ValidationError):
        raise TokenError("malformed token claims") from None
    if getattr(claims, "exp", 0.0) < now:
        raise TokenError("token has expired")
    return claims
