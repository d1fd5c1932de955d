"""What only Apache Kafka can show: a compacted ``webhooks`` topic, a broker restarted on its
data dir, and a broker SIGKILLed mid-run.

Skipped on the embedded broker, which keeps everything in memory and does not compact.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from app.kafka.brokers import Engine
from app.kafka.config_view import BARRIER_HEADER
from app.kafka.metadata import topic_partitions
from tests.integration.conftest import make_pipeline, started_pipeline
from tests.integration.harness import BrokerProcess, Receiver, unique, wait_until
from tests.seed_bodies import input_event

pytestmark = pytest.mark.slow

TOKEN = "kafka-test-admin-token"


@pytest.fixture
def kafka_only(engine: Engine | None) -> None:
    if engine is not Engine.KAFKA:
        pytest.skip("needs Apache Kafka: Tansu keeps data in memory and has no compaction")


@pytest.fixture
async def own_broker(kafka_only: None, tmp_path: Path) -> AsyncIterator[BrokerProcess]:
    """A broker of this test's own (it is stopped, killed and restarted)."""
    broker = BrokerProcess(tmp_path / "kafka-data", tmp_path / "kafka.log")
    await broker.start()
    yield broker
    broker.stop()


async def _topic_records(broker: str, topic: str) -> list[tuple[bytes | None, Any, bool]]:
    """Every record of ``topic`` from the start: (key, decoded value or None, is barrier)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=broker, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in await topic_partitions(consumer, topic)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        records: list[tuple[bytes | None, Any, bool]] = []

        async def behind() -> bool:
            return any([await consumer.position(tp) < ends[tp] for tp in tps])

        while await behind():
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                for record in batch:
                    barrier = any(name == BARRIER_HEADER for name, _ in record.headers or ())
                    value = orjson.loads(record.value) if record.value is not None else None
                    records.append((record.key, value, barrier))
        return records
    finally:
        await consumer.stop()


async def test_a_compacted_webhooks_topic_keeps_every_live_webhook_and_no_pile_of_barriers(
    kafka_only: None, broker: str, tmp_path: Path, receiver: Receiver
) -> None:
    with started_pipeline(broker, tmp_path, HOOKSTREAM_ADMIN_TOKEN=TOKEN) as pipeline:
        worker, topic = pipeline.worker, pipeline.catalog.webhooks
        await worker.wait_ready()
        admin = AIOKafkaAdminClient(bootstrap_servers=broker)
        await admin.start()
        resource = ConfigResource(ConfigResourceType.TOPIC, topic)
        [described] = await admin.describe_configs([resource])
        configs = {entry[0]: entry[1] for entry in described.resources[0][4]}
        assert configs["cleanup.policy"] == "compact"  # created so by `hookstream topics create`
        # Compaction within seconds: short segments, any dirt is worth cleaning, and
        # tombstones themselves may go once cleaned (deleted webhooks must stay deleted).
        fast = {
            "cleanup.policy": "compact",
            "segment.ms": "100",
            "min.cleanable.dirty.ratio": "0.01",
            "min.compaction.lag.ms": "0",
            "delete.retention.ms": "100",
        }
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, fast)])
        await admin.close()

        tag = unique("")
        hooks = [
            {
                "id": f"wh_{tag}_{i}",
                "account_id": f"acct_{tag}_{i}",
                "url": receiver.url(f"/v1/{i}"),
            }
            for i in range(40)
        ]
        await pipeline.kafka.put_webhooks(hooks, worker)
        await pipeline.kafka.put_webhooks(
            [{**h, "url": receiver.url(f"/v2/{i}")} for i, h in enumerate(hooks)], worker
        )
        deleted = hooks[:10]
        for hook in deleted:
            meta = await pipeline.kafka.send(topic, None, hook["id"].encode())
        await worker.wait_applied({meta.partition: meta.offset})

        # Every admin read writes one barrier marker per partition (read-your-write), so
        # markers pile up unless compaction keeps the newest of each partition's key.
        partitions = pipeline.catalog.partitions
        base = f"http://127.0.0.1:{worker.web_port}/api/webhooks?account_id=x"
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with aiohttp.ClientSession(headers=headers) as session:

            async def read() -> None:
                async with session.get(base) as response:
                    assert response.status == 200

            async def barriers() -> tuple[int, int]:
                """(superseded configs, barrier markers) on the topic now."""
                records = await _topic_records(broker, topic)
                superseded = sum(1 for _, v, b in records if not b and v and "/v1/" in v["url"])
                return superseded, sum(1 for _, _, b in records if b)

            for _ in range(12):
                await read()
            _, written = await barriers()
            assert written >= 12 * partitions

            async def compacted() -> bool:
                await read()  # a new marker also rolls each partition's segment
                superseded, markers = await barriers()
                return superseded == 0 and markers <= written // 2

            await wait_until(compacted, 120, "the cleaner to compact webhooks", 1.0)
            # The markers stay bounded however many more reads write them (measured: 3 per
            # partition: the cleaned part, a segment waiting for the cleaner, the active one).
            for _ in range(15):
                await read()
            await wait_until(compacted, 60, "the markers to stay bounded", 1.0)

        # A worker that loads the compacted topic has exactly the live webhooks.
        worker.kill()
        worker.start()
        health = await worker.wait_ready()
        live = hooks[10:]
        mine = {h["id"] for h in hooks}
        records = await _topic_records(broker, topic)
        assert {k.decode() for k, v, b in records if v and not b and k} & mine == {
            h["id"] for h in live
        }
        assert health["webhooks_at_ready"] == len(live)
        await pipeline.kafka.send_json_many(
            pipeline.catalog.events_messages,
            [(h["account_id"], input_event("message sent", h["account_id"])) for h in hooks],
        )
        await wait_until(
            lambda: {r.path for r in receiver.requests} >= {f"/v2/{i}" for i in range(10, 40)},
            60,
            "every live webhook's delivery",
        )
        attempted = await pipeline.kafka.read(
            pipeline.catalog.attempts, lambda v: v["webhook_id"] in mine, count=len(live)
        )
        assert {a["webhook_id"] for a in attempted} == {h["id"] for h in live}
        assert not [r for r in receiver.requests if r.path.startswith("/v1/")]
        await pipeline.kafka.close()


async def test_hookstream_broker_restarts_on_its_data_dir_with_webhooks_offsets_and_retries(
    own_broker: BrokerProcess, tmp_path: Path, receiver: Receiver
) -> None:
    pipeline = make_pipeline(
        own_broker.address, tmp_path, HOOKSTREAM_RETRY_DELAYS="8,1,1", HOOKSTREAM_RETRY_JITTER="0"
    )
    worker, kafka = pipeline.worker, pipeline.kafka
    worker.start()
    try:
        await worker.wait_ready()
        ok = {"id": unique("wh_ok_"), "account_id": unique("acct_"), "url": receiver.url("/ok")}
        flaky = {"id": unique("wh_fl_"), "account_id": unique("acct_"), "url": receiver.url("/fl")}
        receiver.script("/fl", [500])
        await kafka.put_webhooks([ok, flaky], worker)
        for hook in (ok, flaky):
            await kafka.send_json(
                pipeline.catalog.events_messages,
                input_event("message sent", hook["account_id"], event_id=unique("e")),
                key=hook["account_id"],
            )
        await receiver.wait_for("/ok")
        await receiver.wait_for("/fl")
        # The failed job waits on tier 1 (8 s), on the broker.
        await kafka.read(pipeline.catalog.retry(1), lambda v: v["job"]["webhook_id"] == flaky["id"])
        await kafka.close()
        worker.stop()  # commits what it finished: the delivered event is not read again

        own_broker.stop()
        await own_broker.start()  # same port, same data dir

        worker.start()
        health = await worker.wait_ready()
        assert health["webhooks_at_ready"] == 2  # the webhooks survived
        retried = await receiver.wait_for("/fl", count=2, timeout=60)
        assert len({r.headers["webhook-id"] for r in retried}) == 1  # the pending retry did
        assert [r.headers["x-hookstream-attempt"] for r in retried] == ["1", "2"]
        assert len(receiver.at("/ok")) == 1  # and so did the committed offsets
    finally:
        worker.stop()
        await kafka.close()


async def test_a_broker_sigkilled_mid_run_and_restarted_loses_nothing(
    own_broker: BrokerProcess, tmp_path: Path, receiver: Receiver
) -> None:
    pipeline = make_pipeline(own_broker.address, tmp_path)
    worker, kafka = pipeline.worker, pipeline.kafka
    worker.start()
    try:
        await worker.wait_ready()
        hooks = [
            {"id": unique("wh_"), "account_id": unique("acct_"), "url": receiver.url(f"/bk/{i}")}
            for i in range(4)
        ]
        await kafka.put_webhooks(hooks, worker)
        events = 8000
        await kafka.send_json_many(
            pipeline.catalog.events_messages,
            [
                (f"k{n}", input_event("message sent", hooks[n % 4]["account_id"], event_id=f"e{n}"))
                for n in range(events)
            ],
        )
        await kafka.close()

        def pairs() -> set[tuple[str, str]]:
            return receiver.pairs

        await wait_until(lambda: len(pairs()) >= 1500, 120, "deliveries under way")
        own_broker.kill()
        await asyncio.sleep(1)  # the broker stays down a moment (pacing an outage, not a wait)
        await own_broker.start()
        await wait_until(lambda: len(pairs()) >= events, 240, f"all {events} pairs", 0.5)
        per_path = Counter(path for path, _ in pairs())
        assert per_path == {f"/bk/{i}": events // 4 for i in range(4)}
    finally:
        worker.stop()
        await kafka.close()
