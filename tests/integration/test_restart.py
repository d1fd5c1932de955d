"""Restarts: the config view is complete after a SIGKILL, and deliveries survive a kill mid-flight.

The embedded broker reports a partition's end offset as the first offset of its last batch + 1,
which can make Faust table recovery stop short; the config view's barrier load must not.
"""

from __future__ import annotations

from collections import Counter

import pytest

from tests.integration.conftest import Pipeline
from tests.integration.harness import Receiver, unique, wait_until
from tests.seed_bodies import input_event

pytestmark = pytest.mark.slow

WEBHOOKS = 500


async def test_500_webhooks_made_in_one_burst_all_deliver_after_sigkill_and_restart(
    fresh_pipeline: Pipeline, receiver: Receiver
) -> None:
    pipeline = fresh_pipeline
    worker, kafka = pipeline.worker, pipeline.kafka
    tag = unique("")
    hooks = [
        {"id": f"wh_{tag}_{i}", "account_id": f"acct_{tag}_{i}", "url": receiver.url(f"/r/{i}")}
        for i in range(WEBHOOKS)
    ]
    await kafka.put_webhooks(hooks, worker)  # one burst: the producer batches them

    worker.kill()
    # Events wait in the topic, so they are joined the moment the restarted view is ready.
    await kafka.send_json_many(
        pipeline.catalog.events_messages,
        [
            (
                h["account_id"],
                input_event("message sent", h["account_id"], event_id=f"evt_{h['id']}"),
            )
            for h in hooks
        ],
    )
    worker.start()
    health = await worker.wait_ready()
    assert health["webhooks_at_ready"] == WEBHOOKS
    await wait_until(
        lambda: len(receiver.ids) == WEBHOOKS,
        120,
        f"deliveries to all {WEBHOOKS} webhooks",
    )


async def test_a_worker_killed_mid_delivery_loses_nothing_and_duplicates_keep_their_id(
    fresh_pipeline: Pipeline, receiver: Receiver
) -> None:
    pipeline = fresh_pipeline
    worker, kafka = pipeline.worker, pipeline.kafka
    account = unique("acct_")
    hooks = [
        {"id": unique("wh_"), "account_id": account, "url": receiver.url(f"/k/{i}")}
        for i in range(3)
    ]
    await kafka.put_webhooks(hooks, worker)
    events = 600
    await kafka.send_json_many(
        pipeline.catalog.events_messages,
        [
            (f"{n}", input_event("message open", account, event_id=f"evt_{n}"))
            for n in range(events)
        ],
    )
    await wait_until(lambda: len(receiver.requests) >= 200, 60, "deliveries under way")
    worker.kill()
    worker.start()
    await worker.wait_ready()

    expected = events * len(hooks)
    await wait_until(
        lambda: len(receiver.pairs) >= expected,
        120,
        f"all {expected} (event, webhook) pairs",
    )
    pairs = receiver.pairs
    assert len(pairs) == expected
    per_path = Counter(path for path, _ in pairs)
    assert per_path == {f"/k/{i}": events for i in range(len(hooks))}
