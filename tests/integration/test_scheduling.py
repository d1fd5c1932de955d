"""Delivery scheduling against real endpoints' behaviour: slow, shedding load, dead, hung.

A slow endpoint is queued, never failed; a skip (busy, circuit open) never spends a try; an
endpoint gets the concurrency it can take; parked jobs survive a SIGKILL. Real broker, real
loopback receivers; orders, counts and ratios measured in the same run, never timings.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from app.flow.join import delivery_id, parse_event
from app.kafka.log_scan import scan_topic
from app.model.events import EventFamily
from app.model.records import SourceRef
from app.settings import Settings
from tests.integration.conftest import Pipeline, started_pipeline, with_own_client
from tests.integration.harness import Receiver, unique, wait_until
from tests.seed_bodies import input_event

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def scheduling_worker(broker: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    with started_pipeline(
        broker,
        tmp_path_factory.mktemp("scheduling"),
        HOOKSTREAM_RETRY_DELAYS="0.5,0.5,0.5",
        HOOKSTREAM_CIRCUIT_COOLDOWN="0.5",
    ) as pipeline:
        yield pipeline


@pytest.fixture
async def scheduling(scheduling_worker: Pipeline) -> AsyncIterator[Pipeline]:
    """The module's worker, with a Kafka client of the test's own (closed after it)."""
    async with with_own_client(scheduling_worker) as own:
        yield own


async def _records(pipeline: Pipeline, topic: str, webhook_ids: set[str]) -> list[dict[str, Any]]:
    """Every record of ``topic`` (to its high watermark) that belongs to these webhooks."""

    def mine(_key: bytes | None, value: bytes) -> dict[str, Any] | None:
        document = orjson.loads(value)
        webhook = document.get("webhook_id") or document.get("job", {}).get("webhook_id")
        return document if webhook in webhook_ids else None

    settings = Settings(broker=f"kafka://{pipeline.kafka.broker}")
    return (await scan_topic(settings, topic, mine, 1_000_000)).items


async def _group_lag(pipeline: Pipeline, topics: list[str]) -> dict[str, int]:
    """Per topic: records after the worker group's committed offsets (its consumer lag)."""
    settings = pipeline.settings
    group = pipeline.worker.env["HOOKSTREAM_APP_ID"]  # the worker's, not the test's default
    consumer = AIOKafkaConsumer(
        bootstrap_servers=pipeline.kafka.broker, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        lag: dict[str, int] = {}
        for topic in topics:
            tps = [TopicPartition(topic, p) for p in range(settings.partitions)]
            ends = await consumer.end_offsets(tps)
            lag[topic] = 0
            for tp in tps:
                lag[topic] += ends[tp] - (await consumer.committed(tp) or 0)
        return lag
    finally:
        await consumer.stop()


async def _never_delivered_events(
    pipeline: Pipeline, webhook_id: str, delivered: set[str]
) -> dict[int, str]:
    """Where the input records of the jobs never delivered are: partition -> offsets."""
    topic = pipeline.catalog.events_messages
    consumer = AIOKafkaConsumer(bootstrap_servers=pipeline.kafka.broker)
    await consumer.start()
    found: dict[int, list[int]] = {}
    try:
        for partition in range(pipeline.settings.partitions):
            tp = TopicPartition(topic, partition)
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                batch = (await consumer.getmany(tp, timeout_ms=500)).get(tp, [])
                if not batch:
                    break
                for record in batch:
                    event, _ = parse_event(record.value, EventFamily.MESSAGES)
                    source = SourceRef(topic=topic, partition=partition, offset=record.offset)
                    if delivery_id(event, webhook_id, source) not in delivered:
                        found.setdefault(partition, []).append(record.offset)
    finally:
        await consumer.stop()
    return {p: f"{len(o)} in {min(o)}..{max(o)}" for p, o in found.items()}


async def _parked_state(pipeline: Pipeline, webhook_id: str, receiver: Receiver) -> str:
    """What a parked-jobs test waits for, when it timed out: what was delivered, what is
    parked (and due when), what the worker holds and counted, the group's lag, its log."""
    delivered = set(receiver.ids.get("/pk", ()))
    settings = Settings(broker=f"kafka://{pipeline.kafka.broker}")
    catalog = pipeline.catalog

    def mine(_key: bytes | None, value: bytes) -> dict[str, Any] | None:
        document = orjson.loads(value)
        return document if document.get("job", {}).get("webhook_id") == webhook_id else None

    scan = await scan_topic(settings, catalog.deliveries_parked, mine, 1_000_000, timeout=60)
    latest: dict[str, dict[str, Any]] = {}
    for record in scan.items:
        latest[record["job"]["delivery_id"]] = record
    undelivered = [r for d, r in latest.items() if d not in delivered]
    now = time.time()
    dues = sorted(round(r["due_at"] - now, 1) for r in undelivered)
    reasons = Counter(r["reason"] for r in undelivered)
    letters = await _records(pipeline, catalog.deliveries_failed, {webhook_id})
    metrics = await pipeline.worker.metrics_text()
    counters = "\n".join(
        line
        for line in metrics.splitlines()
        if line.startswith("hookstream_")
        and "_bucket" not in line
        and "_created" not in line
        and "endpoint_limits" not in line
    )
    lag = await _group_lag(pipeline, [catalog.events_messages, catalog.deliveries_parked])
    never = await _never_delivered_events(pipeline, webhook_id, delivered)
    return (
        f"delivered {len(delivered)}; parked records {len(scan.items)} for {len(latest)} jobs"
        f"{' (scan truncated)' if scan.truncated else ''}, {len(undelivered)} of them never "
        f"delivered, due in s {dues[:5]}..{dues[-5:]}, reasons {dict(reasons)}; dead letters "
        f"{len(letters)}; group lag {lag}; input records never delivered, by partition: "
        f"{never}\n{counters}\n"
        f"--- worker log ---\n{pipeline.worker.log()[-6000:]}"
    )


async def _send(pipeline: Pipeline, account: str, count: int, tag: str, **extra: Any) -> None:
    await pipeline.kafka.send_json_many(
        pipeline.catalog.events_messages,
        [
            (f"{tag}{n}", input_event("message sent", account, event_id=f"{tag}{n}", **extra))
            for n in range(count)
        ],
    )


async def test_a_slow_healthy_endpoint_gets_a_burst_delivered_once_at_high_concurrency(
    scheduling: Pipeline, receiver: Receiver
) -> None:
    pipeline = scheduling
    await pipeline.worker.wait_ready()
    hook = {"id": unique("wh_slow_"), "account_id": unique("acct_"), "url": receiver.url("/slow")}
    receiver.delays["/slow"] = 1.0  # healthy, and a second to answer: a real CRM
    await pipeline.kafka.put_webhooks([hook], pipeline.worker)
    burst = 3000
    await _send(pipeline, hook["account_id"], burst, "s")
    await wait_until(lambda: receiver.count("/slow") >= burst, 120, f"{burst} deliveries")
    per_id = Counter(r.headers["webhook-id"] for r in receiver.at("/slow"))
    assert len(per_id) == burst and set(per_id.values()) == {1}  # each once, none lost
    assert receiver.peak_in_flight["/slow"] > 50  # it got the concurrency it can take
    assert await _records(pipeline, pipeline.catalog.deliveries_failed, {hook["id"]}) == []
    attempts = await _records(pipeline, pipeline.catalog.attempts, {hook["id"]})
    assert {a["result"]["attempt"] for a in attempts if a["outcome"] == "delivered"} == {1}


async def test_an_endpoint_that_sheds_load_above_20_gets_everything_mostly_first_time(
    scheduling: Pipeline, receiver: Receiver
) -> None:
    pipeline = scheduling
    await pipeline.worker.wait_ready()
    hook = {"id": unique("wh_shed_"), "account_id": unique("acct_"), "url": receiver.url("/shed")}
    receiver.delays["/shed"] = 0.05
    receiver.shed_above["/shed"] = 20  # 503 whenever more than 20 requests are in flight
    await pipeline.kafka.put_webhooks([hook], pipeline.worker)
    events = 1000
    await _send(pipeline, hook["account_id"], events, "l")
    # Slow start may overshoot once before the first 503s; what matters is where it settles.
    await wait_until(lambda: receiver.count("/shed") >= events // 2, 120, "half delivered")
    receiver.peak_in_flight["/shed"] = receiver.in_flight.get("/shed", 0)
    attempts = await wait_until(
        lambda: _delivered_attempts(pipeline, hook["id"], events),
        120,
        "every event delivered",
        interval=1.0,
    )
    first_time = sum(1 for a in attempts if a["result"]["attempt"] == 1)
    assert first_time >= 0.85 * events  # the limiter settled near 20: most succeed at once
    assert receiver.shed.get("/shed", 0) < 0.15 * len(receiver.at("/shed"))
    # In the second half it kept near what the endpoint takes, not pushing past it.
    assert receiver.peak_in_flight["/shed"] <= 32
    assert await _records(pipeline, pipeline.catalog.deliveries_failed, {hook["id"]}) == []


async def _delivered_attempts(
    pipeline: Pipeline, webhook_id: str, events: int
) -> list[dict[str, Any]] | None:
    records = await _records(pipeline, pipeline.catalog.attempts, {webhook_id})
    delivered = [a for a in records if a["outcome"] == "delivered"]
    return delivered if len({a["delivery_id"] for a in delivered}) >= events else None


async def test_a_dead_endpoint_gets_exactly_its_real_tries_then_dead_letters_with_history(
    scheduling: Pipeline, receiver: Receiver
) -> None:
    pipeline = scheduling
    await pipeline.worker.wait_ready()
    tiers = len(pipeline.settings.retry_delays)
    hook = {"id": unique("wh_dead_"), "account_id": unique("acct_"), "url": receiver.url("/dead")}
    receiver.script("/dead", [500] * 10_000)
    await pipeline.kafka.put_webhooks([hook], pipeline.worker)
    events = 6
    await _send(pipeline, hook["account_id"], events, "d")

    letters = await pipeline.kafka.read(
        pipeline.catalog.deliveries_failed,
        lambda v: v["job"]["webhook_id"] == hook["id"],
        count=events,
        timeout=120,
    )
    per_id = Counter(r.headers["webhook-id"] for r in receiver.at("/dead"))
    assert set(per_id.values()) == {1 + tiers}  # the circuit opened, and no skip was a try
    for letter in letters:
        assert [h["status"] for h in letter["history"]] == [500] * (1 + tiers)
        assert not any(h.get("skipped") for h in letter["history"])
        assert letter["reason"].startswith(f"gave up after {1 + tiers} attempts")
    logged = await _records(pipeline, pipeline.catalog.attempts, {hook["id"]})
    assert any(a["outcome"] == "parked" for a in logged)  # the circuit did open and park them


async def test_a_hung_endpoint_s_jobs_end_as_dead_letters_after_their_real_tries(
    scheduling: Pipeline, receiver: Receiver
) -> None:
    pipeline = scheduling
    await pipeline.worker.wait_ready()
    tiers = len(pipeline.settings.retry_delays)
    hook = {
        "id": unique("wh_hung_"),
        "account_id": unique("acct_"),
        "url": receiver.url("/hung"),
        "timeout_seconds": 0.3,
    }
    receiver.delays["/hung"] = 300  # accepts the connection, never answers
    await pipeline.kafka.put_webhooks([hook], pipeline.worker)
    events = 4
    await _send(pipeline, hook["account_id"], events, "h")
    letters = await pipeline.kafka.read(
        pipeline.catalog.deliveries_failed,
        lambda v: v["job"]["webhook_id"] == hook["id"],
        count=events,
        timeout=120,
    )
    for letter in letters:
        errors = [h["error"].split(":")[0] for h in letter["history"]]
        assert errors == ["timeout"] * (1 + tiers)
    per_id = Counter(r.headers["webhook-id"] for r in receiver.at("/hung"))
    assert set(per_id.values()) == {1 + tiers}


async def test_jobs_parked_in_thousands_survive_a_sigkill_and_are_all_delivered(
    broker: str, tmp_path: Any, receiver: Receiver
) -> None:
    with started_pipeline(
        broker, tmp_path, HOOKSTREAM_ENDPOINT_QUEUE_SECONDS="0.3", HOOKSTREAM_RETRY_DELAYS="2,2,2"
    ) as pipeline:
        worker = pipeline.worker
        await worker.wait_ready()
        hook = {"id": unique("wh_pk_"), "account_id": unique("acct_"), "url": receiver.url("/pk")}
        receiver.delays["/pk"] = 2.0
        await pipeline.kafka.put_webhooks([hook], worker)
        events = 4000
        await _send(pipeline, hook["account_id"], events, "p")

        async def parked_many() -> bool:
            parked = await _records(pipeline, pipeline.catalog.deliveries_parked, {hook["id"]})
            return len({p["job"]["delivery_id"] for p in parked}) >= 2000

        await wait_until(parked_many, 90, "thousands of jobs parked", interval=0.5)
        worker.kill()
        receiver.delays["/pk"] = 0.01  # the endpoint speeds up while the worker is down
        started = time.time()
        worker.start()
        await worker.wait_ready()
        try:
            await wait_until(
                lambda: len(receiver.ids.get("/pk", ())) >= events,
                180,
                f"all {events} delivered after the restart",
                interval=0.5,
            )
        except AssertionError as exc:
            try:
                state = await _parked_state(pipeline, hook["id"], receiver)
            except Exception as failure:  # the timeout is the finding; this only explains it
                state = f"(no diagnostics: {failure!r})"
            raise AssertionError(f"{exc}\n{state}") from None
        assert len({r.headers["webhook-id"] for r in receiver.at("/pk")}) == events
        assert any(r.at > started for r in receiver.at("/pk"))
        letters = await _records(pipeline, pipeline.catalog.deliveries_failed, {hook["id"]})
        assert letters == []
        await pipeline.kafka.close()
