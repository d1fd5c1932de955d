"""Ordered delivery per key and batched delivery, on a real broker and loopback receivers.

Ordering is checked on first arrivals (duplicates after a crash carry their delivery id and
are dropped by any receiver that deduplicates); batching on request counts, bodies and
signatures. Orders and counts, never timings.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from standardwebhooks import Webhook

from tests.integration.conftest import Pipeline, make_pipeline, started_pipeline, with_own_client
from tests.integration.harness import Received, Receiver, WorkerProcess, unique, wait_until
from tests.seed_bodies import input_event

pytestmark = pytest.mark.slow

SECRET = "whsec_" + base64.b64encode(b"ordering-and-batching-test-key!!").decode()
TOKEN = "ordering-admin-token"
KEYS, PER_KEY = 50, 20
#: Once the clean keys are done, only the failing events' tries are sent, one failing round
#: after another: the endpoint's circuit opens (as it should), and the default 30 s cooldown
#: would only make the suite wait.
SHORT_COOLDOWN = {"HOOKSTREAM_CIRCUIT_COOLDOWN": "2"}
#: Keys whose 6th event fails its first two tries.
FAILING = {f"key{k}" for k in range(0, 50, 5)}


@pytest.fixture(scope="module")
def worker_of_module(broker: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    with started_pipeline(
        broker,
        tmp_path_factory.mktemp("ordering"),
        HOOKSTREAM_RETRY_DELAYS="3,3,3",
        **SHORT_COOLDOWN,
        HOOKSTREAM_RETRY_JITTER="0",
        HOOKSTREAM_ADMIN_TOKEN=TOKEN,
    ) as pipeline:
        yield pipeline


@pytest.fixture
async def ordering(worker_of_module: Pipeline) -> AsyncIterator[Pipeline]:
    async with with_own_client(worker_of_module) as own:
        yield own


def _ordered_events(account: str, tag: str) -> list[tuple[str, dict[str, Any]]]:
    """KEYS x PER_KEY events, interleaved across keys; each key's in production order."""
    return [
        (
            f"key{k}",
            input_event(
                "message sent", account, event_id=f"{tag}-{k}-{n}", message_uid=f"key{k}:{n}"
            ),
        )
        for n in range(PER_KEY)
        for k in range(KEYS)
    ]


def _fail_sixth_events(receiver: Receiver, path: str) -> None:
    receiver.fail_events[path] = {f"{key}:5": 2 for key in FAILING}


def _first_arrivals(requests: list[Received]) -> dict[str, list[int]]:
    """Per key, the event numbers in the order each first succeeded (duplicates dropped)."""
    seen: set[str] = set()
    per_key: dict[str, list[int]] = {}
    for request in requests:
        delivery = request.headers["webhook-id"]
        if delivery in seen:
            continue
        seen.add(delivery)
        key, _, n = request.json()["message_uid"].partition(":")
        per_key.setdefault(key, []).append(int(n))
    return per_key


async def _wait_all_delivered(receiver: Receiver, path: str, what: str) -> None:
    """Wait until every ordered event succeeded once at ``path``; on a timeout, say which not."""
    try:
        await wait_until(
            lambda: (
                len({r.headers["webhook-id"] for r in receiver.succeeded if r.path == path})
                >= KEYS * PER_KEY
            ),
            120,
            what,
        )
    except AssertionError as exc:
        got = {r.json()["message_uid"] for r in receiver.succeeded if r.path == path}
        every = [f"key{k}:{n}" for k in range(KEYS) for n in range(PER_KEY)]
        missing = [uid for uid in every if uid not in got]
        raise AssertionError(f"{exc}; {len(missing)} never succeeded: {missing[:30]}") from None


def _assert_in_order(receiver: Receiver, path: str) -> None:
    successes = [r for r in receiver.succeeded if r.path == path]
    per_key = _first_arrivals(successes)
    assert set(per_key) == {f"key{k}" for k in range(KEYS)}
    for key, numbers in per_key.items():
        assert numbers == list(range(PER_KEY)), f"{key} arrived as {numbers}"


async def test_each_key_arrives_in_production_order_and_failures_hold_only_their_key(
    ordering: Pipeline, receiver: Receiver
) -> None:
    account = unique("acct_")
    hook = {
        "id": unique("wh_ord_"),
        "account_id": account,
        "url": receiver.url("/ord"),
        "ordering": "key",
    }
    _fail_sixth_events(receiver, "/ord")
    await ordering.kafka.put_webhooks([hook], ordering.worker)
    await ordering.kafka.send_json_many(
        ordering.catalog.events_messages, _ordered_events(account, "a")
    )
    await _wait_all_delivered(receiver, "/ord", "every ordered event delivered")
    _assert_in_order(receiver, "/ord")
    # A failed event held the later events of its key through its two retries...
    markers = [r.json()["message_uid"] for r in receiver.at("/ord")]
    retries = []
    for key in FAILING:
        tries = [i for i, m in enumerate(markers) if m == f"{key}:5"]
        later = [i for i, m in enumerate(markers) if m == f"{key}:6"]
        assert len(tries) == 3 and later[0] > tries[-1]
        retries.append(tries[1])
    first_retry = min(retries)
    # ...and no other key: every clean key was done before the first retry was sent.
    clean_last = max(i for i, m in enumerate(markers) if m.split(":")[0] not in FAILING)
    assert clean_last < first_retry


