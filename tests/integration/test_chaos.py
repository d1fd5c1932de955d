"""A short seeded chaos run (``make chaos`` in small): SIGKILLs, a join, a SIGTERM and, on
Apache Kafka, a broker SIGKILL, while events fan out to a fast, a slow and a flaky endpoint;
every event must reach every endpoint with a 2xx, duplicates with one webhook-id, and nothing
dead-lettered.

On Apache Kafka the run owns its broker (the session's broker cannot be killed); on Tansu,
which keeps everything in memory, it uses the session's broker and kills no broker.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from app.kafka.brokers import Engine
from chaos.run import ChaosConfig, run_chaos
from chaos.schedule import required_kinds

pytestmark = pytest.mark.slow

EVENTS, SEED = 4000, 20


@pytest.mark.timeout(600)
async def test_a_seeded_chaos_run_loses_nothing_and_keeps_one_id_per_delivery(
    engine: Engine | None, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    own_broker = engine is Engine.KAFKA
    config = ChaosConfig(
        workdir=tmp_path,
        events=EVENTS,
        seed=SEED,
        engine=engine or Engine.TANSU,
        broker=None if own_broker else request.getfixturevalue("broker"),
        disruptions=6 if own_broker else 5,
        rate=50,  # ~80 s of events: time for every disruption while events still arrive
    )
    report, run = await run_chaos(config)
    report.write(tmp_path / "report.json")
    print(report.text())  # shown with -s, and in the output of a failure
    explained = f"{report.text()}\n{run.error}\n{run.fleet.tails()}"

    kinds = {d.kind for d in report.disruptions}
    assert kinds >= {k.value for k in required_kinds(own_broker)}, explained
    assert report.lost == 0, explained
    assert report.mismatched_ids == 0, explained
    assert report.dead_letters == 0, explained
    assert report.drain == "drained", explained
    assert report.ok, explained
