"""The account portal: ``/portal`` (one page and its script and styles) and the event catalog.

No build step and no network: plain HTML, CSS and a JavaScript module, served from
``app/api/static`` by the worker. Strict Content-Security-Policy (``default-src 'self'``: no
inline script or style, nothing from elsewhere), every account-supplied string set as text.
The page reads its account token from the URL fragment and calls the account-scoped API with
it (see :mod:`app.api.access`).
"""

from __future__ import annotations

from pathlib import Path

from faust.web import Request, Response, View

from app.api.access import account_of_request
from app.api.catalog import PolicyOut, catalog
from app.api.common import ApiError, api
from app.flow.portal import PORTAL_PATH
from app.main import app, settings

STATIC = Path(__file__).resolve().parent / "static"
#: The files the page is made of, with their content types; nothing else is served.
FILES = {
    "portal.html": "text/html; charset=utf-8",
    "portal.js": "text/javascript; charset=utf-8",
    "portal.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; object-src 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _file(view: View, name: str) -> Response:
    if name not in FILES:
        raise ApiError(404, "no such file")
    response = view.bytes((STATIC / name).read_bytes(), content_type=FILES[name].split(";")[0])
    response.headers.update({**SECURITY_HEADERS, "Content-Type": FILES[name]})
    return response


@app.page(PORTAL_PATH)
class Page(View):
    async def get(self, request: Request) -> Response:
        return _file(self, "portal.html")


@app.page("/favicon.ico")
class Favicon(View):
    """The page's icon where browsers look for it first (an SVG, which they all read)."""

    async def get(self, request: Request) -> Response:
        return _file(self, "favicon.svg")


@app.page(PORTAL_PATH + "/static/{name}")
class Static(View):
    @api(admin=False)
    async def get(self, request: Request, name: str) -> Response:
        return _file(self, name)


@app.page("/api/event-catalog")
class Catalog(View):
    @api(accounts=True)
    async def get(self, request: Request) -> Response:
        account_id = account_of_request(request.query.get("account_id"))
        policy = PolicyOut(
            allow_http=settings.allow_http, allow_private_networks=settings.allow_private_networks
        )
        return self.json(catalog(account_id, policy).model_dump(mode="json"))
