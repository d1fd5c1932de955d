"""The SSRF guard: config-time URL checks and send-time resolution checks.

No test here connects anywhere but loopback. Hostnames are mapped to forbidden addresses by an
injected resolver, and the ``loopback_only`` fixture fails a test at the first attempt to
connect to a non-loopback address, before any socket connects, so even a broken guard could
not send traffic off this machine.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from app.http.client import DeliveryClient
from app.model.errors import UrlRejectedError
from app.model.events import EventName
from app.model.url_policy import UrlPolicy, check_url, forbidden_address_reason
from app.model.webhook_config import WebhookConfig


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
    """Resolves every name to fixed addresses (no DNS is asked)."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in self.addresses
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


@pytest.fixture
async def loopback_only(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[list[Any]]:
    """Fail the test if anything tries to connect anywhere but loopback, guard broken or not."""
    loop = asyncio.get_running_loop()
    attempts: list[Any] = []
    real_sock_connect, real_create_connection = loop.sock_connect, loop.create_connection

    def check(host: Any) -> None:
        attempts.append(host)
        if not ipaddress.ip_address(str(host).split("%")[0]).is_loopback:
            raise AssertionError(f"a connection to {host} was attempted")

    async def sock_connect(sock: socket.socket, address: Any) -> None:
        check(address[0])
        await real_sock_connect(sock, address)

    async def create_connection(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("host") or (len(args) > 1 and args[1]):
            check(kwargs.get("host") or args[1])
        return await real_create_connection(*args, **kwargs)

    monkeypatch.setattr(loop, "sock_connect", sock_connect)
    monkeypatch.setattr(loop, "create_connection", create_connection)
    yield attempts


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.53.0.1",
        "10.0.0.1",
        "172.16.5.4",
        "192.168.0.10",
        "100.64.1.1",
        "169.254.169.254",
        "169.254.10.10",
        "0.0.0.0",
        "::1",
        "fd12:3456::1",
        "fe80::1",
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",
    ],
)
async def test_a_hostname_resolving_to_any_forbidden_address_is_refused_before_connecting(
    address: str, loopback_only: list[Any]
) -> None:
    hook = WebhookConfig.model_validate(
        {"id": "w", "account_id": "a", "url": "https://hooks.rebinding.example/x"}
    )
    client = DeliveryClient(UrlPolicy(), 2, resolver=MapResolver(address))
    outcome = await client.attempt(hook, EventName.MESSAGE_SENT, {"a": 1}, "msg_1", 1)
    await client.close()
    assert outcome.result.status is None
    assert "refused" in (outcome.result.error or ""), outcome.result.error
    assert loopback_only == []  # refused before any connection was attempted


@pytest.mark.parametrize(
    "url",
    ["https://10.0.0.1/x", "https://[::1]/x", "https://169.254.169.254/", "https://localhost/x"],
)
async def test_literal_forbidden_addresses_are_refused_at_send_time_too(
    url: str, loopback_only: list[Any]
) -> None:
    # A config accepted under a looser policy (or an older version) is checked again on send.
    hook = WebhookConfig.model_validate(
        {"id": "w", "account_id": "a", "url": url}, context={"url_policy": UrlPolicy(True, True)}
    )
    client = DeliveryClient(UrlPolicy(), 2)
    outcome = await client.attempt(hook, EventName.MESSAGE_SENT, {}, "msg_1", 1)
    await client.close()
    assert (outcome.result.error or "").startswith("refused") and loopback_only == []


