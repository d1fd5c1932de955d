"""Sending one delivery attempt over HTTP (aiohttp) and describing what happened.

One shared session per worker (keep-alive, pooled connections). Every request is built the
same way for the pipeline and for "test connection": payload encoding, method, basic auth,
Standard Webhooks headers, ``user-agent: hookstream/<version>``; redirects are never followed.
The URL policy is checked again here, and the resolver refuses hostnames that resolve to a
forbidden address, so a DNS change after a config was accepted cannot reach inside networks.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import yarl
from aiohttp.abc import AbstractResolver, ResolveResult

from app import __version__
from app.flow.encoding import EncodedRequest, encode_request
from app.flow.signing import sign
from app.flow.tracking import TOKEN_HEADER, TrackingClaims, issue_token
from app.model.errors import UrlRejectedError
from app.model.events import EventName
from app.model.records import RESPONSE_BODY_CAP, AttemptResult
from app.model.url_policy import UrlPolicy, check_url, forbidden_address_reason
from app.model.webhook_config import WebhookConfig, signing_key

USER_AGENT = f"hookstream/{__version__}"
EVENT_HEADER = "x-hookstream-event"
ATTEMPT_HEADER = "x-hookstream-attempt"
#: A batched request: ``x-hookstream-event: batch`` and the number of payloads in its array.
BATCH_EVENT = "batch"
BATCH_SIZE_HEADER = "x-hookstream-batch-size"
#: Request headers that carry a credential: masked wherever a request is shown or logged.
CREDENTIAL_HEADERS = frozenset({"authorization", TOKEN_HEADER})
MASKED = "***"


def masked_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """``headers`` with every credential header's value replaced by ``***``."""
    return {k: MASKED if k.lower() in CREDENTIAL_HEADERS else v for k, v in headers.items()}


class GuardedResolver(AbstractResolver):
    """Resolves through ``inner`` and refuses a host if any of its addresses is forbidden."""

    def __init__(self, inner: AbstractResolver, policy: UrlPolicy) -> None:
        self._inner = inner
        self._policy = policy

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        if not self._policy.allow_private_networks:
            for result in results:
                reason = forbidden_address_reason(result["host"])
                if reason is not None:
                    raise OSError(f"refused: {host} resolves to {reason}")
        return results

    async def close(self) -> None:
        await self._inner.close()


@dataclass(frozen=True)
class AttemptOutcome:
    """The result of one attempt, plus the (capped) response body when it was read."""

    result: AttemptResult
    response_body: str | None
    response_headers: Mapping[str, str]  # case-insensitive when a response came
    request: EncodedRequest | None = None
    #: As sent, credentials included (basic auth, feedback token): never in a repr.
    request_headers: dict[str, str] | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.result.status is not None and 200 <= self.result.status < 300


@dataclass(frozen=True)
class RequestPlan:
    """What every request of one webhook for one event has in common, worked out once.

    The worker keeps one per (webhook config, event) (see :class:`DeliveryClient`), so an
    attempt only encodes its payload, signs it and adds its own headers.
    """

    webhook: WebhookConfig  # the config object it was made from (configs are immutable)
    url: str
    headers: dict[str, str] = field(repr=False)  # may hold basic-auth credentials

    @classmethod
    def of(cls, webhook: WebhookConfig, event: EventName) -> RequestPlan:
        url = webhook.url_for(event)
        if url is None:
            raise UrlRejectedError(f"webhook {webhook.id} has no URL for {event.value!r}")
        headers = {"user-agent": USER_AGENT, EVENT_HEADER: event.value}
        if webhook.auth is not None:
            credentials = f"{webhook.auth.username}:{webhook.auth.password.get_secret_value()}"
            headers["authorization"] = "Basic " + base64.b64encode(credentials.encode()).decode()
        return cls(webhook, url, headers)

    def build(
        self,
        payload: dict[str, Any] | list[dict[str, Any]],
        delivery_id: str,
        attempt: int,
        now: int,
        tracking_token: str | None = None,
    ) -> tuple[EncodedRequest, dict[str, str]]:
        """The request and headers of one attempt (the signature is over this attempt's time)."""
        webhook = self.webhook
        request = encode_request(payload, self.url, webhook.method, webhook.content_type)
        headers = {
            **self.headers,
            "webhook-id": delivery_id,
            "webhook-timestamp": str(now),
            ATTEMPT_HEADER: str(attempt),
        }
        if request.content_type is not None:
            headers["content-type"] = request.content_type
        if isinstance(payload, list):
            headers[EVENT_HEADER] = BATCH_EVENT
            headers[BATCH_SIZE_HEADER] = str(len(payload))
        secrets = webhook.signing_secrets(now)
        if secrets:  # keys are decoded once (signing_key is cached)
            headers["webhook-signature"] = " ".join(
                sign(signing_key(secret), delivery_id, now, request.signed) for secret in secrets
            )
        if tracking_token is not None:
            headers[TOKEN_HEADER] = tracking_token
        return request, headers


@dataclass(frozen=True)
class _PlanEntry:
    plan: RequestPlan
    target: yarl.URL  # the URL parsed once; a GET's URL carries its payload and is per request
    refused: str | None  # why the URL policy refuses the URL, checked once per config


