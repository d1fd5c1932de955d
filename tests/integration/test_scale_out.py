"""Several workers in one consumer group: they split partitions, each has the whole config view,
a survivor takes over from a SIGKILLed worker, and a new worker gets partitions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.integration.conftest import make_pipeline
from tests.integration.harness import Receiver, WorkerProcess, unique, wait_until
from tests.seed_bodies import input_event

pytestmark = pytest.mark.slow

TOKEN = "scale-out-admin-token"
EVENTS, HOOKS = 10_000, 10


def _event_partitions(health: dict[str, Any] | None, topics: set[str]) -> set[tuple[str, int]]:
    if not health:
        return set()
    return {(t, p) for t, parts in health["assigned"].items() if t in topics for p in parts}


async def test_workers_split_partitions_survive_a_kill_and_a_new_worker_joins(
    broker: str, tmp_path: Path, receiver: Receiver
) -> None:
    pipeline = make_pipeline(broker, tmp_path, HOOKSTREAM_ADMIN_TOKEN=TOKEN)
    catalog, kafka = pipeline.catalog, pipeline.kafka
    input_topics = {catalog.events_contacts, catalog.events_messages}
    workers = [
        WorkerProcess(
            env={**pipeline.worker.env, "HOOKSTREAM_DATA_DIR": str(tmp_path / f"d{i}")},
            log_path=tmp_path / f"worker{i}.log",
        )
        for i in range(3)
    ]
    first, second, third = workers
    try:
        first.start()
        second.start()
        for worker in (first, second):
            await worker.wait_ready()

        async def split() -> bool:
            a = _event_partitions(await first.health(), input_topics)
            b = _event_partitions(await second.health(), input_topics)
            return bool(a) and bool(b) and not a & b and len(a | b) == 2 * catalog.partitions

        await wait_until(split, 60, "the two workers to split the input partitions", interval=0.5)

        # Read-your-write across workers: create on one, read on the other at once.
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with aiohttp.ClientSession(headers=headers) as session:
            hooks = []
            for i in range(HOOKS):
                body = {"account_id": unique("acct_"), "url": receiver.url(f"/s/{i}")}
                url = f"http://127.0.0.1:{first.web_port}/api/webhooks"
                async with session.post(url, json=body) as response:
                    assert response.status == 201
                    hooks.append(await response.json())
                url = f"http://127.0.0.1:{second.web_port}/api/webhooks/{hooks[-1]['id']}"
                async with session.get(url) as response:
                    assert response.status == 200, await response.text()

        await kafka.send_json_many(
            catalog.events_messages,
            [
                (
                    f"k{n}",
                    input_event("message sent", hooks[n % HOOKS]["account_id"], event_id=f"e{n}"),
                )
                for n in range(EVENTS)
            ],
        )
        await wait_until(lambda: len(receiver.requests) >= EVENTS // 5, 120, "deliveries under way")
        first.kill()

        def pairs() -> set[tuple[str, str]]:
            return receiver.pairs

        await wait_until(lambda: len(pairs()) >= EVENTS, 240, f"all {EVENTS} pairs", interval=0.5)
        assert len(pairs()) == EVENTS
        per_hook = {path for path, _ in pairs()}
        assert per_hook == {f"/s/{i}" for i in range(HOOKS)}

        third.start()
        await third.wait_ready()

        async def third_has_partitions() -> bool:
            return bool(_event_partitions(await third.health(), input_topics))

        await wait_until(third_has_partitions, 90, "the new worker to get partitions", interval=0.5)
    finally:
        for worker in workers:
            worker.stop()
        await kafka.close()
