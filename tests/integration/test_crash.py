"""Crashes and stops under load: SIGKILL loses nothing, SIGTERM finishes what is in flight."""

from __future__ import annotations

import asyncio
import random
import signal
from collections import Counter
from pathlib import Path

import orjson
import pytest

from app.kafka.log_scan import scan_topic
from app.settings import Settings
from tests.integration.conftest import Pipeline, started_pipeline
from tests.integration.harness import Receiver, unique, wait_until
from tests.seed_bodies import input_event

pytestmark = pytest.mark.slow


async def test_20k_events_survive_five_sigkills_at_random_moments(
    fresh_pipeline: Pipeline, receiver: Receiver
) -> None:
    pipeline, worker = fresh_pipeline, fresh_pipeline.worker
    hooks = [
        {"id": unique("wh_"), "account_id": unique("acct_"), "url": receiver.url(f"/kill/{i}")}
        for i in range(4)
    ]
    await pipeline.kafka.put_webhooks(hooks, worker)
    events = 20_000
    await pipeline.kafka.send_json_many(
        pipeline.catalog.events_messages,
        [
            (f"k{n}", input_event("message sent", hooks[n % 4]["account_id"], event_id=f"e{n}"))
            for n in range(events)
        ],
    )

    def pairs() -> set[tuple[str, str]]:
        return receiver.pairs

    rng = random.Random(20_000)  # noqa: S311 - when to kill, not a secret
    for kill in range(5):
        target = len(pairs()) + rng.randint(200, 2_000)
        await wait_until(
            lambda target=target: len(pairs()) >= min(target, events),
            120,
            f"progress before kill {kill}",
        )
        worker.kill()
        worker.start()
        await worker.wait_ready()

    await wait_until(lambda: len(pairs()) >= events, 240, f"all {events} pairs after the kills")
    assert len(pairs()) == events
    # Duplicates are allowed (at least once) but always carry the delivery id of their pair.
    ids_per_path = Counter(path for path, _ in pairs())
    assert ids_per_path == {f"/kill/{i}": events // 4 for i in range(4)}
    # Nothing is stuck on a retry tier or dead-lettered: every pair arrived (above), and no job
    # of these webhooks is on the failure topic.
    ids = {h["id"] for h in hooks}
    settings = Settings(broker=f"kafka://{pipeline.kafka.broker}")
    failed = (
        await scan_topic(
            settings,
            pipeline.catalog.deliveries_failed,
            lambda _k, v: v if orjson.loads(v)["job"]["webhook_id"] in ids else None,
            1_000_000,
        )
    ).items
    assert failed == []


async def test_sigterm_finishes_in_flight_deliveries_so_nothing_is_sent_twice(
    fresh_pipeline: Pipeline, receiver: Receiver
) -> None:
    pipeline, worker = fresh_pipeline, fresh_pipeline.worker
    hooks = [
        {"id": unique("wh_"), "account_id": unique("acct_"), "url": receiver.url(f"/term/{i}")}
        for i in range(5)
    ]
    for i in range(5):
        receiver.delays[f"/term/{i}"] = 0.5  # slow endpoints: many requests are in flight
    await pipeline.kafka.put_webhooks(hooks, worker)
    events = 300
    await pipeline.kafka.send_json_many(
        pipeline.catalog.events_messages,
        [
            (f"k{n}", input_event("message sent", hooks[n % 5]["account_id"], event_id=f"t{n}"))
            for n in range(events)
        ],
    )
    await wait_until(lambda: len(receiver.requests) >= 50, 60, "deliveries in flight")
    assert worker.process is not None
    worker.process.send_signal(signal.SIGTERM)
    # Wait off the event loop: the receiver runs on it and must keep answering meanwhile.
    assert await asyncio.to_thread(worker.process.wait, 60) == 0
    in_flight_at_stop = len(receiver.requests)
    assert in_flight_at_stop < events  # it stopped midway, with work left for the restart

    worker.start()
    await worker.wait_ready()

    def pairs() -> set[tuple[str, str]]:
        return receiver.pairs

    await wait_until(lambda: len(pairs()) >= events, 120, f"all {events} deliveries")
    sent = Counter((r.path, r.headers["webhook-id"]) for r in receiver.requests)
    assert len(sent) == events
    assert max(sent.values()) == 1, "a delivery in flight at SIGTERM was sent again"


async def test_sigterm_while_jobs_wait_on_a_retry_tier_leaves_them_to_the_restart(
    broker: str, tmp_path: Path, receiver: Receiver
) -> None:
    with started_pipeline(
        broker, tmp_path, HOOKSTREAM_RETRY_DELAYS="4,1,1", HOOKSTREAM_RETRY_JITTER="0"
    ) as pipeline:
        worker = pipeline.worker
        await worker.wait_ready()
        hook = {"id": unique("wh_"), "account_id": unique("acct_"), "url": receiver.url("/tier")}
        events = 50
        receiver.script("/tier", [400] * events)  # each first try fails: all wait on tier 1
        await pipeline.kafka.put_webhooks([hook], worker)
        await pipeline.kafka.send_json_many(
            pipeline.catalog.events_messages,
            [
                (
                    hook["account_id"],
                    input_event("message sent", hook["account_id"], event_id=f"r{n}"),
                )
                for n in range(events)
            ],
        )
        await pipeline.kafka.read(
            pipeline.catalog.retry(1), lambda v: v["job"]["webhook_id"] == hook["id"], count=events
        )
        assert worker.process is not None
        worker.process.send_signal(signal.SIGTERM)  # while every job waits out its 4 s
        assert await asyncio.to_thread(worker.process.wait, 60) == 0
        assert receiver.count("/tier") == events  # none was retried before the stop

        worker.start()
        await worker.wait_ready()
        await wait_until(
            lambda: receiver.count("/tier") >= 2 * events, 60, "every waiting job retried"
        )
        per_id = Counter(r.headers["webhook-id"] for r in receiver.at("/tier"))
        assert len(per_id) == events and set(per_id.values()) == {2}  # none lost, none twice
        await pipeline.kafka.close()