async def test_a_dead_lettered_event_lets_its_key_go_on_and_says_so(
    ordering: Pipeline, receiver: Receiver
) -> None:
    account = unique("acct_")
    hook = {
        "id": unique("wh_ordd_"),
        "account_id": account,
        "url": receiver.url("/ordd"),
        "ordering": "key",
        "max_retries": 0,
    }
    receiver.fail_events["/ordd"] = {"k:1": 1}
    await ordering.kafka.put_webhooks([hook], ordering.worker)
    await ordering.kafka.send_json_many(
        ordering.catalog.events_messages,
        [
            ("k", input_event("message sent", account, event_id=f"d{n}", message_uid=f"k:{n}"))
            for n in range(4)
        ],
    )
    [letter] = await ordering.kafka.read(
        ordering.catalog.deliveries_failed, lambda v: v["job"]["webhook_id"] == hook["id"]
    )
    assert letter["order_continued"] is True and letter["job"]["ordering_key"] == "k"
    await wait_until(
        lambda: len([r for r in receiver.succeeded if r.path == "/ordd"]) >= 3, 30, "the rest"
    )
    assert [r.json()["message_uid"] for r in receiver.succeeded if r.path == "/ordd"] == [
        "k:0",
        "k:2",
        "k:3",
    ]


async def test_order_holds_through_a_sigkill_of_the_worker(
    broker: str, tmp_path: Path, receiver: Receiver
) -> None:
    with started_pipeline(
        broker, tmp_path, HOOKSTREAM_RETRY_DELAYS="2,2,2", **SHORT_COOLDOWN
    ) as pipeline:
        worker = pipeline.worker
        await worker.wait_ready()
        account = unique("acct_")
        hook = {
            "id": unique("wh_ok_"),
            "account_id": account,
            "url": receiver.url("/ordk"),
            "ordering": "key",
        }
        _fail_sixth_events(receiver, "/ordk")
        receiver.delays["/ordk"] = 0.01
        await pipeline.kafka.put_webhooks([hook], worker)
        await pipeline.kafka.send_json_many(
            pipeline.catalog.events_messages, _ordered_events(account, "k")
        )
        await wait_until(lambda: len(receiver.succeeded) >= 300, 60, "deliveries under way")
        worker.kill()
        worker.start()
        await worker.wait_ready()
        await _wait_all_delivered(
            receiver, "/ordk", "every ordered event delivered after the restart"
        )
        _assert_in_order(receiver, "/ordk")
        await pipeline.kafka.close()


async def test_order_holds_across_two_workers_and_a_rebalance(
    broker: str, tmp_path: Path, receiver: Receiver
) -> None:
    pipeline = make_pipeline(broker, tmp_path, HOOKSTREAM_RETRY_DELAYS="2,2,2", **SHORT_COOLDOWN)
    second = WorkerProcess(
        env={**pipeline.worker.env, "HOOKSTREAM_DATA_DIR": str(tmp_path / "d2")},
        log_path=tmp_path / "worker2.log",
    )
    pipeline.worker.start()
    try:
        await pipeline.worker.wait_ready()
        account = unique("acct_")
        hook = {
            "id": unique("wh_or_"),
            "account_id": account,
            "url": receiver.url("/ordr"),
            "ordering": "key",
        }
        _fail_sixth_events(receiver, "/ordr")
        receiver.delays["/ordr"] = 0.01
        await pipeline.kafka.put_webhooks([hook], pipeline.worker)
        await pipeline.kafka.send_json_many(
            pipeline.catalog.events_messages, _ordered_events(account, "r")
        )
        await wait_until(lambda: len(receiver.succeeded) >= 200, 60, "deliveries under way")
        second.start()  # the group rebalances: some partitions move to the new worker
        await second.wait_ready()
        await _wait_all_delivered(
            receiver, "/ordr", "every ordered event delivered across the rebalance"
        )
        _assert_in_order(receiver, "/ordr")
    finally:
        second.stop()
        pipeline.worker.stop()
        await pipeline.kafka.close()


