"""The retry policy on a real worker: a 4xx is not retried when the setting says so, and a
429's Retry-After is honoured (within the tier range)."""

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


async def test_retry_after_on_429_is_honoured_within_the_tier_range(
    strict_retries: Pipeline, receiver: Receiver
) -> None:
    receiver.script("/busy", [429, 200])
    receiver.headers["/busy"] = {"Retry-After": "2"}
    await _hook(strict_retries, receiver, "/busy")
    first, second = await receiver.wait_for("/busy", count=2, timeout=30)
    # The first tier waits 0.2 s; the endpoint asked for 2 s, within the 0.2..3 s range.
    assert second.at - first.at >= 1.8
    await strict_retries.kafka.close()
