"""Isolation: one endpoint that never answers does not hold up the healthy ones, and failed
jobs waiting on a retry tier do not hold up new events.

Throughput is compared as a ratio within the same run (healthy webhooks alone, then the same
number of healthy webhooks beside a hung one), never as an absolute time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from tests.integration.conftest import Pipeline, started_pipeline
from tests.integration.harness import Received, Receiver, unique, wait_until
from tests.seed_bodies import input_event

pytestmark = pytest.mark.slow

#: Rounds of ~5 s: a new hung endpoint holds some of the worker's actors until it counts as
#: slow (``HOOKSTREAM_ENDPOINT_SLOW_AFTER``, 0.5 s), a fixed cost that a 2 s round magnified.
HEALTHY, PER_HOOK = 9, 2000


@pytest.fixture(scope="module")
def isolated(broker: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    with started_pipeline(
        broker,
        tmp_path_factory.mktemp("isolation"),
        HOOKSTREAM_REQUEST_TIMEOUT="3",
        # No hung job's retry falls due while the first three pairs of rounds (~30 s) are
        # measured: at 5 s one round's retries landed in the next round beside a hung
        # endpoint, a bias against exactly the rounds being compared (CI once measured 0.78).
        # The last two tiers are short, so the first round's jobs are dead letters a minute later.
        HOOKSTREAM_RETRY_DELAYS="60,1,1",
    ) as pipeline:
        yield pipeline


async def _deliver_round(
    pipeline: Pipeline, receiver: Receiver, tag: str, hung: bool
) -> tuple[float, list[dict[str, object]]]:
    """Seconds until every healthy delivery of one round arrived, and the round's webhooks."""
    account = unique("acct_")
    hooks = [
        {
            "id": unique(f"wh_{tag}{i}_"),
            "account_id": f"{account}_{i}",
            "url": receiver.url(f"/{tag}/{i}"),
        }
        for i in range(HEALTHY)
    ]
    if hung:
        hooks.append(
            {
                "id": unique("wh_hung_"),
                "account_id": f"{account}_hung",
                "url": receiver.url(f"/{tag}/hung"),
            }
        )
        receiver.delays[f"/{tag}/hung"] = 120
    await pipeline.kafka.put_webhooks(hooks, pipeline.worker)
    events = [
        (
            f"{n}",
            input_event("message sent", hooks[n % len(hooks)]["account_id"], event_id=f"{tag}{n}"),
        )
        for n in range(PER_HOOK * len(hooks))
    ]
    healthy_paths = {f"/{tag}/{i}" for i in range(HEALTHY)}
    started = time.monotonic()
    await pipeline.kafka.send_json_many(pipeline.catalog.events_messages, events)
    await wait_until(
        lambda: sum(1 for r in receiver.requests if r.path in healthy_paths) >= HEALTHY * PER_HOOK,
        120,
        f"{HEALTHY * PER_HOOK} healthy deliveries of round {tag}",
    )
    return time.monotonic() - started, hooks


async def test_a_hung_endpoint_keeps_healthy_throughput_above_80_percent_and_loses_nothing(
    isolated: Pipeline, receiver: Receiver
) -> None:
    await isolated.worker.wait_ready()
    # Best of several rounds each, alternating: this 2-core machine also runs the broker, the
    # receiver and the producer, and a single round is at the mercy of their scheduling.
    alone, _ = await _deliver_round(isolated, receiver, "alone1", hung=False)
    beside, hooks = await _deliver_round(isolated, receiver, "beside1", hung=True)
    # At least three pairs; up to six while the best ratio is still short of the bar (late in
    # the suite the shared broker is slower). A broken guard measures ~0.12 and fails anyway.
    for n in range(2, 7):
        if n > 3 and alone / beside >= 0.8:
            break
        alone = min(alone, (await _deliver_round(isolated, receiver, f"alone{n}", hung=False))[0])
        beside = min(beside, (await _deliver_round(isolated, receiver, f"beside{n}", hung=True))[0])
    ratio = alone / beside
    print(f"healthy alone {alone:.2f} s, beside a hung endpoint {beside:.2f} s: ratio {ratio:.2f}")
    assert ratio >= 0.8, f"healthy throughput beside a hung endpoint is {ratio:.2f} of alone"

    # Nothing lost: every job of the hung endpoint ends as a dead letter (replayable).
    hung_id = hooks[-1]["id"]  # of the first round beside a hung endpoint
    letters = await isolated.kafka.read(
        isolated.catalog.deliveries_failed,
        lambda v: v["job"]["webhook_id"] == hung_id,
        count=PER_HOOK,
        timeout=120,
    )
    assert len({x["job"]["delivery_id"] for x in letters}) == PER_HOOK
    reasons = {h["error"].split(":")[0] for x in letters for h in x["history"]}
    assert reasons <= {"timeout", "skipped"}
    assert "skipped" in reasons  # the circuit or the bulkhead kept most calls off the wire
    await isolated.kafka.close()


