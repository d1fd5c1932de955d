"""Portal links (pure): a signed, expiring token that scopes the portal to one account.

``POST /api/portal-links`` (admin token) and ``hookstream portal-link`` issue them with
``HOOKSTREAM_PORTAL_SECRET``. The link puts the token in the URL fragment (``/portal#token=``),
which a browser never sends to the server, so it stays out of request logs; the page then
sends it as a bearer token to the account-scoped API.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.flow import signed_tokens

PORTAL_PATH = "/portal"


class PortalClaims(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    purpose: Literal["portal"] = "portal"  # a feedback token (other key, other claims) never fits
    account_id: str = Field(min_length=1)
    exp: float


def issue_portal_token(key: bytes, account_id: str, expires_at: float) -> str:
    return signed_tokens.issue(key, PortalClaims(account_id=account_id, exp=expires_at))


def verify_portal_token(key: bytes, token: str, now: float) -> PortalClaims:
    """The claims of a valid portal token; :class:`~app.flow.signed_tokens.TokenError` else."""
    return signed_tokens.verify(key, token, PortalClaims, now)


def portal_url(base_url: str, token: str) -> str:
    """The link to hand out: the portal page, with the token in the fragment."""
    return f"{base_url.rstrip('/')}{PORTAL_PATH}#token={token}"
