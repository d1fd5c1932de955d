"""``POST /api/portal-links`` (admin token): a link to the portal for one account.

The link's token is signed with ``HOOKSTREAM_PORTAL_SECRET``, expires after ``ttl_seconds``,
and sits in the URL fragment, which browsers never send to a server (so no log holds it).
"""

from __future__ import annotations

import time
from typing import cast

from aiohttp import web
from faust.web import Request, Response, View

from app.api.common import ApiError, api, parse_body
from app.api.models import PortalLinkIn, PortalLinkOut
from app.flow.portal import issue_portal_token, portal_url
from app.main import app, settings


def base_url(request: Request) -> str:
    """Where browsers reach this worker: the setting, else the address this request came to."""
    if settings.public_url:
        return settings.public_url
    aio = cast(web.Request, request)  # Faust's aiohttp driver passes aiohttp's request
    return f"{aio.scheme}://{aio.host}"


@app.page("/api/portal-links")
class PortalLinks(View):
    @api()
    async def post(self, request: Request) -> Response:
        if settings.portal_secret is None:
            raise ApiError(503, "portal links are disabled: set HOOKSTREAM_PORTAL_SECRET")
        body = await parse_body(request, PortalLinkIn)
        expires_at = time.time() + body.ttl_seconds
        key = settings.portal_secret.get_secret_value().encode()
        token = issue_portal_token(key, body.account_id, expires_at)
        link = PortalLinkOut(url=portal_url(base_url(request), token), expires_at=expires_at)
        return self.json(link.model_dump(mode="json"), status=201)
