"""The admin API, test connection, attempt log, replay, metrics and feedback, on a real worker.

Every route is driven through a real aiohttp client against the worker's web server.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families
from standardwebhooks import Webhook

from app.kafka.brokers.net import free_port
from tests.integration.conftest import Pipeline, make_pipeline, started_pipeline
from tests.integration.harness import HOOKSTREAM, Receiver, unique, wait_until
from tests.seed_bodies import input_event

TOKEN = "admin-token-for-tests"
SECRET = "whsec_" + base64.b64encode(b"admin-api-test-signing-key-32byt").decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"a-rotated-signing-key-of-32bytes").decode()
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PORTAL_SECRET = "portal-key-for-tests"


@pytest.fixture(scope="module")
def api_pipeline(broker: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    with started_pipeline(
        broker,
        tmp_path_factory.mktemp("api"),
        HOOKSTREAM_ADMIN_TOKEN=TOKEN,
        HOOKSTREAM_TRACKING_SECRET="tracking-key-for-tests",
        HOOKSTREAM_PORTAL_SECRET=PORTAL_SECRET,
    ) as pipeline:
        yield pipeline


@pytest.fixture
async def api(api_pipeline: Pipeline) -> AsyncIterator[Api]:
    await api_pipeline.worker.wait_ready()
    async with aiohttp.ClientSession() as session:
        yield Api(session, f"http://127.0.0.1:{api_pipeline.worker.web_port}", api_pipeline)
    await api_pipeline.kafka.close()


class Api:
    def __init__(self, session: aiohttp.ClientSession, base: str, pipeline: Pipeline) -> None:
        self.session, self.base, self.pipeline = session, base, pipeline

    async def call(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        async with self.session.request(
            method, self.base + path, json=body, headers=AUTH if headers is None else headers
        ) as response:
            ctype = response.headers.get("Content-Type", "")
            data = await response.json() if "json" in ctype else await response.text()
            return response.status, data

    async def send_event(self, name: str, account: str, **extra: Any) -> None:
        family = "contacts" if name.startswith(("mailing", "contact")) else "messages"
        await self.pipeline.kafka.send_json(
            self.pipeline.catalog.name(f"events.{family}"),
            input_event(name, account, **extra),
            key=account,
        )


# -- auth -----------------------------------------------------------------------------------
async def test_requests_without_the_token_are_refused(api: Api) -> None:
    status, body = await api.call("GET", "/api/webhooks?account_id=a", headers={})
    assert status == 401 and "bearer" in body["error"]
    status, body = await api.call(
        "GET", "/api/webhooks?account_id=a", headers={"Authorization": "Bearer wrong"}
    )
    assert status == 401 and body["error"] == "invalid bearer token"
    status, body = await api.call("GET", "/health", headers={})
    assert status == 200 and body["ready"] is True


# -- CRUD -----------------------------------------------------------------------------------
async def test_crud_round_trip_with_write_only_secrets_kept_on_blank(
    api: Api, receiver: Receiver
) -> None:
    account = unique("acct_")
    create = {
        "account_id": account,
        "name": "CRM",
        "url": receiver.url("/crud"),
        "secret": SECRET,
        "auth": {"type": "basic", "username": "crm", "password": "pw-one"},
    }
    status, made = await api.call("POST", "/api/webhooks", create)
    assert status == 201, made
    hook_id = made["id"]
    assert made["secret_set"] is True and made["auth"] == {
        "type": "basic",
        "username": "crm",
        "password_set": True,
    }
    assert "secret" not in made and SECRET not in str(made) and "pw-one" not in str(made)

    status, listed = await api.call("GET", f"/api/webhooks?account_id={account}")
    assert status == 200 and [w["id"] for w in listed["webhooks"]] == [hook_id]
    status, got = await api.call("GET", f"/api/webhooks/{hook_id}")
    assert status == 200 and got == made

    # PUT without secret / password keeps both (seed 004: blank keeps the current secret);
    # without account_id it keeps the webhook's account (the portal's form never sends it).
    replace = {k: v for k, v in create.items() if k not in ("secret", "account_id")}
    replace["name"] = "CRM v2"
    replace["auth"] = {"type": "basic", "username": "crm2"}
    status, put = await api.call("PUT", f"/api/webhooks/{hook_id}", replace)
    assert status == 200 and put["name"] == "CRM v2" and put["secret_set"] is True
    assert put["account_id"] == account
    await api.send_event("message sent", account)
    [request] = await receiver.wait_for("/crud")
    Webhook(SECRET).verify(request.body, request.headers)
    assert request.headers["Authorization"] == "Basic " + base64.b64encode(b"crm2:pw-one").decode()

    status, patched = await api.call("PATCH", f"/api/webhooks/{hook_id}", {"secret": OTHER_SECRET})
    assert status == 200 and patched["secret_set"] is True and patched["name"] == "CRM v2"
    await api.send_event("message sent", account)
    second = (await receiver.wait_for("/crud", count=2))[1]
    Webhook(OTHER_SECRET).verify(second.body, second.headers)
    Webhook(SECRET).verify(second.body, second.headers)  # the old secret signs during its grace
    assert len(second.headers["webhook-signature"].split(" ")) == 2

    status, paused = await api.call("PATCH", f"/api/webhooks/{hook_id}", {"active": False})
    assert status == 200 and paused["active"] is False and paused["secret_set"] is True

    status, _ = await api.call("DELETE", f"/api/webhooks/{hook_id}")
    assert status == 200
    status, gone = await api.call("GET", f"/api/webhooks/{hook_id}")
    assert status == 404 and hook_id in gone["error"]
    status, _ = await api.call("POST", "/api/webhooks", {**create, "id": hook_id})
    assert status == 201
    status, _again = await api.call("POST", "/api/webhooks", {**create, "id": hook_id})
    assert status == 409


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        ({"url": "ftp://x.example/"}, "url", "scheme"),
        ({"events": ["message exploded"]}, "events", "unknown event name"),
        (
            {"method": "GET", "auth": {"type": "basic", "username": "u", "password": "p"}},
            "auth",
            "POST only",
        ),
        ({"url": None}, "url", "Field required"),
        ({"account_id": None}, "account_id", "Field required"),
        ({"secret": "not-whsec"}, "secret", "whsec_"),
        ({"custom_payload": [{"field": "f", "path": ""}]}, "custom_payload", "at least 1"),
        ({"content_type": "xml"}, "content_type", "json"),
    ],
)
async def test_validation_errors_are_422_with_the_field_and_reason(
    api: Api, body: dict[str, Any], field: str, reason: str
) -> None:
    document = {"account_id": "a", "url": "https://hooks.example.com/x", **body}
    document = {k: v for k, v in document.items() if v is not None}  # None: left out
    status, answer = await api.call("POST", "/api/webhooks", document)
    assert status == 422, answer
    assert "Value error" not in str(answer)  # pydantic's prefix is noise to a reader
    assert any(e["field"].startswith(field) and reason in e["reason"] for e in answer["errors"]), (
        answer
    )
    assert "not-whsec" not in str(answer)


async def test_malformed_bodies_are_4xx(api: Api) -> None:
    async with api.session.post(
        api.base + "/api/webhooks", data=b"{nope", headers=AUTH
    ) as response:
        assert response.status == 400 and "not JSON" in (await response.json())["error"]
    status, answer = await api.call("GET", "/api/webhooks")
    assert status == 422 and "account_id" in answer["error"]
    status, answer = await api.call("GET", "/api/webhooks/nope/attempts?limit=0")
    assert status == 422


# -- test connection ------------------------------------------------------------------------
async def test_test_connection_of_an_unsaved_config(api: Api, receiver: Receiver) -> None:
    config = {"account_id": "a", "url": receiver.url("/probe"), "secret": SECRET}
    status, result = await api.call("POST", "/api/webhooks/test", {"config": config})
    assert status == 200 and result["ok"] is True and result["status"] == 200
    assert result["response_body"] == "answered 200"
    [request] = receiver.at("/probe")
    assert Webhook(SECRET).verify(request.body, request.headers)["event"] == "message sent"
    assert result["request"]["body"] == request.body.decode()

    receiver.script("/broken", [500])
    config["url"] = receiver.url("/broken")
    status, result = await api.call(
        "POST", "/api/webhooks/test", {"config": config, "event": "contact subscribes"}
    )
    assert status == 200 and result["ok"] is False and result["status"] == 500

    config["url"] = f"http://127.0.0.1:{free_port()}/refused"
    status, result = await api.call("POST", "/api/webhooks/test", {"config": config})
    assert result["ok"] is False and result["status"] is None
    assert result["error"].startswith("connection")

    receiver.delays["/slow"] = 5
    config["url"] = receiver.url("/slow")
    status, result = await api.call(
        "POST", "/api/webhooks/test", {"config": config, "timeout": 0.5}
    )
    assert result["ok"] is False and result["error"].startswith("timeout")

    status, result = await api.call("POST", "/api/webhooks/test", {"config": {"url": "x"}})
    assert status == 422


async def test_test_connection_of_a_saved_webhook_with_an_edited_sample(
    api: Api, receiver: Receiver
) -> None:
    status, made = await api.call(
        "POST",
        "/api/webhooks",
        {"account_id": unique("acct_"), "url": receiver.url("/saved"), "secret": SECRET},
    )
    sample = input_event("message clicked", "ignored", click_url="https://edited.example/")
    status, result = await api.call(
        "POST", f"/api/webhooks/{made['id']}/test", {"event": "message clicked", "sample": sample}
    )
    assert status == 200 and result["ok"] is True
    [request] = receiver.at("/saved")
    body = Webhook(SECRET).verify(request.body, request.headers)
    assert body["click_url"] == "https://edited.example/"
    status, result = await api.call(
        "POST", f"/api/webhooks/{made['id']}/test", {"event": "message clicked", "sample": {}}
    )
    assert status == 422 and "sample" in result["error"]


# -- attempt log, dead letters, replay ------------------------------------------------------
async def test_attempts_are_listed_newest_first(api: Api, receiver: Receiver) -> None:
    account = unique("acct_")
    _, made = await api.call(
        "POST", "/api/webhooks", {"account_id": account, "url": receiver.url("/log")}
    )
    for _ in range(3):
        await api.send_event("message sent", account)
    await receiver.wait_for("/log", count=3)

    async def three() -> Any:
        _status, body = await api.call("GET", f"/api/webhooks/{made['id']}/attempts?limit=10")
        return body["attempts"] if len(body["attempts"]) == 3 else None

    attempts = await wait_until(three, 30, "three attempts in the log")
    times = [a["result"]["at"] for a in attempts]
    assert times == sorted(times, reverse=True)
    assert {a["outcome"] for a in attempts} == {"delivered"}
    _status, limited = await api.call("GET", f"/api/webhooks/{made['id']}/attempts?limit=2")
    assert len(limited["attempts"]) == 2


async def test_a_dead_letter_is_replayed_and_delivered_once_the_receiver_recovers(
    api: Api, receiver: Receiver
) -> None:
    account = unique("acct_")
    receiver.script("/down", [503] * 4)
    status, made = await api.call(
        "POST", "/api/webhooks", {"account_id": account, "url": receiver.url("/down")}
    )
    await api.send_event("delivery bounce", account)

    async def dead() -> Any:
        _status, body = await api.call("GET", f"/api/failed?webhook_id={made['id']}")
        return body["failed"]

    [letter] = await wait_until(dead, 30, "the dead letter")
    delivery_id = letter["job"]["delivery_id"]
    assert len(receiver.at("/down")) == 4

    status, result = await api.call("POST", "/api/failed/replay", {"delivery_ids": [delivery_id]})
    assert status == 200 and result["replayed"] == [delivery_id]
    requests = await receiver.wait_for("/down", count=5)
    assert requests[-1].headers["webhook-id"] == delivery_id
    status, result = await api.call("POST", "/api/failed/replay", {})
    assert status == 422

    # The CLI replays the same dead letters (by webhook) with the same delivery id.
    env = api.pipeline.worker.env
    listed = subprocess.run(
        [HOOKSTREAM, "replay", "--webhook-id", made["id"], "--dry-run"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert f"would replay 1 delivery(ies)\n  {delivery_id}" in listed.stdout
    subprocess.run([HOOKSTREAM, "replay", "--webhook-id", made["id"]], env=env, check=True)
    requests = await receiver.wait_for("/down", count=6)
    assert requests[-1].headers["webhook-id"] == delivery_id


# -- metrics --------------------------------------------------------------------------------
def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_metrics_parse_and_move(api: Api, receiver: Receiver) -> None:
    status, before_text = await api.call("GET", "/metrics", headers={})
    assert status == 200
    before = _samples(before_text)
    account = unique("acct_")
    await api.call("POST", "/api/webhooks", {"account_id": account, "url": receiver.url("/m")})
    await api.send_event("message sent", account)
    await receiver.wait_for("/m")

    key = ("hookstream_deliveries_total", (("outcome", "delivered"), ("status_class", "2xx")))
    events = ("hookstream_events_total", (("family", "messages"), ("result", "valid")))

    async def moved() -> bool:
        _status, text = await api.call("GET", "/metrics", headers={})
        after = _samples(text)
        return after.get(key, 0) > before.get(key, 0) and after[events] > before.get(events, 0)

    await wait_until(moved, 20, "delivery counters to move")
    status, text = await api.call("GET", "/metrics", headers={})
    names = {name for name, _ in _samples(text)}
    assert "hookstream_delivery_latency_seconds_bucket" in names
    assert "hookstream_webhooks" in names


# -- feedback (seed 000) --------------------------------------------------------------------
async def test_tracking_round_trip_fires_webhooks_subscribed_to_opens_and_clicks(
    api: Api, receiver: Receiver
) -> None:
    account = unique("acct_")
    await api.call(
        "POST",
        "/api/webhooks",
        {
            "account_id": account,
            "url": receiver.url("/conn"),
            "tracking": True,
            "events": ["message sent"],
        },
    )
    await api.call(
        "POST",
        "/api/webhooks",
        {
            "account_id": account,
            "url": receiver.url("/engagement"),
            "events": ["message open", "message clicked"],
        },
    )
    await api.send_event("message sent", account)
    [sent] = await receiver.wait_for("/conn")
    token = sent.headers["x-hookstream-token"]

    status, body = await api.call(
        "POST", f"/track/{account}", {"token": token, "action": "open"}, headers={}
    )
    assert status == 202, body
    [opened] = await receiver.wait_for("/engagement")
    payload = opened.json()
    assert payload["event"] == "message open"
    assert payload["message_uid"] == "0123456789_012_012_01234" and payload["message_id"] == 4

    async with api.session.post(
        f"{api.base}/track/{account}",
        data={"token": token, "action": "click", "url": "https://shop.example/p/1"},
    ) as response:
        assert response.status == 202
    clicks = await receiver.wait_for("/engagement", count=2)
    assert clicks[1].json()["event"] == "message clicked"
    assert clicks[1].json()["click_url"] == "https://shop.example/p/1"

    body_part, _, signature = token.partition(".")
    forged = body_part[:-2] + ("AA" if body_part[-2:] != "AA" else "BB") + "." + signature
    for bad, expected in [
        ({"token": forged, "action": "open"}, 401),
        ({"token": "garbage", "action": "open"}, 401),
        ({"token": token, "action": "explode"}, 422),
    ]:
        status, answer = await api.call("POST", f"/track/{account}", bad, headers={})
        assert status == expected, answer
    status, answer = await api.call(
        "POST", f"/track/{unique('acct_')}", {"token": token, "action": "open"}, headers={}
    )
    assert status == 403 and "another account" in answer["error"]


# -- the default (strict) URL policy --------------------------------------------------------
@pytest.fixture(scope="module")
def strict_pipeline(broker: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    """A worker with the production defaults: https only, no private addresses."""
    with started_pipeline(
        broker,
        tmp_path_factory.mktemp("strict"),
        HOOKSTREAM_ADMIN_TOKEN=TOKEN,
        HOOKSTREAM_ALLOW_HTTP="false",
        HOOKSTREAM_ALLOW_PRIVATE_NETWORKS="false",
    ) as pipeline:
        yield pipeline


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://hooks.example.com/x", "must use https"),
        ("https://127.0.0.1/x", "loopback"),
        ("https://10.0.0.8/x", "private-network"),
        ("https://169.254.169.254/latest/meta-data", "link-local"),
        ("https://[fd00::1]/x", "private-network"),
        ("https://localhost:8443/x", "loopback host"),
    ],
)
async def test_the_default_policy_refuses_http_and_private_addresses_with_422(
    strict_pipeline: Pipeline, url: str, reason: str
) -> None:
    await strict_pipeline.worker.wait_ready()
    base = f"http://127.0.0.1:{strict_pipeline.worker.web_port}"
    async with aiohttp.ClientSession() as session:
        for path, body in [
            ("/api/webhooks", {"account_id": "a", "url": url}),
            ("/api/webhooks/test", {"config": {"account_id": "a", "url": url}}),
        ]:
            async with session.post(base + path, json=body, headers=AUTH) as response:
                answer = await response.json()
                assert response.status == 422, answer
                assert any(reason in e["reason"] for e in answer["errors"]), answer


# -- secret hygiene -------------------------------------------------------------------------
async def test_secrets_never_appear_in_logs_topics_or_api_output(
    api: Api, receiver: Receiver, broker: str
) -> None:
    from app.kafka.log_scan import scan_topic
    from app.settings import Settings

    secret = "whsec_" + base64.b64encode(b"grep-me-signing-secret-32-bytes!").decode()
    password = "grep-me-password-9f3a1c"
    account = unique("acct_")
    outputs: list[str] = []

    async def call(method: str, path: str, body: Any = None) -> Any:
        _, answer = await api.call(method, path, body)
        outputs.append(str(answer))
        return answer

    receiver.script("/sec-fail", [500] * 4)
    auth = {"type": "basic", "username": "u", "password": password}
    failing = await call(
        "POST",
        "/api/webhooks",
        {"account_id": account, "url": receiver.url("/sec-fail"), "secret": secret, "auth": auth},
    )
    working = await call(
        "POST",
        "/api/webhooks",
        {
            "account_id": account,
            "url": receiver.url("/sec-ok"),
            "secret": secret,
            "auth": auth,
            "log_response_body": True,
            "tracking": True,  # its requests carry a feedback token, a credential too
        },
    )
    await api.send_event("message sent", account)
    await receiver.wait_for("/sec-ok")
    await call("POST", "/api/webhooks", {"account_id": account, "url": "ftp://x", "secret": secret})
    await call("POST", f"/api/webhooks/{working['id']}/test", {})
    await call("GET", f"/api/webhooks/{working['id']}")
    await call("GET", f"/api/webhooks?account_id={account}")
    bad_id = unique("wh_")
    await api.pipeline.kafka.send_json(
        api.pipeline.catalog.webhooks,
        {"id": bad_id, "account_id": account, "url": "ftp://x", "secret": secret, "auth": auth},
        key=bad_id,
    )
    await api.pipeline.kafka.read(api.pipeline.catalog.events_invalid, lambda v: v["key"] == bad_id)

    async def dead_letter() -> Any:
        return (await call("GET", f"/api/failed?webhook_id={failing['id']}"))["failed"]

    await wait_until(dead_letter, 30, "the dead letter")
    await call("GET", f"/api/webhooks/{working['id']}/attempts")

    settings = Settings(broker=f"kafka://{broker}")
    catalog = api.pipeline.catalog
    written: list[bytes] = []
    for topic in [
        catalog.attempts,
        catalog.deliveries_failed,
        catalog.events_invalid,
        catalog.deliveries,
        *(catalog.retry(t) for t in range(1, catalog.retry_tiers + 1)),
    ]:
        written += (await scan_topic(settings, topic, lambda _k, v: v, 1_000_000)).items
    assert len(written) > 5
    texts = [*outputs, api.pipeline.worker.log()]
    for raw in written:
        texts.append(raw.decode("utf-8", "replace"))
        texts += _base64_decoded(orjson.loads(raw))  # e.g. events.invalid's value_base64
    everything = "\n".join(texts)
    assert "value_base64" in everything  # the rejected config's record was searched decoded
    [sent] = receiver.at("/sec-ok")[:1]
    token = sent.headers["x-hookstream-token"]
    basic = base64.b64encode(f"u:{password}".encode()).decode()
    for value in (
        secret,
        secret.removeprefix("whsec_"),
        password,
        basic,
        token,
        TOKEN,
        "tracking-key-for-tests",
    ):
        assert value not in everything, "a credential was written outside the webhooks topic"
    test_output = next(o for o in outputs if "x-hookstream-token" in o)
    assert "'x-hookstream-token': '***'" in test_output and "'authorization': '***'" in test_output


def _base64_decoded(node: Any) -> list[str]:
    """The text of every string in ``node`` that is valid base64 (decoded with replacement)."""
    if isinstance(node, dict):
        return [text for value in node.values() for text in _base64_decoded(value)]
    if isinstance(node, list):
        return [text for value in node for text in _base64_decoded(value)]
    if isinstance(node, str) and len(node) >= 8:
        try:
            return [base64.b64decode(node, validate=True).decode("utf-8", "replace")]
        except (binascii.Error, ValueError):
            return []
    return []


# -- feedback and health edge cases ---------------------------------------------------------
async def test_an_expired_feedback_token_is_refused_with_401(api: Api) -> None:
    import time

    from app.flow.tracking import TrackingClaims, issue_token

    account = unique("acct_")
    claims = TrackingClaims(
        account_id=account,
        webhook_id="wh_x",
        delivery_id="msg_x",
        message={"message_id": 4},
        exp=time.time() - 1,
    )
    token = issue_token(b"tracking-key-for-tests", claims)  # the worker's key, but expired
    status, answer = await api.call(
        "POST", f"/track/{account}", {"token": token, "action": "open"}, headers={}
    )
    assert status == 401 and "expired" in answer["error"]


async def test_feedback_answers_503_without_a_tracking_secret(strict_pipeline: Pipeline) -> None:
    await strict_pipeline.worker.wait_ready()
    url = f"http://127.0.0.1:{strict_pipeline.worker.web_port}/track/acct_1"
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, json={"token": "t", "action": "open"}) as response,
    ):
        answer = await response.json()
        assert response.status == 503 and "HOOKSTREAM_TRACKING_SECRET" in answer["error"]


async def test_health_is_503_until_the_config_view_is_loaded(broker: str, tmp_path: Any) -> None:
    """The web server answers before the view has read every webhook: 503 until then."""
    pipeline = make_pipeline(broker, tmp_path)
    env = pipeline.worker.env
    # A worker on these topics first, to create them; then many configs for the next to load.
    subprocess.run([HOOKSTREAM, "topics", "create"], env=env, check=True, capture_output=True)
    configs = [
        (f"wh_{n}", {"id": f"wh_{n}", "account_id": f"a{n}", "url": f"http://127.0.0.1:9/{n}"})
        for n in range(30_000)
    ]
    await pipeline.kafka.send_json_many(pipeline.catalog.webhooks, configs)
    await pipeline.kafka.close()
    pipeline.worker.start()
    statuses: list[int] = []
    try:
        async with aiohttp.ClientSession() as session:

            async def ready() -> bool:
                try:
                    async with session.get(pipeline.worker.health_url) as response:
                        statuses.append(response.status)
                        return response.status == 200
                except aiohttp.ClientError:
                    return False  # not listening yet

            await wait_until(ready, 120, "the worker to be ready", interval=0.05)
    finally:
        pipeline.worker.stop()
    assert statuses[0] == 503 and statuses[-1] == 200 and set(statuses) == {503, 200}


# -- portal links and the account-scoped API -------------------------------------------------
async def _portal_link(api: Api, account: str, ttl: float = 3600) -> dict[str, str]:
    """A portal link for ``account``, as the bearer header its page sends."""
    status, link = await api.call(
        "POST", "/api/portal-links", {"account_id": account, "ttl_seconds": ttl}
    )
    assert status == 201, link
    assert link["url"].startswith(f"{api.base}/portal#token=") and link["expires_at"] > 0
    return {"Authorization": f"Bearer {link['url'].split('#token=', 1)[1]}"}


async def test_a_portal_link_reaches_its_own_account_and_nothing_else(
    api: Api, receiver: Receiver
) -> None:
    mine, theirs = unique("acct_"), unique("acct_")
    link = await _portal_link(api, mine)
    status, other = await api.call(
        "POST", "/api/webhooks", {"account_id": theirs, "url": receiver.url("/other")}
    )
    assert status == 201
    # Creating through the link: the account is the link's, whatever the body says.
    status, created = await api.call(
        "POST", "/api/webhooks", {"url": receiver.url("/mine"), "name": "Mine"}, headers=link
    )
    assert status == 201 and created["account_id"] == mine
    status, listed = await api.call("GET", "/api/webhooks", headers=link)
    assert status == 200 and [w["id"] for w in listed["webhooks"]] == [created["id"]]
    # Another account's webhook looks like one that does not exist, on every route.
    for method, path, body in [
        ("GET", f"/api/webhooks/{other['id']}", None),
        ("PATCH", f"/api/webhooks/{other['id']}", {"active": False}),
        ("PUT", f"/api/webhooks/{other['id']}", {"url": receiver.url("/x")}),
        ("DELETE", f"/api/webhooks/{other['id']}", None),
        ("GET", f"/api/webhooks/{other['id']}/attempts", None),
        ("POST", f"/api/webhooks/{other['id']}/test", {"event": "message sent"}),
        ("GET", f"/api/failed?webhook_id={other['id']}", None),
        ("POST", "/api/failed/replay", {"webhook_id": other["id"]}),
        ("GET", f"/api/webhooks?account_id={theirs}", None),
        ("GET", f"/api/webhook-stats?account_id={theirs}", None),
        ("POST", "/api/webhooks", {"account_id": theirs, "url": receiver.url("/y")}),
        ("PATCH", f"/api/webhooks/{created['id']}", {"account_id": theirs}),
    ]:
        status, answer = await api.call(method, path, body, headers=link)
        assert status == 404, (method, path, status, answer)
    status, answer = await api.call(
        "POST", "/api/webhooks", {"id": other["id"], "url": receiver.url("/z")}, headers=link
    )
    assert status == 422 and "id" in answer["error"]  # no probing for ids taken elsewhere
    status, still = await api.call("GET", f"/api/webhooks/{other['id']}")
    assert status == 200 and still["active"] is True and still["url"] == receiver.url("/other")
    # A link is no admin token: it cannot make links.
    status, _ = await api.call(
        "POST", "/api/portal-links", {"account_id": theirs, "ttl_seconds": 60}, headers=link
    )
    assert status == 401
    # The admin token still reaches everything.
    status, listed = await api.call("GET", f"/api/webhooks?account_id={mine}")
    assert status == 200 and [w["id"] for w in listed["webhooks"]] == [created["id"]]


async def test_expired_and_forged_portal_tokens_are_401(api: Api) -> None:
    import time

    from app.flow.portal import issue_portal_token

    account = unique("acct_")
    expired = issue_portal_token(PORTAL_SECRET.encode(), account, time.time() - 1)
    forged = issue_portal_token(b"some-other-key", account, time.time() + 3600)
    valid = (await _portal_link(api, account))["Authorization"].split(" ", 1)[1]
    claims, _, signature = valid.partition(".")
    tampered = claims[:-2] + ("A" if claims[-2] != "A" else "B") + claims[-1] + "." + signature
    for token, reason in [(expired, "expired"), (forged, ""), (tampered, "")]:
        status, answer = await api.call(
            "GET", "/api/webhooks", headers={"Authorization": f"Bearer {token}"}
        )
        assert status == 401 and reason in answer["error"], answer
    status, answer = await api.call(
        "POST", "/api/portal-links", {"account_id": account, "ttl_seconds": 0}
    )
    assert status == 422


async def test_the_portal_page_is_served_with_a_strict_policy(api: Api) -> None:
    for path, ctype in [
        ("/portal", "text/html"),
        ("/portal/static/portal.js", "text/javascript"),
        ("/portal/static/portal.css", "text/css"),
    ]:
        async with api.session.get(api.base + path) as response:
            assert response.status == 200 and response.content_type == ctype
            policy = response.headers["Content-Security-Policy"]
            assert "default-src 'self'" in policy and "unsafe" not in policy
    async with api.session.get(api.base + "/portal/static/..%2Fportal.py") as response:
        assert response.status == 404


async def test_tracking_without_a_tracking_secret_is_refused(strict_pipeline: Pipeline) -> None:
    await strict_pipeline.worker.wait_ready()
    base = f"http://127.0.0.1:{strict_pipeline.worker.web_port}"
    config = {"account_id": unique("acct_"), "url": "https://hooks.example.com/t", "tracking": True}
    async with (
        aiohttp.ClientSession() as session,
        session.post(base + "/api/webhooks", json=config, headers=AUTH) as response,
    ):
        answer = await response.json()
        assert response.status == 422 and "HOOKSTREAM_TRACKING_SECRET" in str(answer)
    # On the topic: the config lands on events.invalid with the reason, and is not applied.
    hook_id = unique("wh_trk_")
    kafka = strict_pipeline.kafka
    await kafka.send_json(strict_pipeline.catalog.webhooks, {**config, "id": hook_id}, key=hook_id)
    [invalid] = await kafka.read(
        strict_pipeline.catalog.events_invalid,
        lambda v: v["key"] == hook_id,
        timeout=30,
    )
    assert "HOOKSTREAM_TRACKING_SECRET" in invalid["error"] and invalid["stage"] == "webhooks"
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{base}/api/webhooks/{hook_id}", headers=AUTH) as response,
    ):
        assert response.status == 404
    await kafka.close()


async def test_operators_list_events_invalid_from_the_api_and_the_command(api: Api) -> None:
    since = time.time() - 1
    bad = input_event("message sent", unique("acct_"), message_id="not a number")
    topic = api.pipeline.catalog.events_messages
    meta = await api.pipeline.kafka.send_json(topic, bad)
    found: list[dict[str, Any]] = []

    async def listed() -> bool:
        status, answer = await api.call("GET", f"/api/invalid?since={since}&limit=1000")
        assert status == 200, answer
        found[:] = [
            e
            for e in answer["invalid"]
            if (e["topic"], e["partition"], e["offset"]) == (topic, meta.partition, meta.offset)
        ]
        return bool(found)

    await wait_until(listed, 30, "the refused event in GET /api/invalid")
    [entry] = found
    assert entry["stage"] == "ingest" and "message_id" in entry["reason"]
    assert entry["at"] >= since
    assert set(entry) == {"at", "topic", "partition", "offset", "stage", "reason"}  # no value

    # Operators only: a portal link sees no other account's refused input.
    link = await _portal_link(api, unique("acct_"))
    status, _ = await api.call("GET", "/api/invalid", headers=link)
    assert status in (401, 403)
    status, answer = await api.call("GET", "/api/invalid?since=yesterday")
    assert status == 422 and "since" in str(answer)

    listing = await asyncio.to_thread(
        subprocess.run,
        [HOOKSTREAM, "invalid", "--since", str(since), "--limit", "1000"],
        env=api.pipeline.worker.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listing.returncode == 0, listing.stderr
    place = f"{topic}[{meta.partition}]@{meta.offset}"
    [line] = [x for x in listing.stdout.splitlines() if place in x]
    assert "ingest: " in line and "message_id" in line


async def test_produce_sends_json_lines_and_names_the_lines_it_refused(
    api: Api, tmp_path: Any
) -> None:
    account = unique("acct_")
    lines = tmp_path / "events.jsonl"
    good = orjson.dumps(input_event("message sent", account)).decode()
    lines.write_text(f"{good}\n\nnot json at all\n[1, 2]\n")
    result = await asyncio.to_thread(
        subprocess.run,
        [HOOKSTREAM, "produce", "messages", str(lines)],
        env=api.pipeline.worker.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "produced 1 record(s)" in result.stdout
    assert "line 3: not JSON" in result.stderr and "line 4: not a JSON object" in result.stderr
    assert "2 line(s) not sent: 3, 4" in result.stderr
    sent = await api.pipeline.kafka.read(
        api.pipeline.catalog.events_messages, lambda v: v.get("account_id") == account
    )
    assert len(sent) == 1


async def test_validate_checks_a_config_as_save_would_and_sends_nothing(
    api: Api, receiver: Receiver
) -> None:
    account = unique("acct_")
    good = {"account_id": account, "url": receiver.url("/v"), "secret": SECRET}
    status, answer = await api.call("POST", "/api/webhooks/validate", {"config": good})
    assert status == 200 and answer == {"valid": True}
    bad = {**good, "url": "ftp://x.example/", "method": "GET", "auth": {"type": "basic"}}
    status, answer = await api.call("POST", "/api/webhooks/validate", {"config": bad})
    assert status == 422
    fields = {e["field"] for e in answer["errors"]}
    assert "url" in fields or "auth" in fields, answer
    # Editing: a blank secret keeps the stored one, as PUT does.
    status, made = await api.call("POST", "/api/webhooks", good)
    assert status == 201
    edit = {"url": receiver.url("/v2"), "name": "edited"}
    status, answer = await api.call(
        "POST", "/api/webhooks/validate", {"config": edit, "webhook_id": made["id"]}
    )
    assert status == 200, answer
    assert receiver.count("/v", "/v2") == 0  # nothing was sent
