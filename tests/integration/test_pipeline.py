"""The pipeline end to end on a real broker, with real aiohttp receivers on loopback.

One worker serves the module; each test uses its own account and webhook ids.
"""

from __future__ import annotations

import base64
from itertools import pairwise
from typing import Any
from urllib.parse import parse_qsl

import orjson
import pytest
from standardwebhooks import Webhook

from app.kafka.log_scan import scan_topic
from app.settings import Settings
from tests.integration.conftest import Pipeline
from tests.integration.harness import Receiver, unique, wait_until
from tests.seed_bodies import SEED_BODIES, expected_payload, family_of, input_event

SECRET = "whsec_" + base64.b64encode(b"integration-test-signing-key-32b").decode()


def webhook(account: str, url: str, **fields: Any) -> dict[str, Any]:
    return {"id": unique("wh_"), "account_id": account, "url": url, **fields}


async def send_event(pipeline: Pipeline, event: dict[str, Any]) -> None:
    topic = pipeline.catalog.name(f"events.{family_of(_canonical(event['event']))}")
    await pipeline.kafka.send_json(topic, event, key=event["account_id"])


def _canonical(name: str) -> str:
    return "complaint" if name == "\u0441omplaint" else name


async def test_every_seed_event_is_delivered_as_its_seed_body_and_signed(
    pipeline: Pipeline, receiver: Receiver
) -> None:
    account = unique("acct_")
    hook = webhook(account, receiver.url("/all"), secret=SECRET)
    await pipeline.kafka.put_webhooks([hook], pipeline.worker)
    for name in SEED_BODIES:
        await send_event(pipeline, input_event(name, account, event_id=unique("evt_")))

    received = await receiver.wait_for("/all", count=len(SEED_BODIES))
    verifier = Webhook(SECRET)
    by_event = {}
    for request in received:
        verifier.verify(request.body, request.headers)  # raises on a bad signature
        assert request.headers["Content-Type"] == "application/json"
        assert request.headers["User-Agent"].startswith("hookstream/")
        assert request.headers["webhook-id"].startswith("msg_")
        body = request.json()
        by_event[body["event"]] = (body, request.body)
    assert set(by_event) == set(SEED_BODIES)
    for name, (body, raw) in by_event.items():
        expected = expected_payload(name)
        assert body == expected, name
        assert list(orjson.loads(raw)) == list(expected), f"key order of {name}"


async def test_form_encoding(pipeline: Pipeline, receiver: Receiver) -> None:
    account = unique("acct_")
    hook = webhook(account, receiver.url("/form"), content_type="form", secret=SECRET)
    await pipeline.kafka.put_webhooks([hook], pipeline.worker)
    await send_event(pipeline, input_event("contact adding", account))

    [request] = await receiver.wait_for("/form")
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    Webhook(SECRET).verify(request.body, request.headers, json_parse=False)
    assert parse_qsl(request.body.decode()) == [
        ("event", "contact adding"),
        ("email", "[email protected]"),
        ("phone", "80123456789"),
        ("groups_names", "test_group_0"),
        ("groups_names", "test_group_1"),
        ("groups_ids", "0"),
        ("groups_ids", "1"),
    ]


async def test_get_sends_the_payload_as_a_signed_query(
    pipeline: Pipeline, receiver: Receiver
) -> None:
    account = unique("acct_")
    hook = webhook(account, receiver.url("/get?fixed=1"), method="GET", secret=SECRET)
    await pipeline.kafka.put_webhooks([hook], pipeline.worker)
    await send_event(pipeline, input_event("mailing group subscribe", account))

    [request] = await receiver.wait_for("/get")
    assert request.method == "GET"
    assert request.body == b""
    pairs = parse_qsl(request.query_string)
    assert pairs[0] == ("fixed", "1")
    assert dict(pairs[1:]) == {
        k: str(v) for k, v in expected_payload("mailing group subscribe").items()
    }
    Webhook(SECRET).verify(request.query_string, request.headers, json_parse=False)


async def test_basic_auth(pipeline: Pipeline, receiver: Receiver) -> None:
    account = unique("acct_")
    auth = {"type": "basic", "username": "crm", "password": "s3cret-pass"}
    await pipeline.kafka.put_webhooks(
        [webhook(account, receiver.url("/auth"), auth=auth)], pipeline.worker
    )
    await send_event(pipeline, input_event("message sent", account))

    [request] = await receiver.wait_for("/auth")
    expected = "Basic " + base64.b64encode(b"crm:s3cret-pass").decode()
    assert request.headers["Authorization"] == expected