#: More failed jobs than a tier's actors (200) and stream buffer (Faust's 4,096) hold at once.
WAITING_RETRIES = 6000


@pytest.fixture(scope="module")
def long_retries(broker: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    with started_pipeline(
        broker,
        tmp_path_factory.mktemp("long-retries"),
        HOOKSTREAM_RETRY_DELAYS="20,20,20",  # the failed jobs wait on tier 1 while we watch
        HOOKSTREAM_CIRCUIT_COOLDOWN="5",  # recovered by the time they are due
    ) as pipeline:
        yield pipeline


async def test_retries_waiting_on_a_tier_do_not_hold_up_new_events(
    long_retries: Pipeline, receiver: Receiver
) -> None:
    """A failing endpoint's jobs fill tier 1's stream buffer while they wait out the delay.
    Faust's fetch loop, shared by every topic, used to wait for room in that buffer, so no
    new event was read until the first of them fell due; and a message left on the broker
    meanwhile must still be read, once."""
    pipeline = long_retries
    await pipeline.worker.wait_ready()
    failing = {"id": unique("wh_failing_"), "account_id": unique("acct_f_")}
    healthy = {"id": unique("wh_healthy_"), "account_id": unique("acct_h_")}
    failing["url"], healthy["url"] = receiver.url("/failing"), receiver.url("/healthy")
    receiver.script("/failing", [500] * WAITING_RETRIES)  # its circuit opens: all to tier 1
    await pipeline.kafka.put_webhooks([failing, healthy], pipeline.worker)

    await pipeline.kafka.send_json_many(
        pipeline.catalog.events_messages,
        [
            (str(n), input_event("message sent", failing["account_id"], event_id=f"f{n}"))
            for n in range(WAITING_RETRIES)
        ],
    )
    await pipeline.kafka.read(  # every job routed: each left an attempt record
        pipeline.catalog.attempts,
        lambda v: v["webhook_id"] == failing["id"],
        count=WAITING_RETRIES,
        timeout=120,
    )

    # New events for a healthy webhook while those wait: each must be delivered before the
    # first waiting job falls due (an order, not a timing: the old loop read nothing until then).
    healthy_from = time.time()
    for n in range(50):
        await pipeline.kafka.send_json(
            pipeline.catalog.events_messages,
            input_event("message sent", healthy["account_id"], event_id=f"h{n}"),
            key=healthy["account_id"],
        )
        await asyncio.sleep(0.05)  # a steady trickle (pacing the producer, not a wait)
    await receiver.wait_for("/healthy", count=50, timeout=90)

    def retried() -> list[Received]:
        return [r for r in receiver.at("/failing") if r.at > healthy_from]

    assert retried() == [], "new events were held until the waiting retries fell due"
    receiver.script("/failing", [])  # the endpoint recovers before its retries fall due

    # Nothing left on the broker was lost or read twice: every waiting job is delivered once.
    await wait_until(
        lambda: len({r.headers["webhook-id"] for r in retried()}) >= WAITING_RETRIES,
        120,
        f"{WAITING_RETRIES} retried jobs delivered",
    )
    assert len(retried()) == WAITING_RETRIES
    await pipeline.kafka.close()
