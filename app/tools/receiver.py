"""``hookstream receiver``: a local debug receiver that prints each request and answers 200.

With ``--secret`` it verifies the Standard Webhooks signature (over the body, or over the
query string for GET deliveries) and says whether it is valid.
"""

from __future__ import annotations

import time

from aiohttp import web
from pydantic import SecretStr

from app.flow.signing import verify
from app.http.client import MASKED
from app.model.webhook_config import signing_key


def make_receiver_app(secret: str | None) -> web.Application:
    key = signing_key(SecretStr(secret)) if secret else None

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        print(f"--- {time.strftime('%H:%M:%S')} {request.method} {request.path_qs}", flush=True)
        for name, value in request.headers.items():
            # The receiver is the customer's side: it shows the feedback token (its own
            # credential for /track, needed to report opens) but never a basic-auth password.
            print(f"{name}: {MASKED if name.lower() == 'authorization' else value}")
        print(body.decode("utf-8", "replace") if body else "(no body)")
        if key is not None:
            content = request.rel_url.raw_query_string.encode() if request.method == "GET" else body
            try:
                valid = verify(
                    key,
                    request.headers.get("webhook-id", ""),
                    int(request.headers.get("webhook-timestamp", "0")),
                    content,
                    request.headers.get("webhook-signature", ""),
                )
            except ValueError:
                valid = False
            print(f"signature: {'valid' if valid else 'INVALID'}")
        print(flush=True)
        return web.Response(text="ok")

    receiver = web.Application()
    receiver.router.add_route("*", "/{tail:.*}", handle)
    return receiver


def run_receiver(port: int, secret: str | None) -> None:
    print(f"receiver listening on http://127.0.0.1:{port}/", flush=True)
    web.run_app(make_receiver_app(secret), host="127.0.0.1", port=port, print=None)