async def test_custom_payload_mapping(pipeline: Pipeline, receiver: Receiver) -> None:
    account = unique("acct_")
    mappings = [
        {"field": "email", "path": "contact.ecom_email"},
        {"field": "campaign_name", "path": "campaign_name"},
        {"field": "source", "value": "webhook"},
        {"field": "missing", "path": "contact.no_such_key"},
    ]
    await pipeline.kafka.put_webhooks(
        [webhook(account, receiver.url("/custom"), custom_payload=mappings)], pipeline.worker
    )
    await send_event(
        pipeline, input_event("contact subscribes", account, campaign_name="Summer Promotion")
    )

    [request] = await receiver.wait_for("/custom")
    assert orjson.loads(request.body) == {
        "email": "test@gmail.com",
        "campaign_name": "Summer Promotion",
        "source": "webhook",
        "missing": None,
    }


async def test_per_event_url_overrides_the_default(pipeline: Pipeline, receiver: Receiver) -> None:
    account = unique("acct_")
    hook = webhook(
        account, receiver.url("/default"), event_urls={"delivery bounce": receiver.url("/bounces")}
    )
    await pipeline.kafka.put_webhooks([hook], pipeline.worker)
    await send_event(pipeline, input_event("delivery bounce", account))
    await send_event(pipeline, input_event("message sent", account))

    [bounce] = await receiver.wait_for("/bounces")
    [sent] = await receiver.wait_for("/default")
    assert bounce.json()["event"] == "delivery bounce"
    assert sent.json()["event"] == "message sent"


async def test_subscription_campaign_scope_and_inactive_decide_the_jobs(
    pipeline: Pipeline, receiver: Receiver
) -> None:
    account = unique("acct_")
    hooks = {
        "all": webhook(account, receiver.url("/scope/all")),
        "campaign": webhook(account, receiver.url("/scope/campaign"), campaign_id="c-42"),
        "other_campaign": webhook(account, receiver.url("/scope/other"), campaign_id="c-7"),
        "opens_only": webhook(account, receiver.url("/scope/opens"), events=["message open"]),
        "inactive": webhook(account, receiver.url("/scope/inactive"), active=False),
    }
    await pipeline.kafka.put_webhooks(list(hooks.values()), pipeline.worker)
    event_id = unique("evt_")
    await send_event(
        pipeline, input_event("message sent", account, event_id=event_id, campaign_id="c-42")
    )

    await receiver.wait_for("/scope/all")
    await receiver.wait_for("/scope/campaign")
    # All jobs of an event are decided at once and sent together; once the chosen ones are in
    # the attempt log, a wrongly chosen one would have been attempted too.
    ids = {h["id"] for h in hooks.values()}
    attempted = await pipeline.kafka.read(
        pipeline.catalog.attempts, lambda v: v["webhook_id"] in ids, count=2
    )
    assert {a["webhook_id"] for a in attempted} == {hooks["all"]["id"], hooks["campaign"]["id"]}
    assert sorted(r.path for r in receiver.requests) == ["/scope/all", "/scope/campaign"]


async def test_flaky_endpoint_is_delivered_on_the_third_try_with_one_webhook_id(
    pipeline: Pipeline, receiver: Receiver
) -> None:
    account = unique("acct_")
    receiver.script("/flaky", [500, 500, 200])
    hook = webhook(account, receiver.url("/flaky"), secret=SECRET)
    await pipeline.kafka.put_webhooks([hook], pipeline.worker)
    await send_event(pipeline, input_event("message open", account))

    requests = await receiver.wait_for("/flaky", count=3)
    assert len({r.headers["webhook-id"] for r in requests}) == 1
    assert [r.headers["x-hookstream-attempt"] for r in requests] == ["1", "2", "3"]
    for request in requests:
        Webhook(SECRET).verify(request.body, request.headers, json_parse=False)
    attempts = await pipeline.kafka.read(
        pipeline.catalog.attempts, lambda v: v["webhook_id"] == hook["id"], count=3
    )
    outcomes = sorted(
        (a["result"]["attempt"], a["result"]["status"], a["outcome"]) for a in attempts
    )
    assert outcomes == [(1, 500, "retry"), (2, 500, "retry"), (3, 200, "delivered")]


