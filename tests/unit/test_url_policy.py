"""The SSRF guard: config-time URL checks and send-time resolution checks.

No test here connects anywhere but loopback: hostnames are mapped to loopback addresses, so
even a broken guard could only reach this machine.
"""

from __future__ import annotations

import socket

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from app.errors import UrlRejectedError
from app.events import EventName
from app.http_client import DeliveryClient
from app.url_policy import UrlPolicy, check_url, forbidden_address_reason
from app.webhook_config import WebhookConfig


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.1.2.3",
        "10.0.0.1",
        "172.16.0.1",
        "192.168.1.1",
        "100.64.0.1",
        "169.254.169.254",
        "169.254.1.1",
        "0.0.0.0",
        "::1",
        "fd00::1",
        "fe80::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "224.0.0.1",
    ],
)
def test_forbidden_addresses(address: str) -> None:
    assert forbidden_address_reason(address) is not None


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:2800:220:1::1", "8.8.8.8"])
def test_public_addresses(address: str) -> None:
    assert forbidden_address_reason(address) is None


def test_check_url_needs_https_unless_allowed() -> None:
    with pytest.raises(UrlRejectedError, match="https"):
        check_url("http://hooks.example.com/", UrlPolicy())
    check_url("http://hooks.example.com/", UrlPolicy(allow_http=True))
    check_url("https://hooks.example.com/", UrlPolicy())


class MapResolver(AbstractResolver):
    """Resolves every name to one fixed (loopback) address."""

    def __init__(self, address: str) -> None:
        self.address = address

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(
                hostname=host,
                host=self.address,
                port=port,
                family=socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
        ]

    async def close(self) -> None:
        return None


async def test_a_hostname_resolving_to_a_forbidden_address_is_refused_at_send_time() -> None:
    hits: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response()

    server = web.Application()
    server.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(server)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.2", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        hook = WebhookConfig.model_validate(
            {"id": "w", "account_id": "a", "url": f"http://rebound.example:{port}/x"},
            context={"url_policy": UrlPolicy(allow_http=True)},
        )
        guarded = DeliveryClient(UrlPolicy(allow_http=True), 5, resolver=MapResolver("127.0.0.2"))
        outcome = await guarded.attempt(hook, EventName.MESSAGE_SENT, {"a": 1}, "msg_1", 1)
        await guarded.close()
        assert outcome.result.status is None
        assert "refused" in (outcome.result.error or "") and "loopback" in (
            outcome.result.error or ""
        )
        assert hits == []

        allowed = DeliveryClient(UrlPolicy(True, True), 5, resolver=MapResolver("127.0.0.2"))
        outcome = await allowed.attempt(hook, EventName.MESSAGE_SENT, {"a": 1}, "msg_1", 1)
        await allowed.close()
        assert outcome.ok and hits == ["/x"]
    finally:
        await runner.cleanup()


async def test_redirects_are_not_followed() -> None:
    async def handle(request: web.Request) -> web.Response:
        raise web.HTTPFound("/elsewhere")

    server = web.Application()
    server.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(server)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    try:
        hook = WebhookConfig.model_validate(
            {"id": "w", "account_id": "a", "url": f"http://127.0.0.1:{port}/x"},
            context={"url_policy": UrlPolicy(True, True)},
        )
        client = DeliveryClient(UrlPolicy(True, True), 5)
        outcome = await client.attempt(hook, EventName.MESSAGE_SENT, {}, "msg_1", 1)
        await client.close()
        assert outcome.result.status == 302 and not outcome.ok
    finally:
        await runner.cleanup()
