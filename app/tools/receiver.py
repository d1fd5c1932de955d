"""``hookstream receiver``: a local debug receiver that prints each request and answers 200.

With one or more ``--secret`` it verifies the Standard Webhooks signature (over the body, or
over the query string for GET deliveries) against each and says which one it is valid for,
``INVALID``, or ``unsigned`` for a request without a signature (a webhook with no secret).
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from aiohttp import web
from pydantic import SecretStr

from app.flow.signing import verify
from app.http.client import MASKED
from app.model.webhook_config import signing_key


def signature_verdict(keys: list[bytes], request_headers: Mapping[str, str], content: bytes) -> str:
    """What the receiver says of a request's signature, given the keys it was told about."""
    header = request_headers.get("webhook-signature")
    if not header:
        return "unsigned"
    try:
        timestamp = int(request_headers.get("webhook-timestamp", "0"))
    except ValueError:
        return "INVALID (webhook-timestamp is not a number)"
    message_id = request_headers.get("webhook-id", "")
    for number, key in enumerate(keys, 1):
        if verify(key, message_id, timestamp, content, header):
            return "valid" if len(keys) == 1 else f"valid (secret {number})"
    return "INVALID"


def make_receiver_app(secrets: list[str]) -> web.Application:
    keys = [signing_key(SecretStr(secret)) for secret in secrets]

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        print(f"--- {time.strftime('%H:%M:%S')} {request.method} {request.path_qs}", flush=True)
        for name, value in request.headers.items():
            # The receiver is the customer's side: it shows the feedback token (its own
            # credential for /track, needed to report opens) but never a basic-auth password.
            print(f"{name}: {MASKED if name.lower() == 'authorization' else value}")
        print(body.decode("utf-8", "replace") if body else "(no body)")
        if keys:
            content = request.rel_url.raw_query_string.encode() if request.method == "GET" else body
            print(f"signature: {signature_verdict(keys, request.headers, content)}")
        print(flush=True)
        return web.Response(text="ok")

    receiver = web.Application()
    receiver.router.add_route("*", "/{tail:.*}", handle)
    return receiver


def run_receiver(port: int, secrets: list[str]) -> None:
    print(f"receiver listening on http://127.0.0.1:{port}/", flush=True)
    web.run_app(make_receiver_app(secrets), host="127.0.0.1", port=port, print=None)