async def test_an_endless_response_body_is_read_only_up_to_the_cap() -> None:
    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        chunk = b"z" * 65536
        for _ in range(100_000):  # ~6.5 GB if anyone read it all
            await response.write(chunk)
        return response

    server = web.Application()
    server.router.add_get("/endless", endless)
    runner = web.AppRunner(server, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    try:
        hook = WebhookConfig.model_validate(
            {
                "id": "w",
                "account_id": "a",
                "url": f"http://127.0.0.1:{port}/endless",
                "method": "GET",
                "log_response_body": True,
            },
            context={"url_policy": UrlPolicy(True, True)},
        )
        client = DeliveryClient(UrlPolicy(True, True), 10)
        outcome = await client.attempt(hook, EventName.MESSAGE_SENT, {}, "msg_1", 1)
        await client.close()
        assert outcome.ok and outcome.response_body == "z" * 16 * 1024
    finally:
        await runner.cleanup()


async def test_the_loopback_only_fixture_stops_a_connection_before_it_is_made(
    loopback_only: list[Any],
) -> None:
    # With the guard switched off by policy, the fixture is what stops the attempt.
    hook = WebhookConfig.model_validate(
        {"id": "w", "account_id": "a", "url": "https://hooks.rebinding.example/x"}
    )
    client = DeliveryClient(UrlPolicy(True, True), 2, resolver=MapResolver("10.0.0.1"))
    with pytest.raises(AssertionError, match=r"10\.0\.0\.1"):
        await client.attempt(hook, EventName.MESSAGE_SENT, {}, "msg_1", 1)
    await client.close()
    assert loopback_only == ["10.0.0.1"]


#: Every spelling of a forbidden address that a browser or inet_aton reads as one.
NUMERIC_FORMS = {
    "https://2130706433/": "127.0.0.1",
    "https://127.1/": "127.0.0.1",
    "https://127.0.1/": "127.0.0.1",
    "https://0177.0.0.1/": "127.0.0.1",
    "https://0x7f.0.0.1/": "127.0.0.1",
    "https://0x7f000001/": "127.0.0.1",
    "https://0/": "0.0.0.0",
    "https://0x/": "0.0.0.0",
    "https://017700000001/": "127.0.0.1",
    "https://3232235521/": "192.168.0.1",
    "https://0xa9fea9fe/": "169.254.169.254",
    "https://169.254.43518/": "169.254.169.254",
    "https://127.0.0.1./": "127.0.0.1",
}
#: IPv6 addresses that carry a forbidden IPv4 address, and other local IPv6 ranges.
IPV6_FORMS = [
    "https://[2002:a9fe:a9fe::]/",  # 6to4 of 169.254.169.254
    "https://[2002:7f00:1::1]/",  # 6to4 of 127.0.0.1
    "https://[64:ff9b::a9fe:a9fe]/",  # NAT64 of 169.254.169.254
    "https://[64:ff9b::7f00:1]/",  # NAT64 of 127.0.0.1
    "https://[64:ff9b:1::1]/",  # local-use NAT64
    "https://[fec0::1]/",  # site-local
    "https://[::127.0.0.1]/",  # IPv4-compatible
    "https://[::ffff:7f00:1]/",  # IPv4-mapped, hex
]


@pytest.mark.parametrize(("url", "address"), NUMERIC_FORMS.items())
def test_numeric_spellings_of_forbidden_addresses_are_refused_at_config_time(
    url: str, address: str
) -> None:
    with pytest.raises(UrlRejectedError, match=re.escape(address)):
        check_url(url, UrlPolicy())
    # Refused even where private networks are allowed: clients disagree on these spellings.
    with pytest.raises(UrlRejectedError, match="non-standard form"):
        check_url(url, UrlPolicy(True, True))


@pytest.mark.parametrize("url", IPV6_FORMS)
def test_ipv6_forms_of_forbidden_addresses_are_refused(url: str) -> None:
    with pytest.raises(UrlRejectedError):
        check_url(url, UrlPolicy())


@pytest.mark.parametrize(
    "url", ["https://1.2.3.999/", "https://08/", "https://1.2.3.4.5/", "https://1.0x1g.3.4/"]
)
def test_a_host_that_ends_in_a_number_but_is_no_address_is_refused(url: str) -> None:
    with pytest.raises(UrlRejectedError, match="not a valid IPv4 address"):
        check_url(url, UrlPolicy())


def test_a_public_address_in_a_non_standard_form_is_refused_with_the_standard_spelling() -> None:
    with pytest.raises(UrlRejectedError, match=r"write 93\.184\.216\.34"):
        check_url("https://1572395042/", UrlPolicy())
    check_url("https://93.184.216.34/", UrlPolicy())
    check_url("https://hooks.123.example/", UrlPolicy())  # a hostname that holds digits


@pytest.mark.parametrize("url", [*NUMERIC_FORMS, *IPV6_FORMS])
async def test_numeric_and_ipv6_forms_are_refused_at_send_time_before_connecting(
    url: str, loopback_only: list[Any]
) -> None:
    # Stored without validation, as an older version might have accepted it.
    hook = WebhookConfig.model_validate(
        {"id": "w", "account_id": "a", "url": "https://placeholder.example/"}
    ).model_copy(update={"url": url})
    client = DeliveryClient(UrlPolicy(), 2)
    outcome = await client.attempt(hook, EventName.MESSAGE_SENT, {}, "msg_1", 1)
    await client.close()
    assert (outcome.result.error or "").startswith("refused: "), outcome.result.error
    assert loopback_only == []


async def test_a_dns_answer_that_mixes_public_and_forbidden_addresses_is_refused(
    loopback_only: list[Any],
) -> None:
    hook = WebhookConfig.model_validate(
        {"id": "w", "account_id": "a", "url": "https://mixed.rebinding.example/x"}
    )
    client = DeliveryClient(UrlPolicy(), 2, resolver=MapResolver("93.184.216.34", "10.0.0.7"))
    outcome = await client.attempt(hook, EventName.MESSAGE_SENT, {}, "msg_1", 1)
    await client.close()
    assert "refused" in (outcome.result.error or "") and "10.0.0.7" in (outcome.result.error or "")
    assert loopback_only == []