async def test_dead_endpoint_goes_to_the_failure_topic_after_all_tiers(
    pipeline: Pipeline, receiver: Receiver
) -> None:
    account = unique("acct_")
    tiers = len(pipeline.settings.retry_delays)
    receiver.script("/dead", [503] * 100)
    hook = webhook(account, receiver.url("/dead"))
    await pipeline.kafka.put_webhooks([hook], pipeline.worker)
    await send_event(pipeline, input_event("complaint", account, event_id=unique("evt_")))

    [letter] = await pipeline.kafka.read(
        pipeline.catalog.deliveries_failed, lambda v: v["job"]["webhook_id"] == hook["id"]
    )
    assert [h["status"] for h in letter["history"]] == [503] * (1 + tiers)
    assert letter["reason"].startswith(f"gave up after {1 + tiers} attempts")
    assert letter["job"]["payload"] == expected_payload("complaint")
    assert len(receiver.at("/dead")) == 1 + tiers
    attempts = await pipeline.kafka.read(
        pipeline.catalog.attempts, lambda v: v["webhook_id"] == hook["id"], count=1 + tiers
    )
    assert sorted(a["outcome"] for a in attempts) == ["failed"] + ["retry"] * tiers
    said = f"dead letter: delivery {letter['job']['delivery_id']} of webhook {hook['id']}"
    await wait_until(lambda: said in pipeline.worker.log(), 10, "the dead letter in the log")


async def test_connection_refused_is_retried_then_dead_lettered_with_the_error(
    pipeline: Pipeline,
) -> None:
    from app.kafka.brokers.net import free_port

    account = unique("acct_")
    hook = webhook(account, f"http://127.0.0.1:{free_port()}/nobody")
    await pipeline.kafka.put_webhooks([hook], pipeline.worker)
    await send_event(pipeline, input_event("message sent", account))

    [letter] = await pipeline.kafka.read(
        pipeline.catalog.deliveries_failed, lambda v: v["job"]["webhook_id"] == hook["id"]
    )
    assert all(
        h["status"] is None and h["error"].startswith("connection") for h in letter["history"]
    )


@pytest.mark.parametrize(
    ("family", "raw", "reason"),
    [
        ("messages", b"{not json", "value is not JSON"),
        ("messages", b"[1, 2]", "event must be a JSON object"),
        ("messages", b'{"event": "message exploded", "account_id": "a"}', "unknown event name"),
        ("messages", b'{"event": "message sent", "account_id": "a"}', "message_id: Field required"),
        (
            "messages",
            b'{"event":"message sent","account_id":"a","message_id":"4","message_uid":"u",'
            b'"sending_type":"s","name":"n","from":"f","to":"t"}',
            "message_id: Input should be a valid integer",
        ),
        ("contacts", b'{"event": "message sent", "account_id": "a"}', "belongs on events.messages"),
        (
            "contacts",
            b'{"event":"contact subscribes","account_id":"a","contact":{}}',
            "contact.msisdn",
        ),
    ],
)
async def test_invalid_events_go_to_events_invalid_and_the_pipeline_keeps_going(
    pipeline: Pipeline, receiver: Receiver, family: str, raw: bytes, reason: str
) -> None:
    marker = unique("bad-")
    topic = pipeline.catalog.name(f"events.{family}")
    await pipeline.kafka.send(topic, raw, key=marker.encode())

    [invalid] = await pipeline.kafka.read(
        pipeline.catalog.events_invalid, lambda v: v["key"] == marker
    )
    assert reason in invalid["error"]
    assert invalid["topic"] == topic and invalid["stage"] == "ingest"
    assert base64.b64decode(invalid["value_base64"]) == raw

    account = unique("acct_")
    await pipeline.kafka.put_webhooks([webhook(account, receiver.url("/after"))], pipeline.worker)
    await send_event(pipeline, input_event("message sent", account))
    await receiver.wait_for("/after")


@pytest.mark.parametrize(
    ("config", "reason"),
    [
        ({"url": "ftp://127.0.0.1/x"}, "URL scheme must be http or https"),
        (
            {"method": "GET", "auth": {"type": "basic", "username": "u", "password": "s3cret"}},
            "POST only",
        ),
        ({"secret": "not-a-secret-s3cret"}, "secret must start with 'whsec_'"),
        ({"events": ["message exploded"]}, "unknown event name"),
        ({"custom_payload": [{"field": "x", "path": "a..b"}]}, "empty segment"),
        ({"content_type": "xml"}, "content_type"),
    ],
)
async def test_invalid_configs_go_to_events_invalid_without_stopping_the_agent(
    pipeline: Pipeline, receiver: Receiver, config: dict[str, Any], reason: str
) -> None:
    account = unique("acct_")
    # Every bad config carries secrets; none may reach events.invalid, raw value included.
    bad = {**webhook(account, receiver.url("/never"), secret=SECRET), **config}
    await pipeline.kafka.send_json(pipeline.catalog.webhooks, bad, key=bad["id"])

    [invalid] = await pipeline.kafka.read(
        pipeline.catalog.events_invalid, lambda v: v["key"] == bad["id"]
    )
    assert reason in invalid["error"] and invalid["stage"] == "webhooks"
    recorded = invalid["error"] + base64.b64decode(invalid["value_base64"]).decode()
    for secret in ("s3cret", SECRET, SECRET.removeprefix("whsec_")):
        assert secret not in recorded
    assert "***" in recorded  # the secrets were masked, not the record dropped

    good = webhook(account, receiver.url("/good"))
    await pipeline.kafka.put_webhooks([good], pipeline.worker)
    await send_event(pipeline, input_event("message sent", account))
    await receiver.wait_for("/good")
    assert receiver.at("/never") == []


