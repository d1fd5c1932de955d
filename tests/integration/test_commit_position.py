"""The commit position never passes an unsettled record: a new group, a rebalance, the
record right after the last commit.

Each test holds jobs on an endpoint that does not answer yet (its requests stay in flight
while later records settle: parked, or delivered elsewhere), lets the workers commit, and
checks at every poll over several commits that no input partition's committed offset passed
its lowest unsettled record (neither delivered with a 2xx nor parked). Then it SIGKILLs the
workers and restarts one with the endpoint answering: every event gets a 2xx.

``HOOKSTREAM_COMMIT_INTERVAL=0.5`` only makes commits come sooner;
``HOOKSTREAM_REQUEST_TIMEOUT=60`` keeps the held requests in flight for the whole check (the
case under test: records that are not settled), and ``HOOKSTREAM_ENDPOINT_QUEUE_SECONDS=0.3``
parks the jobs behind them sooner. All three failed on main before the commit ledger (764b6d5),
where Faust's acknowledged-offset list committed 1000 over unsettled 4..31, and 20 over an
unsettled 10 (upstream issue #606).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from app.flow.join import delivery_id, parse_event
from app.kafka.log_scan import scan_topic
from app.model.events import EventFamily
from app.model.records import SourceRef
from app.settings import Settings
from tests.integration.conftest import Pipeline, make_pipeline
from tests.integration.harness import Receiver, WorkerProcess, unique, wait_until
from tests.seed_bodies import input_event

pytestmark = pytest.mark.slow

PARTITIONS = 4
#: How long each test watches the committed offsets: many commits at 0.5 s.
WATCH_SECONDS = 5.0
HOLD = {
    "HOOKSTREAM_COMMIT_INTERVAL": "0.5",
    "HOOKSTREAM_REQUEST_TIMEOUT": "60",
    "HOOKSTREAM_ENDPOINT_QUEUE_SECONDS": "0.3",
}


@dataclass
class Produced:
    """The input records a test wrote: where each is, and its delivery id per webhook."""

    topic: str
    webhook_of: dict[tuple[int, int], str] = field(default_factory=dict)
    delivery_of: dict[tuple[int, int], str] = field(default_factory=dict)

    def by_partition(self) -> dict[int, list[int]]:
        found: dict[int, list[int]] = {}
        for partition, offset in sorted(self.delivery_of):
            found.setdefault(partition, []).append(offset)
        return found


@contextmanager
def _deployment(broker: str, tmp: Path) -> Iterator[Pipeline]:
    pipeline = make_pipeline(broker, tmp, HOOKSTREAM_PARTITIONS=str(PARTITIONS), **HOLD)
    pipeline.worker.start()
    try:
        yield pipeline
    finally:
        pipeline.worker.stop()


async def _produce(
    pipeline: Pipeline, produced: Produced, hook: dict[str, Any], partition: int, count: int
) -> None:
    producer = await pipeline.kafka.producer()
    for _ in range(count):
        event_id = unique("e")
        value = orjson.dumps(input_event("message sent", hook["account_id"], event_id=event_id))
        meta = await (await producer.send(produced.topic, value=value, partition=partition))
        place = (meta.partition, meta.offset)
        event, _ = parse_event(value, EventFamily.MESSAGES)
        source = SourceRef(topic=produced.topic, partition=meta.partition, offset=meta.offset)
        produced.webhook_of[place] = hook["id"]
        produced.delivery_of[place] = delivery_id(event, hook["id"], source)


async def _committed(pipeline: Pipeline, topic: str) -> dict[int, int | None]:
    """The worker group's committed offset of each partition of ``topic``."""
    group = pipeline.worker.env["HOOKSTREAM_APP_ID"]
    consumer = AIOKafkaConsumer(
        bootstrap_servers=pipeline.kafka.broker, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        return {p: await consumer.committed(TopicPartition(topic, p)) for p in range(PARTITIONS)}
    finally:
        await consumer.stop()


async def _parked(pipeline: Pipeline) -> set[str]:
    """Delivery ids with a parking record on the broker (their records are settled)."""

    def delivery(_key: bytes | None, value: bytes) -> str | None:
        return str(orjson.loads(value)["job"]["delivery_id"])

    settings = Settings(broker=f"kafka://{pipeline.kafka.broker}")
    scan = await scan_topic(settings, pipeline.catalog.deliveries_parked, delivery, 1_000_000)
    return set(scan.items)


def _delivered(receiver: Receiver) -> set[str]:
    return {r.headers["webhook-id"] for r in receiver.succeeded if "webhook-id" in r.headers}


async def _check_commits(
    pipeline: Pipeline, produced: Produced, receiver: Receiver, seconds: float
) -> dict[int, int | None]:
    """Watch the committed offsets for ``seconds``: never past the lowest unsettled record
    (read after the offsets, so a record that settled meanwhile counts as settled: the check
    can only be lenient, never wrong). Returns the last offsets seen."""
    deadline = time.monotonic() + seconds
    while True:
        committed = await _committed(pipeline, produced.topic)
        settled = await _parked(pipeline) | _delivered(receiver)
        for partition, offsets in produced.by_partition().items():
            unsettled = [o for o in offsets if produced.delivery_of[(partition, o)] not in settled]
            position = committed[partition]
            if unsettled and position is not None:
                assert position <= min(unsettled), (
                    f"partition {partition} committed at {position} over unsettled records "
                    f"{unsettled[:5]}... ({len(unsettled)} unsettled)"
                )
        if time.monotonic() > deadline:
            return committed


async def _restart_and_deliver_all(
    pipeline: Pipeline, produced: Produced, receiver: Receiver, workers: list[WorkerProcess]
) -> None:
    for worker in workers:
        worker.kill()
    receiver.delays.clear()  # the endpoint answers at once from now on
    pipeline.worker.start()
    await pipeline.worker.wait_ready()
    expected = set(produced.delivery_of.values())
    await wait_until(
        lambda: expected <= _delivered(receiver),
        180,
        f"a 2xx for each of {len(expected)} events after the restart",
        interval=0.5,
    )


async def _committed_anywhere(pipeline: Pipeline, topic: str) -> bool:
    return any(o is not None for o in (await _committed(pipeline, topic)).values())


async def _wait_for_a_commit(pipeline: Pipeline, produced: Produced) -> None:
    await wait_until(
        lambda: _committed_anywhere(pipeline, produced.topic), 30, "a commit", interval=0.3
    )


async def _hold_100_per_partition(
    pipeline: Pipeline, receiver: Receiver, path: str
) -> tuple[dict[str, Any], Produced]:
    """A webhook whose endpoint does not answer yet (its requests stay in flight), and 100
    events for it on each partition."""
    hook = {"id": unique("wh_"), "account_id": unique("acct_"), "url": receiver.url(path)}
    receiver.delays[path] = 120.0
    await pipeline.kafka.put_webhooks([hook], pipeline.worker)
    produced = Produced(pipeline.catalog.events_messages)
    for partition in range(PARTITIONS):
        await _produce(pipeline, produced, hook, partition, 100)
    return hook, produced


async def test_a_new_group_never_commits_past_jobs_held_by_an_endpoint(
    broker: str, tmp_path: Path, receiver: Receiver
) -> None:
    with _deployment(broker, tmp_path) as pipeline:
        worker = pipeline.worker
        await worker.wait_ready()
        _, produced = await _hold_100_per_partition(pipeline, receiver, "/h")

        async def held_and_parked() -> bool:
            return receiver.count("/h") > 0 and len(await _parked(pipeline)) >= 300

        await wait_until(held_and_parked, 60, "requests held and jobs parked", interval=0.3)
        await _wait_for_a_commit(pipeline, produced)
        await _check_commits(pipeline, produced, receiver, WATCH_SECONDS)
        await _restart_and_deliver_all(pipeline, produced, receiver, [worker])
        await pipeline.kafka.close()


async def test_a_rebalance_with_jobs_held_never_commits_past_them(
    broker: str, tmp_path: Path, receiver: Receiver
) -> None:
    with _deployment(broker, tmp_path) as pipeline:
        first = pipeline.worker
        await first.wait_ready()
        _, produced = await _hold_100_per_partition(pipeline, receiver, "/r")
        await wait_until(lambda: receiver.count("/r") > 0, 60, "requests held", interval=0.2)
        second = WorkerProcess(env=dict(first.env), log_path=tmp_path / "second.log")
        second.start()
        try:
            await second.wait_ready()
            # Jobs of both generations settle and are held while the group rebalances.
            await _check_commits(pipeline, produced, receiver, WATCH_SECONDS)
            await _wait_for_a_commit(pipeline, produced)
            await _check_commits(pipeline, produced, receiver, WATCH_SECONDS)
            await _restart_and_deliver_all(pipeline, produced, receiver, [first, second])
        finally:
            second.stop()
        await pipeline.kafka.close()


async def test_the_record_right_after_the_last_commit_holds_the_commit(
    broker: str, tmp_path: Path, receiver: Receiver
) -> None:
    with _deployment(broker, tmp_path) as pipeline:
        worker = pipeline.worker
        await worker.wait_ready()
        fast = {"id": unique("wh_fast_"), "account_id": unique("acct_"), "url": receiver.url("/f")}
        held = {"id": unique("wh_held_"), "account_id": unique("acct_"), "url": receiver.url("/o")}
        receiver.delays["/o"] = 120.0
        await pipeline.kafka.put_webhooks([fast, held], worker)
        produced = Produced(pipeline.catalog.events_messages)
        for partition in range(PARTITIONS):
            await _produce(pipeline, produced, fast, partition, 10)

        async def committed_after_40() -> bool:
            committed = await _committed(pipeline, produced.topic)
            return all(committed[p] == 10 for p in range(PARTITIONS))

        await wait_until(committed_after_40, 60, "40 events delivered and committed", 0.3)
        for partition in range(PARTITIONS):
            await _produce(pipeline, produced, held, partition, 1)  # offset 10: held
            await _produce(pipeline, produced, fast, partition, 9)  # 11..19: delivered
        fast_ids = {d for place, d in produced.delivery_of.items() if place[1] != 10}
        await wait_until(
            lambda: fast_ids <= _delivered(receiver), 60, "the 76 fast events", interval=0.2
        )
        committed = await _check_commits(pipeline, produced, receiver, WATCH_SECONDS)
        assert committed == dict.fromkeys(range(PARTITIONS), 10)
        await _restart_and_deliver_all(pipeline, produced, receiver, [worker])
        await pipeline.kafka.close()