#: Plans kept per worker; the cache is cleared whole when it holds this many.
_PLAN_CACHE_SIZE = 65536


class DeliveryClient:
    """Owns the worker's HTTP session; :meth:`attempt` never raises for a network problem."""

    def __init__(
        self,
        policy: UrlPolicy,
        timeout: float,
        max_connections: int = 0,
        resolver: AbstractResolver | None = None,
        tracking_key: bytes | None = None,
        tracking_ttl: float = 30 * 24 * 3600.0,
    ) -> None:
        self._policy = policy
        self._resolver = resolver
        self._tracking_key = tracking_key
        self._tracking_ttl = tracking_ttl
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._plans: dict[tuple[str, EventName], _PlanEntry] = {}

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                resolver=GuardedResolver(
                    self._resolver or aiohttp.ThreadedResolver(), self._policy
                ),
                limit=self._max_connections,
                ttl_dns_cache=30,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=self._timeout,
                auto_decompress=True,
                # One session serves every account: a cookie one receiver sets must never
                # reach another (and a jar costs time on every request).
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def _plan(self, webhook: WebhookConfig, event: EventName) -> _PlanEntry:
        key = (webhook.id, event)
        entry = self._plans.get(key)
        if entry is None or entry.plan.webhook is not webhook:
            plan = RequestPlan.of(webhook, event)
            try:
                check_url(plan.url, self._policy)
                refused = None
            except UrlRejectedError as exc:
                refused = str(exc)
            if len(self._plans) >= _PLAN_CACHE_SIZE:
                self._plans.clear()
            entry = self._plans[key] = _PlanEntry(plan, yarl.URL(plan.url, encoded=True), refused)
        return entry

    async def attempt(
        self,
        webhook: WebhookConfig,
        event: EventName,
        payload: dict[str, Any] | list[dict[str, Any]],
        delivery_id: str,
        attempt: int,
        read_body: bool | None = None,
        message: dict[str, Any] | None = None,
        timeout: float | None = None,
    ) -> AttemptOutcome:
        """Send one attempt; a refused URL, timeout or connection error becomes ``error``.

        ``message`` (the seed message fields) makes a feedback token when the webhook tracks.
        """
        started = time.time()
        clock = time.perf_counter()
        url = ""
        request: EncodedRequest | None = None
        headers: dict[str, str] | None = None
        try:
            entry = self._plan(webhook, event)
            url = entry.plan.url
            token = self._token(webhook, delivery_id, message, started)
            request, headers = entry.plan.build(payload, delivery_id, attempt, int(started), token)
            if entry.refused is not None:
                raise UrlRejectedError(entry.refused)
            target = entry.target
            if request.method == "GET":  # the query carries the payload
                url = request.url
                check_url(url, self._policy)
                target = yarl.URL(url, encoded=True)  # sent as signed, never re-quoted
            async with self._get_session().request(
                request.method,
                target,
                data=request.body,
                headers=headers,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=timeout) if timeout else self._timeout,
            ) as response:
                body = None
                if webhook.log_response_body if read_body is None else read_body:
                    body = await read_capped(response)
                result = AttemptResult(
                    attempt=attempt,
                    url=url,
                    status=response.status,
                    duration_ms=(time.perf_counter() - clock) * 1000,
                    at=started,
                )
                return AttemptOutcome(result, body, response.headers, request, headers)
        except (UrlRejectedError, aiohttp.ClientError, OSError, TimeoutError) as exc:
            result = AttemptResult(
                attempt=attempt,
                url=url,
                error=describe_error(exc),
                duration_ms=(time.perf_counter() - clock) * 1000,
                at=started,
            )
            return AttemptOutcome(result, None, {}, request, headers)

    def _token(
        self,
        webhook: WebhookConfig,
        delivery_id: str,
        message: dict[str, Any] | None,
        now: float,
    ) -> str | None:
        if not webhook.tracking or message is None or self._tracking_key is None:
            return None
        claims = TrackingClaims(
            account_id=webhook.account_id,
            webhook_id=webhook.id,
            delivery_id=delivery_id,
            message=message,
            exp=now + self._tracking_ttl,
        )
        return issue_token(self._tracking_key, claims)


async def read_capped(response: aiohttp.ClientResponse) -> str:
    """At most :data:`RESPONSE_BODY_CAP` bytes of the body; the rest is never read."""
    chunks: list[bytes] = []
    size = 0
    while size < RESPONSE_BODY_CAP:
        chunk = await response.content.read(RESPONSE_BODY_CAP - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks).decode("utf-8", "replace")


def describe_error(exc: BaseException) -> str:
    """A short, specific description of why no response came."""
    if isinstance(exc, UrlRejectedError):
        return f"refused: {exc}"
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return "timeout: no response within the request timeout"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError):
        return f"tls: {exc}"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return f"dns: {exc.os_error}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"connection: {exc.os_error}"
    if isinstance(exc, aiohttp.ClientError):
        return f"http: {type(exc).__name__}: {exc}"
    return f"connection: {exc}"