async def test_key_mismatch_and_non_json_configs_are_reported(pipeline: Pipeline) -> None:
    hook_id = unique("wh_")
    other = webhook(unique("acct_"), "http://127.0.0.1:9/x")
    await pipeline.kafka.send_json(pipeline.catalog.webhooks, other, key=hook_id)
    garbage_key = unique("wh_")
    await pipeline.kafka.send(pipeline.catalog.webhooks, b"\xff\xfe not json", garbage_key.encode())

    [mismatch] = await pipeline.kafka.read(
        pipeline.catalog.events_invalid, lambda v: v["key"] == hook_id
    )
    assert "does not match webhook id" in mismatch["error"]
    [garbage] = await pipeline.kafka.read(
        pipeline.catalog.events_invalid, lambda v: v["key"] == garbage_key
    )
    assert "not JSON" in garbage["error"]


async def test_a_deleted_webhook_stops_receiving(pipeline: Pipeline, receiver: Receiver) -> None:
    account = unique("acct_")
    gone, kept = webhook(account, receiver.url("/gone")), webhook(account, receiver.url("/kept"))
    await pipeline.kafka.put_webhooks([gone, kept], pipeline.worker)
    meta = await pipeline.kafka.send(pipeline.catalog.webhooks, None, gone["id"].encode())
    await pipeline.worker.wait_applied({meta.partition: meta.offset})
    await send_event(pipeline, input_event("message sent", account))

    await receiver.wait_for("/kept")
    attempted = await pipeline.kafka.read(
        pipeline.catalog.attempts, lambda v: v["webhook_id"] in (gone["id"], kept["id"])
    )
    assert [a["webhook_id"] for a in attempted] == [kept["id"]]
    assert receiver.at("/gone") == []


async def test_response_bodies_are_logged_only_when_asked_and_capped_at_16_kib(
    pipeline: Pipeline, receiver: Receiver
) -> None:
    account = unique("acct_")
    receiver.bodies["/big"] = b"x" * 40_000
    logged = webhook(account, receiver.url("/big"), log_response_body=True)
    quiet = webhook(account, receiver.url("/quiet"))
    await pipeline.kafka.put_webhooks([logged, quiet], pipeline.worker)
    await send_event(pipeline, input_event("message sent", account))

    [big] = await pipeline.kafka.read(
        pipeline.catalog.attempts, lambda v: v["webhook_id"] == logged["id"]
    )
    assert big["response_body"] == "x" * 16 * 1024
    [small] = await pipeline.kafka.read(
        pipeline.catalog.attempts, lambda v: v["webhook_id"] == quiet["id"]
    )
    assert small["response_body"] is None and small["result"]["status"] == 200


async def test_410_gone_disables_the_webhook_and_dead_letters_the_job(
    pipeline: Pipeline, receiver: Receiver
) -> None:
    account = unique("acct_")
    receiver.script("/gone410", [410])
    hook = webhook(account, receiver.url("/gone410"))
    await pipeline.kafka.put_webhooks([hook], pipeline.worker)
    await send_event(pipeline, input_event("message sent", account))

    [letter] = await pipeline.kafka.read(
        pipeline.catalog.deliveries_failed, lambda v: v["job"]["webhook_id"] == hook["id"]
    )
    assert "410 Gone" in letter["reason"] and len(letter["history"]) == 1
    [disabled] = await pipeline.kafka.read(
        pipeline.catalog.webhooks,
        lambda v: v.get("id") == hook["id"] and v.get("active") is False,
    )
    assert "410 Gone" in disabled["disabled_reason"]
    [attempt] = await pipeline.kafka.read(
        pipeline.catalog.attempts, lambda v: v["webhook_id"] == hook["id"]
    )
    assert attempt["result"]["status"] == 410 and attempt["outcome"] == "failed"
    assert len(receiver.at("/gone410")) == 1


