"""The retry policy on a real worker: a 4xx is not retried when the setting says so, a 429's
Retry-After is honoured (within the tier range), per-webhook max_retries and timeout_seconds
apply, and a pending retry whose webhook was deleted or paused becomes a dead letter."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.conftest import Pipeline, started_pipeline
from tests.integration.harness import Receiver, unique
from tests.seed_bodies import input_event

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def strict_retries(broker: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    with started_pipeline(
        broker,
        tmp_path_factory.mktemp("retries"),
        HOOKSTREAM_RETRY_ALL_NON_2XX="false",
        HOOKSTREAM_RETRY_DELAYS="0.2,3,3",
        HOOKSTREAM_RETRY_JITTER="0",
    ) as pipeline:
        yield pipeline


async def _hook(pipeline: Pipeline, receiver: Receiver, path: str) -> dict[str, str]:
    await pipeline.worker.wait_ready()
    hook = {"id": unique("wh_"), "account_id": unique("acct_"), "url": receiver.url(path)}
    await pipeline.kafka.put_webhooks([hook], pipeline.worker)
    await pipeline.kafka.send_json(
        pipeline.catalog.events_messages,
        input_event("message sent", hook["account_id"]),
        key=hook["account_id"],
    )
    return hook


async def test_a_404_is_not_retried_when_only_retryable_failures_retry(
    strict_retries: Pipeline, receiver: Receiver
) -> None:
    receiver.script("/missing", [404, 200])
    hook = await _hook(strict_retries, receiver, "/missing")
    [letter] = await strict_retries.kafka.read(
        strict_retries.catalog.deliveries_failed, lambda v: v["job"]["webhook_id"] == hook["id"]
    )
    assert letter["reason"] == "HTTP 404 is not retried"
    assert [h["status"] for h in letter["history"]] == [404]
    assert len(receiver.at("/missing")) == 1
    await strict_retries.kafka.close()


@pytest.mark.parametrize(("asked", "waited"), [("2", 2.0), ("100", 3.0)])
async def test_retry_after_on_429_is_honoured_within_the_tier_range(
    strict_retries: Pipeline, receiver: Receiver, asked: str, waited: float
) -> None:
    path = f"/busy{asked}"
    receiver.script(path, [429, 200])
    receiver.headers[path] = {"Retry-After": asked}
    hook = await _hook(strict_retries, receiver, path)
    [retry] = await strict_retries.kafka.read(
        strict_retries.catalog.retry(1), lambda v: v["job"]["webhook_id"] == hook["id"]
    )
    # The first tier waits 0.2 s; the endpoint asked for `asked`, honoured within 0.2..3 s
    # (no jitter here): the retry is due that long after the 429 came back.
    first = retry["history"][0]
    answered = first["at"] + first["duration_ms"] / 1000
    assert waited <= retry["due_at"] - answered <= waited + 0.1
    first_req, second_req = await receiver.wait_for(path, count=2, timeout=30)
    assert second_req.at >= first_req.at + waited - 0.05  # and it was not sent before then
    await strict_retries.kafka.close()


async def test_a_webhook_s_own_max_retries_and_timeout_apply(
    strict_retries: Pipeline, receiver: Receiver
) -> None:
    pipeline = strict_retries
    await pipeline.worker.wait_ready()
    receiver.script("/few", [500] * 10)
    receiver.delays["/sluggish"] = 3.0  # answers 200, but after the webhook's own timeout
    few = {
        "id": unique("wh_"),
        "account_id": unique("acct_"),
        "url": receiver.url("/few"),
        "max_retries": 1,
    }
    sluggish = {
        "id": unique("wh_"),
        "account_id": unique("acct_"),
        "url": receiver.url("/sluggish"),
        "timeout_seconds": 0.3,
        "max_retries": 0,
    }
    await pipeline.kafka.put_webhooks([few, sluggish], pipeline.worker)
    for hook in (few, sluggish):
        await pipeline.kafka.send_json(
            pipeline.catalog.events_messages,
            input_event("message sent", hook["account_id"]),
            key=hook["account_id"],
        )
    letters = await pipeline.kafka.read(
        pipeline.catalog.deliveries_failed,
        lambda v: v["job"]["webhook_id"] in (few["id"], sluggish["id"]),
        count=2,
    )
    by_hook = {x["job"]["webhook_id"]: x for x in letters}
    # max_retries 1: one try + one retry, though the worker has three tiers.
    assert [h["status"] for h in by_hook[few["id"]]["history"]] == [500, 500]
    assert by_hook[few["id"]]["reason"].startswith("gave up after 2 attempts")
    # timeout_seconds 0.3: the worker's 5 s would have waited for the 200 after 3 s.
    [timed_out] = by_hook[sluggish["id"]]["history"]
    assert timed_out["error"].startswith("timeout") and timed_out["status"] is None
    await pipeline.kafka.close()


@pytest.fixture(scope="module")
def slow_tiers(broker: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    with started_pipeline(
        broker,
        tmp_path_factory.mktemp("slow-tiers"),
        HOOKSTREAM_RETRY_DELAYS="3,3,3",
        HOOKSTREAM_RETRY_JITTER="0",
    ) as pipeline:
        yield pipeline


async def test_a_pending_retry_of_a_deleted_or_paused_webhook_becomes_a_dead_letter(
    slow_tiers: Pipeline, receiver: Receiver
) -> None:
    pipeline = slow_tiers
    await pipeline.worker.wait_ready()
    deleted = {"id": unique("wh_"), "account_id": unique("acct_"), "url": receiver.url("/del")}
    paused = {"id": unique("wh_"), "account_id": unique("acct_"), "url": receiver.url("/pau")}
    receiver.script("/del", [500] * 10)
    receiver.script("/pau", [500] * 10)
    await pipeline.kafka.put_webhooks([deleted, paused], pipeline.worker)
    for hook in (deleted, paused):
        await pipeline.kafka.send_json(
            pipeline.catalog.events_messages,
            input_event("message sent", hook["account_id"]),
            key=hook["account_id"],
        )
    await pipeline.kafka.read(  # both jobs wait on tier 1 for 3 s
        pipeline.catalog.retry(1),
        lambda v: v["job"]["webhook_id"] in (deleted["id"], paused["id"]),
        count=2,
    )
    meta = await pipeline.kafka.send(pipeline.catalog.webhooks, None, deleted["id"].encode())
    await pipeline.worker.wait_applied({meta.partition: meta.offset})
    await pipeline.kafka.put_webhooks([{**paused, "active": False}], pipeline.worker)

    letters = await pipeline.kafka.read(
        pipeline.catalog.deliveries_failed,
        lambda v: v["job"]["webhook_id"] in (deleted["id"], paused["id"]),
        count=2,
    )
    reasons = {x["job"]["webhook_id"]: x["reason"] for x in letters}
    assert reasons[deleted["id"]] == f"webhook {deleted['id']} no longer exists"
    assert reasons[paused["id"]] == "webhook is inactive (delivery paused)"
    assert receiver.count("/del", "/pau") == 2  # no retry was sent to either
    await pipeline.kafka.close()
