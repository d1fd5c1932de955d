"""``GET /api/openapi.json``: the OpenAPI document of the admin and portal APIs (see
:mod:`app.api.spec`). Public: it describes routes, never data."""

from __future__ import annotations

from faust.web import Request, Response, View

from app.api.common import api
from app.api.spec import OPENAPI_PATH, render
from app.main import app

_DOCUMENT = render()


@app.page(OPENAPI_PATH)
class OpenApi(View):
    @api(admin=False)
    async def get(self, request: Request) -> Response:
        return self.bytes(_DOCUMENT, content_type="application/json")