async def test_a_rate_limited_webhook_gets_a_burst_smoothed_not_failed(
    pipeline: Pipeline, receiver: Receiver
) -> None:
    account = unique("acct_")
    rate = 5.0
    hook = webhook(account, receiver.url("/paced"), rate_limit_per_second=rate)
    await pipeline.kafka.put_webhooks([hook], pipeline.worker)
    events = 15
    await pipeline.kafka.send_json_many(
        pipeline.catalog.events_messages,
        [(account, input_event("message sent", account, event_id=f"p{n}")) for n in range(events)],
    )
    requests = await receiver.wait_for("/paced", count=events, timeout=60)
    assert len({r.headers["webhook-id"] for r in requests}) == events  # none lost, none twice
    times = sorted(r.at for r in requests)
    # Start slots are 1/rate apart; arrival jitter is far below half a slot.
    assert min(b - a for a, b in pairwise(times)) >= 0.5 / rate
    delivered = await pipeline.kafka.read(
        pipeline.catalog.attempts,
        lambda v: v["webhook_id"] == hook["id"] and v["outcome"] == "delivered",
        count=events,
    )
    assert {a["result"]["attempt"] for a in delivered} == {1}  # waiting spent no try
    # The jobs whose slot was more than a second away were parked, each exactly once, until
    # its own slot (re-parking them made a burst's parked records grow with its square).
    settings = Settings(broker=f"kafka://{pipeline.kafka.broker}")
    parked = (
        await scan_topic(
            settings,
            pipeline.catalog.deliveries_parked,
            lambda _k, v: d if (d := orjson.loads(v))["job"]["webhook_id"] == hook["id"] else None,
            100_000,
        )
    ).items
    ids = [p["job"]["delivery_id"] for p in parked]
    assert 1 <= len(ids) < events and len(set(ids)) == len(ids)
    assert {p["reason"] for p in parked} == {"rate limit"}
    logged = (
        await scan_topic(
            settings,
            pipeline.catalog.attempts,
            lambda _k, v: d if (d := orjson.loads(v))["webhook_id"] == hook["id"] else None,
            100_000,
        )
    ).items
    skips = [a for a in logged if a["outcome"] == "parked"]
    assert len(skips) == len(ids) and all(a["result"]["skipped"] for a in skips)


async def test_an_invalid_update_leaves_the_previous_version_of_a_webhook_in_force(
    pipeline: Pipeline, receiver: Receiver
) -> None:
    account = unique("acct_")
    hook = webhook(account, receiver.url("/kept-v1"))
    await pipeline.kafka.put_webhooks([hook], pipeline.worker)
    broken = {**hook, "url": receiver.url("/broken-v2"), "method": "GET"}
    broken["auth"] = {"type": "basic", "username": "u", "password": "p"}  # GET + basic: invalid
    meta = await pipeline.kafka.send_json(pipeline.catalog.webhooks, broken, key=hook["id"])
    await pipeline.worker.wait_applied({meta.partition: meta.offset})  # read, and skipped
    [invalid] = await pipeline.kafka.read(
        pipeline.catalog.events_invalid, lambda v: v["key"] == hook["id"]
    )
    assert "POST only" in invalid["error"]
    await send_event(pipeline, input_event("message sent", account))
    await receiver.wait_for("/kept-v1")
    assert receiver.at("/broken-v2") == []


async def test_the_admin_api_refuses_every_request_while_no_token_is_configured(
    pipeline: Pipeline,
) -> None:
    import aiohttp

    base = f"http://127.0.0.1:{pipeline.worker.web_port}"
    async with aiohttp.ClientSession() as session:
        for method, path in [("GET", "/api/webhooks?account_id=a"), ("POST", "/api/webhooks")]:
            headers = {"Authorization": "Bearer guess"}
            async with session.request(method, base + path, json={}, headers=headers) as answer:
                assert answer.status == 403
                assert "HOOKSTREAM_ADMIN_TOKEN" in (await answer.json())["error"]


async def test_a_log_scan_cut_short_by_its_deadline_says_so(pipeline: Pipeline) -> None:
    settings = Settings(broker=f"kafka://{pipeline.kafka.broker}")
    complete = await scan_topic(settings, pipeline.catalog.attempts, lambda _k, v: v, 100_000)
    assert complete.items and not complete.truncated
    cut = await scan_topic(
        settings, pipeline.catalog.attempts, lambda _k, v: v, 100_000, timeout=0.0
    )
    assert cut.truncated and len(cut.items) < len(complete.items)
