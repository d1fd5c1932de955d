"""A webhook whose every attempt fails for the configured period is disabled, with the reason,
and the jobs that were waiting for it become dead letters (replayable), not lost."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.conftest import started_pipeline
from tests.integration.harness import Receiver, unique
from tests.seed_bodies import input_event

pytestmark = pytest.mark.slow


async def test_a_webhook_failing_for_the_whole_period_is_disabled(
    broker: str, tmp_path: Path, receiver: Receiver
) -> None:
    with started_pipeline(
        broker,
        tmp_path,
        HOOKSTREAM_AUTO_DISABLE_AFTER="1.5",
        HOOKSTREAM_CIRCUIT_COOLDOWN="0.5",  # the open circuit probes twice a second
    ) as pipeline:
        await pipeline.worker.wait_ready()
        receiver.script("/down", [503] * 1000)
        hook = {"id": unique("wh_"), "account_id": unique("acct_"), "url": receiver.url("/down")}
        await pipeline.kafka.put_webhooks([hook], pipeline.worker)

        async def disabled_record() -> list[dict[str, object]]:
            return await pipeline.kafka.read(
                pipeline.catalog.webhooks,
                lambda v: v.get("id") == hook["id"] and v.get("active") is False,
                timeout=1,
            )

        for n in range(40):  # one more failing event every ~0.5 s until it is disabled
            await pipeline.kafka.send_json(
                pipeline.catalog.events_messages,
                input_event("message sent", hook["account_id"], event_id=f"d{n}"),
                key=hook["account_id"],
            )
            try:
                [record] = await disabled_record()
                break
            except AssertionError:
                continue
        else:
            raise AssertionError("the webhook was never disabled")
        assert "every attempt failed" in str(record["disabled_reason"])
        assert len(receiver.at("/down")) >= 4  # it failed for real, through every retry
        # Nothing is lost: each event's job ends as a dead letter, after its tries or, if it
        # was still waiting for the endpoint, because the webhook is now inactive.
        sent = n + 1
        letters = await pipeline.kafka.read(
            pipeline.catalog.deliveries_failed,
            lambda v: v["job"]["webhook_id"] == hook["id"],
            count=sent,
            timeout=60,
        )
        assert len({x["job"]["delivery_id"] for x in letters}) == sent
        assert {x["reason"].split(" ")[0] for x in letters} <= {"gave", "webhook"}
        await pipeline.kafka.close()
