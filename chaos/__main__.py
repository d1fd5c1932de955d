"""``make chaos`` (``python -m chaos``): one seeded chaos run, its report, and its verdict as
the exit code.

``CHAOS_ENGINE`` (``make chaos ENGINE=kafka``): the broker it starts, tansu (default) or kafka
(its own Apache Kafka on a data dir, which the run also SIGKILLs); ``HOOKSTREAM_BROKER`` names
a running broker instead (no broker kill then). ``CHAOS_EVENTS`` (default 50000),
``CHAOS_SEED`` (default 1), ``CHAOS_WORKERS`` (at start, default 2), ``CHAOS_DISRUPTIONS``
(default 8) and ``CHAOS_RATE`` (events produced per second, default 250) size it. The report
is printed and written to ``chaos/results/<time>-<engine>.json``; the run's logs and broker
data are kept in ``chaos/results/<time>-<engine>.tmp/`` when it fails.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import shutil
import signal
import sys
from pathlib import Path

from app.kafka.brokers import Engine
from chaos.run import ChaosConfig, Run, run_chaos

RESULTS = Path(__file__).resolve().parent / "results"


def config_from_env(workdir: Path) -> ChaosConfig:
    broker = os.environ.get("HOOKSTREAM_BROKER")
    return ChaosConfig(
        workdir=workdir,
        events=int(os.environ.get("CHAOS_EVENTS", "50000")),
        seed=int(os.environ.get("CHAOS_SEED", "1")),
        engine=Engine(os.environ.get("CHAOS_ENGINE", Engine.TANSU.value)),
        broker=broker.split("://", 1)[-1] if broker else None,
        workers=int(os.environ.get("CHAOS_WORKERS", "2")),
        disruptions=int(os.environ.get("CHAOS_DISRUPTIONS", "8")),
        rate=float(os.environ.get("CHAOS_RATE", "250")),
        say=lambda line: print(line, flush=True),
    )


def explain_failure(run: Run) -> None:
    """What a person needs to look into a failed run: the error, each worker's log tail."""
    if run.error:
        print(run.error, file=sys.stderr)
    print(run.fleet.tails(), file=sys.stderr)
    print(f"logs and broker data kept in {run.config.workdir}", file=sys.stderr)


async def main() -> int:
    # The run's own Kafka clients complain while the broker is down on purpose; the report
    # says what matters, and the workers' logs keep their side.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    # SIGTERM (a timeout, a CI runner) tears down like Ctrl-C: workers, broker, receiver.
    task = asyncio.current_task()
    if task is not None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    stamp = f"{dt.datetime.now(dt.UTC):%Y-%m-%dT%H%M%S}"
    engine = os.environ.get("CHAOS_ENGINE", Engine.TANSU.value)
    workdir = RESULTS / f"{stamp}-{engine}.tmp"
    config = config_from_env(workdir)
    print(
        f"chaos run: {config.events} events, seed {config.seed}, {config.workers} workers, "
        f"{config.disruptions} disruptions, engine {config.broker or config.engine.value}",
        flush=True,
    )
    report, run = await run_chaos(config)
    print(report.text(), flush=True)
    out = RESULTS / f"{stamp}-{engine}.json"
    report.write(out)
    print(f"report written to {out.relative_to(RESULTS.parent.parent)}", flush=True)
    if not report.ok:
        explain_failure(run)
        return 1
    if report.unplanned_exits:  # a pass, but a worker died on its own: keep its log
        print(f"logs kept in {workdir}: a worker exited on its own", flush=True)
        return 0
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