# -- batching -------------------------------------------------------------------------------
def _batch_hook(account: str, receiver: Receiver, path: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": unique("wh_bat_"),
        "account_id": account,
        "url": receiver.url(path),
        "secret": SECRET,
        "batch": {"max_events": 100, "max_wait_ms": 200},
        **extra,
    }


async def test_ten_thousand_events_arrive_in_about_a_hundred_signed_ordered_batches(
    ordering: Pipeline, receiver: Receiver
) -> None:
    account = unique("acct_")
    hook = _batch_hook(account, receiver, "/batched")
    receiver.script("/batched", [500])  # the first batch fails once
    await ordering.kafka.put_webhooks([hook], ordering.worker)
    events = 10_000
    await ordering.kafka.send_json_many(
        ordering.catalog.events_messages,
        [
            ("one-key", input_event("message sent", account, event_id=f"b{n}", message_id=n))
            for n in range(events)
        ],
    )

    def delivered() -> list[int]:
        return [
            item["message_id"]
            for r in receiver.succeeded
            if r.path == "/batched"
            for item in r.json()
        ]

    await wait_until(lambda: len(delivered()) >= events, 120, "every event in a batch")
    requests = receiver.at("/batched")
    assert len(requests) <= 112  # ~100 batches of 100, one retried, a few short ones
    assert sorted(delivered()) == list(range(events))  # every event exactly once
    verifier = Webhook(SECRET)
    for request in requests:
        items = verifier.verify(request.body, request.headers)  # over the whole body
        assert isinstance(items, list) and 1 <= len(items) <= 100
        numbers = [item["message_id"] for item in items]
        assert numbers == sorted(numbers)  # in order within the batch
        assert request.headers["x-hookstream-batch-size"] == str(len(items))
    first, *rest = requests
    [retried] = [r for r in rest if r.headers["webhook-id"] == first.headers["webhook-id"]]
    assert retried.body == first.body  # the whole batch again, with the same webhook-id
    attempts = await ordering.kafka.read(
        ordering.catalog.attempts,
        lambda v: v["webhook_id"] == hook["id"] and v["outcome"] == "delivered",
        count=len(requests) - 1,
    )
    assert sum(len(a["members"]) for a in attempts) == events  # one record per batch


async def test_a_dead_lettered_batch_replays_its_members(
    ordering: Pipeline, receiver: Receiver
) -> None:
    account = unique("acct_")
    hook = _batch_hook(account, receiver, "/batch-dead", max_retries=0)
    receiver.script("/batch-dead", [500])
    await ordering.kafka.put_webhooks([hook], ordering.worker)
    await ordering.kafka.send_json_many(
        ordering.catalog.events_messages,
        [
            ("k", input_event("message sent", account, event_id=f"x{n}", message_id=n))
            for n in range(30)
        ],
    )
    [letter] = await ordering.kafka.read(
        ordering.catalog.deliveries_failed, lambda v: v["job"]["webhook_id"] == hook["id"]
    )
    assert len(letter["job"]["members"]) == 30 and letter["job"]["delivery_id"].startswith("bat_")
    base = f"http://127.0.0.1:{ordering.worker.web_port}/api/failed/replay"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(base, json={"webhook_id": hook["id"]}, headers=headers) as response,
    ):
        assert response.status == 200, await response.text()
    await wait_until(
        lambda: sum(len(r.json()) for r in receiver.succeeded if r.path == "/batch-dead") >= 30,
        60,
        "the replayed members",
    )
    replayed = [
        i["message_id"] for r in receiver.succeeded if r.path == "/batch-dead" for i in r.json()
    ]
    assert sorted(replayed) == list(range(30))


async def test_ordered_batches_keep_each_key_in_order_inside_and_across_batches(
    ordering: Pipeline, receiver: Receiver
) -> None:
    account = unique("acct_")
    hook = _batch_hook(account, receiver, "/ordbat", ordering="key")
    _fail_sixth_events(receiver, "/ordbat")  # a batch with a failing first item fails whole
    await ordering.kafka.put_webhooks([hook], ordering.worker)
    await ordering.kafka.send_json_many(
        ordering.catalog.events_messages, _ordered_events(account, "ob")
    )

    def items() -> list[dict[str, Any]]:
        return [i for r in receiver.succeeded if r.path == "/ordbat" for i in orjson.loads(r.body)]

    await wait_until(lambda: len({i["message_uid"] for i in items()}) >= KEYS * PER_KEY, 120, "all")
    seen: set[str] = set()
    per_key: dict[str, list[int]] = {}
    for item in items():
        if item["message_uid"] in seen:
            continue
        seen.add(item["message_uid"])
        key, _, n = item["message_uid"].partition(":")
        per_key.setdefault(key, []).append(int(n))
    assert all(numbers == list(range(PER_KEY)) for numbers in per_key.values()), per_key
