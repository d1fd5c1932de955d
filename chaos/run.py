"""The chaos run itself: a broker, a loopback receiver with three endpoints, a group of
workers, the seeded disruptions, the drain, and the count (:func:`run_chaos`).

The endpoints, all of one account so that every event fans out:
- ``/fast`` answers 200 at once, every event;
- ``/flaky`` answers 500 to the first attempt of a seeded share of the events, then 200
  (a retry tier per failure: a job in custody of the retry topics during the disruptions);
- ``/slow`` takes ``slow_seconds`` per request, for the events of one campaign only (every
  ``slow_every``-th event): the first burst (a backlog) overflows its queue beyond the
  worker's queue seconds, so jobs are parked on ``deliveries.parked``, while the run still
  drains in minutes. Subscribing it to every event at 2 s would need, at 256 in flight per
  worker, longer than the events take to produce.

Events are produced in bursts over ``events / rate`` seconds, so disruptions fall while
events arrive. Here (2 cores, everything on one machine) 30,000 events take ~5 minutes on
Apache Kafka, most of it the tail of re-sent (duplicate) deliveries; ``make chaos``'s 50,000
take longer.

Every setting that the guarantee rests on keeps its production default (request timeout,
queue seconds, circuit cooldown, in-flight limits); only the retry delays (a scale of the
schedule), the partitions, the session timeout and the commit interval are set, see
:func:`worker_settings`.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import RecordMetadata

from app.kafka.brokers import Engine, start_broker
from app.kafka.brokers.net import free_port
from app.kafka.log_scan import scan_topic
from app.kafka.topics import TopicCatalog
from app.settings import Settings
from chaos.report import Done, EndpointFigures, Missing, Report
from chaos.schedule import Kind, Planned, flaky_events, plan
from chaos.tally import Tally, answered_pairs, ids_per_pair, mismatched
from tests.integration.harness import (
    BrokerProcess,
    Kafka,
    Receiver,
    WorkerProcess,
    worker_env,
)
from tests.seed_bodies import input_event

SLOW_CAMPAIGN = "chaos-slow"
#: Lost events listed in the report (each with its input record's position).
MISSING_SHOWN = 20


@dataclass(frozen=True)
class ChaosConfig:
    """One run's parameters; everything else is production default."""

    workdir: Path
    events: int = 50_000
    seed: int = 1
    engine: Engine = Engine.TANSU
    #: host:port of a running broker to use instead of starting one (no broker kill then).
    broker: str | None = None
    workers: int = 2
    disruptions: int = 8
    partitions: int = 6
    slow_every: int = 5
    slow_seconds: float = 2.0
    flaky_share: float = 0.2
    #: Events produced per second on average, in ``bursts`` bursts: the disruptions fall
    #: while events still arrive. The first burst is a ``backlog`` share of all events, so
    #: the slow endpoint's queue overflows from the start and jobs are parked.
    rate: float = 250.0
    bursts: int = 10
    backlog: float = 0.3
    #: Seconds the drain may take after the last event was produced; None: 180 + events / 100.
    drain_timeout: float | None = None
    #: Seconds without a new delivery after which the drain is declared stalled: above the
    #: circuit cooldown (30 s), the longest a parked job waits when nothing else wakes it.
    stall_seconds: float = 120.0
    #: Most seconds between two disruptions when progress does not reach the next point.
    max_gap: float = 60.0
    #: Where to tell a person watching how the run goes (every ``say_every`` seconds and
    #: at each disruption); None: quiet.
    say: Callable[[str], None] | None = None
    say_every: float = 10.0

    @property
    def deadline(self) -> float:
        return self.drain_timeout or 180.0 + self.events / 100

    @property
    def burst_gap(self) -> float:
        """Seconds between the starts of two bursts."""
        return self.events / self.rate / self.bursts


@dataclass(frozen=True)
class Endpoint:
    path: str
    behaviour: str
    markers: frozenset[str]


def marker(n: int) -> str:
    """Event ``n``'s ``message_uid``: the field the receiver tells events apart by."""
    return f"chaos-{n}"


def worker_settings(broker: str, workdir: Path, partitions: int) -> dict[str, str]:
    """One environment for the whole group (one app id, one topic prefix): worker_env's
    unique names, with the production request timeout and retry delays put back (the
    delays also cap how long a parked job backs off: at 1 s, the 2 s endpoint's parked jobs
    were parked again every second, 1.9 million parking records in one 50k-event run)."""
    env = worker_env(
        broker,
        workdir,
        HOOKSTREAM_PARTITIONS=str(partitions),
        # Faust's commit interval (when the setting exists): commits happen more often, so a
        # kill just after a commit, the case at-least-once must survive, comes sooner.
        HOOKSTREAM_COMMIT_INTERVAL="1",
    )
    env.pop("HOOKSTREAM_REQUEST_TIMEOUT", None)
    env.pop("HOOKSTREAM_RETRY_DELAYS", None)
    return env


def overrides(env: dict[str, str]) -> dict[str, str]:
    """The settings a run changed from the defaults, for the report (names are per run)."""
    per_run = {"BROKER", "TOPIC_PREFIX", "APP_ID", "DATA_DIR"}
    return {
        k: v
        for k, v in sorted(env.items())
        if k.startswith("HOOKSTREAM_") and k.removeprefix("HOOKSTREAM_") not in per_run
    }


# -- the broker -------------------------------------------------------------------------------
@dataclass
class Broker:
    """The run's broker: named (used as is), the embedded Tansu, or an Apache Kafka of the
    run's own on a data dir, which alone can be SIGKILLed and restarted."""

    address: str
    engine: str
    kafka: BrokerProcess | None = None
    tansu: subprocess.Popen[bytes] | None = None
    restarts: int = 0

    @property
    def killable(self) -> bool:
        return self.kafka is not None

    async def kill_and_restart(self, outage: float) -> float:
        """SIGKILL it, keep it down ``outage`` seconds, restart it; seconds until it serves."""
        if self.kafka is None:
            raise RuntimeError("only a broker of the run's own can be killed")
        self.kafka.kill()
        down = time.monotonic()
        await asyncio.sleep(outage)  # the length of the outage, not a wait for a condition
        self.restarts += 1
        # A fresh log, so start() waits for this start's "serving" line, not the last one's.
        self.kafka.log_path = self.kafka.log_path.with_name(f"broker-{self.restarts}.log")
        await self.kafka.start(timeout=180)
        return time.monotonic() - down

    def close(self) -> None:
        process = self.kafka.process if self.kafka is not None else None
        if self.kafka is not None and process is not None and process.poll() is None:
            self.kafka.kill()
        if self.tansu is not None and self.tansu.poll() is None:
            self.tansu.kill()
            self.tansu.wait(timeout=30)


async def open_broker(config: ChaosConfig) -> Broker:
    if config.broker:
        return Broker(config.broker, f"{config.engine.value} (named)")
    if config.engine is Engine.KAFKA:
        kafka = BrokerProcess(config.workdir / "kafka-data", config.workdir / "broker.log")
        broker = Broker(kafka.address, config.engine.value, kafka=kafka)
        try:
            await kafka.start(timeout=180)
        except BaseException:
            broker.close()  # a broker that did not come up in time is still ours to stop
            raise
        return broker
    port = free_port()
    tansu = await asyncio.to_thread(
        start_broker, Engine.TANSU, port, config.workdir / "tansu", config.workdir / "broker.log"
    )
    return Broker(f"127.0.0.1:{port}", config.engine.value, tansu=tansu)


# -- the workers ------------------------------------------------------------------------------
@dataclass
class Slot:
    """A worker of the group: up means the run wants it running."""

    name: str
    worker: WorkerProcess
    up: bool = False


@dataclass
class Fleet:
    """The group's workers, each with its own copy of the one env, data dir, log and port."""

    env: dict[str, str]
    workdir: Path
    slots: list[Slot] = field(default_factory=list)
    started: int = 0
    unplanned: list[str] = field(default_factory=list)

    def live(self) -> list[Slot]:
        return [s for s in self.slots if s.up]

    def new_slot(self) -> Slot:
        i = len(self.slots)
        env = {**self.env, "HOOKSTREAM_DATA_DIR": str(self.workdir / f"worker{i}-data")}
        slot = Slot(f"worker{i}", WorkerProcess(env=env, log_path=self.workdir / f"worker{i}.log"))
        self.slots.append(slot)
        return slot

    async def start(self, slot: Slot) -> None:
        slot.worker.start()
        slot.up = True
        self.started += 1
        await slot.worker.wait_ready(timeout=180)

    def pick(self, share: float) -> Slot:
        live = self.live()
        return live[min(int(share * len(live)), len(live) - 1)]

    async def watch(self, since: float) -> None:
        """Restart a worker that exited on its own (a finding, reported), so the group keeps
        the size the schedule gave it."""
        for slot in self.live():
            process = slot.worker.process
            if process is not None and process.poll() is not None:
                self.unplanned.append(
                    f"{slot.name} exited with {process.returncode} at "
                    f"{time.monotonic() - since:.1f} s ({last_error(slot.worker.log())}); "
                    "restarted"
                )
                await self.start(slot)

    async def terminate(self, slot: Slot) -> str:
        """SIGTERM and wait off the event loop (the receiver must keep answering)."""
        process = slot.worker.process
        if process is None:
            raise RuntimeError(f"{slot.name} was never started")
        process.terminate()
        slot.up = False
        try:
            code = await asyncio.to_thread(process.wait, 60)
        except subprocess.TimeoutExpired:
            slot.worker.kill()
            return "did not stop in 60 s: SIGKILLed"
        return f"exit {code}"

    def close(self) -> None:
        for slot in self.slots:
            process = slot.worker.process
            if process is not None and process.poll() is None:
                slot.worker.kill()
            slot.up = False

    def tails(self, lines: int = 30) -> str:
        parts = []
        for slot in self.slots:
            tail = slot.worker.log().splitlines()[-lines:]
            parts.append(f"-- {slot.name} ({slot.worker.log_path}):\n" + "\n".join(tail))
        return "\n".join(parts)


def last_error(log: str) -> str:
    """Why a worker exited on its own, from its log since its last start: the service that
    crashed and why (Faust's "Crashed reason="), else the last error before it began to
    stop (the errors of a shutdown, or of a broker outage before it, are noise)."""
    lines = log.splitlines()
    starts = [i for i, line in enumerate(lines) if "[^Worker]: Starting..." in line]
    lines = lines[starts[-1] if starts else 0 :]
    stopping = next((i for i, line in enumerate(lines) if "[^Worker]: Stopping" in line), None)
    crashed = [line for line in lines if "Crashed reason=" in line]
    errors = [line for line in lines[:stopping] if "[ERROR]" in line]
    found = (crashed or errors or ["no error logged"])[-1 if not crashed else 0]
    return found.split("] ", 3)[-1].strip()[:300]


# -- the run ----------------------------------------------------------------------------------
@dataclass
class Run:
    """Everything one run holds; :func:`run_chaos` builds it and always closes it."""

    config: ChaosConfig
    broker: Broker
    receiver: Receiver
    fleet: Fleet
    kafka: Kafka
    catalog: TopicCatalog
    endpoints: list[Endpoint]
    tally: Tally
    report: Report
    positions: dict[str, tuple[int, int]] = field(default_factory=dict)
    #: When producing began (the run's clock for the report) and ended.
    began: float = 0.0
    produced_at: float | None = None
    error: str = ""
    said_at: float = 0.0

    def progress(self) -> int:
        return self.tally.absorb(self.receiver.succeeded)

    def since(self) -> float:
        return round(time.monotonic() - self.began, 1)

    def say(self, what: str) -> None:
        if self.config.say is not None:
            self.config.say(f"{self.since():7.1f} s  {what}")

    async def tick(self) -> None:
        """One step of every wait: restart a worker that died, tell how far the run is."""
        await self.fleet.watch(self.began)
        if time.monotonic() - self.said_at >= self.config.say_every:
            self.said_at = time.monotonic()
            done = self.progress()
            self.say(
                f"delivered {done} of {self.tally.total} ({done / self.tally.total:.0%}), "
                f"{len(self.receiver.requests)} requests, {len(self.fleet.live())} worker(s) up"
                + ("" if self.produced_at else ", producing")
            )


def endpoints_for(config: ChaosConfig) -> list[Endpoint]:
    every = frozenset(marker(n) for n in range(config.events))
    slow = frozenset(marker(n) for n in range(0, config.events, config.slow_every))
    return [
        Endpoint("/fast", "200 at once", every),
        Endpoint("/flaky", f"{config.flaky_share:.0%} fail once (500)", every),
        Endpoint("/slow", f"{config.slow_seconds:g} s, 1 in {config.slow_every} events", slow),
    ]


async def setup_webhooks(run: Run, account: str) -> None:
    """One account, three webhooks; written once, applied by every worker before events."""
    receiver, config = run.receiver, run.config
    receiver.delays["/slow"] = config.slow_seconds
    failing = flaky_events(config.seed, config.events, config.flaky_share)
    receiver.fail_events["/flaky"] = {marker(n): 1 for n in failing}
    hooks: list[dict[str, Any]] = [
        {"id": f"wh_{name}_{account}", "account_id": account, "url": receiver.url(f"/{name}")}
        for name in ("fast", "flaky", "slow")
    ]
    hooks[2]["campaign_id"] = SLOW_CAMPAIGN
    live = run.fleet.live()
    offsets = await run.kafka.put_webhooks(hooks, live[0].worker)
    for slot in live[1:]:
        await slot.worker.wait_applied(offsets)


async def produce(run: Run, account: str) -> None:
    """Every event, in bursts ``burst_gap`` seconds apart (pacing, not a wait for a state),
    each pipelined; keeps each event's partition and offset for the report."""
    config = run.config
    edges = burst_edges(config.events, config.bursts, config.backlog)
    for b in range(config.bursts):
        due = run.began + b * config.burst_gap
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        await produce_burst(run, account, range(edges[b], edges[b + 1]))
    run.produced_at = time.monotonic()
    run.report.produce_seconds = round(run.produced_at - run.began, 1)


def burst_edges(events: int, bursts: int, backlog: float) -> list[int]:
    """Where each burst starts, and the end: the first burst holds ``backlog`` of the
    events, the others share the rest evenly."""
    if bursts == 1:
        return [0, events]
    first = int(events * backlog)
    rest = events - first
    return [0, *(first + rest * b // (bursts - 1) for b in range(bursts))]


async def produce_burst(run: Run, account: str, numbers: range) -> None:
    producer = await run.kafka.producer()
    topic, config = run.catalog.events_messages, run.config
    pending = []
    for n in numbers:
        campaign = {"campaign_id": SLOW_CAMPAIGN} if n % config.slow_every == 0 else {}
        value = input_event(
            "message sent", account, event_id=f"e{n}", message_uid=marker(n), **campaign
        )
        pending.append(await producer.send(topic, key=f"k{n}".encode(), value=orjson.dumps(value)))
    metas: list[RecordMetadata] = await asyncio.gather(*pending)
    for n, meta in zip(numbers, metas, strict=True):
        run.positions[marker(n)] = (meta.partition, meta.offset)


async def wait_progress(run: Run, target: int, timeout: float) -> None:
    """Until ``target`` expected deliveries are in, all are, or ``timeout`` passes (then the
    disruption fires by time): progress spaces disruptions, time bounds the spacing."""
    deadline = time.monotonic() + timeout
    while run.progress() < min(target, run.tally.total) and time.monotonic() < deadline:
        await run.tick()
        await asyncio.sleep(0.25)


async def disrupt(run: Run, step: Planned) -> Done:
    """Carry out one planned disruption; return what happened and when the group recovered."""
    progress = run.progress()
    done = Done(step.kind.value, run.since(), progress, progress / run.tally.total, "broker")
    began = time.monotonic()
    fleet = run.fleet
    if step.kind is Kind.BROKER:
        back = await run.broker.kill_and_restart(step.outage)
        done.note, done.back_after = f"down {step.outage:g} s", back
        return done
    if step.kind is Kind.JOIN:
        down = [s for s in fleet.slots if not s.up]
        slot = down[0] if down else fleet.new_slot()
        done.target, done.note = slot.name, "restarted after a stop" if down else "new worker"
        await fleet.start(slot)
    else:
        slot = fleet.pick(step.pick)
        done.target = slot.name
        if step.kind is Kind.KILL:
            slot.worker.kill()
            slot.up = False
            done.note = "restarted at once"
            await fleet.start(slot)
        else:
            done.note = await fleet.terminate(slot)
            if not step.restart and fleet.live():
                done.note += ", left down"
                return done
            done.note += ", restarted"
            await fleet.start(slot)
    done.back_after = time.monotonic() - began
    return done


async def drain(run: Run) -> str:
    """Wait until every expected delivery is in: "drained", or "stalled" (nothing new for
    ``stall_seconds``) or "timed out" (``deadline`` after the last event was produced)."""
    deadline = (run.produced_at or time.monotonic()) + run.config.deadline
    last, moved = run.progress(), time.monotonic()
    while last < run.tally.total:
        now = time.monotonic()
        if now > deadline:
            return f"timed out after {run.config.deadline:g} s"
        if now - moved > run.config.stall_seconds:
            return f"stalled: nothing new for {run.config.stall_seconds:g} s"
        await run.tick()
        await asyncio.sleep(0.25)
        current = run.progress()
        if current > last:
            last, moved = current, time.monotonic()
    return "drained"


async def count_records(run: Run, topics: Iterable[str]) -> int | None:
    """Records on the run's topics (None when a scan could not read them all)."""
    settings = Settings(broker=f"kafka://{run.broker.address}")
    total = 0
    for topic in topics:
        scan = await scan_topic(settings, topic, lambda _k, _v: 1, 10**8, timeout=60)
        if scan.truncated:
            return None
        total += len(scan.items)
    return total


async def committed_offsets(run: Run) -> dict[int, int]:
    """The group's committed offsets on the events topic, per partition (a diagnostic: empty
    when the broker does not answer). Read as a consumer of the group that never joins it."""
    topic = run.catalog.events_messages
    consumer = AIOKafkaConsumer(
        bootstrap_servers=run.broker.address,
        group_id=run.fleet.env["HOOKSTREAM_APP_ID"],
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        found = {}
        for partition in range(run.config.partitions):
            offset = await consumer.committed(TopicPartition(topic, partition))
            if offset is not None:
                found[partition] = offset
        return found
    except KafkaError:
        return {}
    finally:
        await consumer.stop()


async def count(run: Run) -> None:
    """Fill the report: per endpoint figures, ids, dead letters, where lost events are."""
    report, tally, catalog = run.report, run.tally, run.catalog
    report.committed = await committed_offsets(run)
    tally.absorb(run.receiver.succeeded)
    bad = mismatched(ids_per_pair(run.receiver.requests))
    answered_ids = Counter(path for path, _ in answered_pairs(run.receiver.succeeded))
    for e in run.endpoints:
        lost = [locate(run, e.path, m) for m in tally.lost(e.path)]
        report.endpoints.append(
            EndpointFigures(
                path=e.path,
                behaviour=e.behaviour,
                expected=len(e.markers),
                delivered=len(e.markers) - len(lost),
                ids_answered=answered_ids[e.path],
                lost=len(lost),
                committed_past=sum(m.committed_past for m in lost),
                duplicates=tally.duplicates(e.path),
                requests=run.receiver.count(e.path),
                mismatched_ids=len(bad.get(e.path, [])),
                unexpected=tally.unexpected[e.path],
            )
        )
        report.missing += lost[: MISSING_SHOWN - len(report.missing)]
    report.dead_letters = await count_records(run, [catalog.deliveries_failed])
    report.parked_records = await count_records(run, [catalog.deliveries_parked])
    tiers = [catalog.retry(t) for t in range(1, catalog.retry_tiers + 1)]
    report.retry_records = await count_records(run, tiers)


def locate(run: Run, path: str, lost_marker: str) -> Missing:
    """A lost event's input record, beside its partition's committed offset (-1, -1 for an
    event a run aborted before producing it)."""
    partition, offset = run.positions.get(lost_marker, (-1, -1))
    return Missing(path, lost_marker, partition, offset, run.report.committed.get(partition))


async def drive(run: Run) -> None:
    """Start the group, produce in the background, disrupt on schedule, drain."""
    config, report, fleet = run.config, run.report, run.fleet
    for _ in range(config.workers):
        fleet.new_slot()
    await asyncio.gather(*(fleet.start(s) for s in fleet.slots))
    account = f"acct_chaos_{uuid.uuid4().hex[:8]}"
    await setup_webhooks(run, account)
    run.began = time.monotonic()
    producing = asyncio.create_task(produce(run, account))
    try:
        await disrupt_on_schedule(run)
        await producing
    finally:
        producing.cancel()
    report.drain = await drain(run)
    if report.drain == "drained" and report.disruptions:
        report.drain_seconds_after_last_disruption = round(
            run.since() - report.disruptions[-1].at, 1
        )
    report.workers_at_end = len(fleet.live())


async def disrupt_on_schedule(run: Run) -> None:
    """Each planned disruption once progress reaches its point (or ``max_gap`` passed)."""
    steps = plan(run.config.seed, run.config.disruptions, run.broker.killable)
    run.report.disruptions_planned = len(steps)
    for step in steps:
        await wait_progress(run, int(step.at_progress * run.tally.total), run.config.max_gap)
        if run.progress() >= run.tally.total:
            break  # drained before this point: the rest would disrupt nothing
        run.say(f"{step.kind.value} (at {run.progress()} delivered)")
        run.report.disruptions.append(await disrupt(run, step))


async def run_chaos(config: ChaosConfig) -> tuple[Report, Run]:
    """One chaos run; everything it started is stopped on return, failure or cancellation.

    Returns the judged report and the run (for the logs of a failed one). A run that cannot
    go on (a worker that never gets ready, a broker that does not come back) is a failure of
    the report with the error's traceback in ``Run.error``, counted as far as it got."""
    began = time.monotonic()
    config.workdir.mkdir(parents=True, exist_ok=True)
    broker = await open_broker(config)
    receiver, run = Receiver(), None
    try:
        await receiver.start()
        run = new_run(config, broker, receiver)
        try:
            await drive(run)
        except Exception as exc:  # reported as the run's failure, with its traceback
            run.report.failures.append(f"aborted: {type(exc).__name__}: {exc}")
            run.error = traceback.format_exc()
        except asyncio.CancelledError:
            # Ctrl-C or SIGTERM: count what was reached, so an interrupted run still says
            # where it was (the caller's cancellation is spent here, on purpose).
            run.report.failures.append("interrupted")
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
        finally:
            run.report.workers_started = run.fleet.started
            run.report.unplanned_exits = run.fleet.unplanned
            run.fleet.close()
        if run.positions:
            try:
                await count(run)
            except Exception as exc:  # the figures so far stand; the error is reported
                run.report.failures.append(f"counting failed: {type(exc).__name__}: {exc}")
                run.error += traceback.format_exc()
        run.report.total_seconds = round(time.monotonic() - began, 1)
        run.report.judge()
        return run.report, run
    finally:
        if run is not None:
            await run.kafka.close()
        await receiver.stop()
        broker.close()


def new_run(config: ChaosConfig, broker: Broker, receiver: Receiver) -> Run:
    """The run's parts: one env for the group, its topics, the endpoints, an empty report."""
    env = worker_settings(broker.address, config.workdir, config.partitions)
    catalog = TopicCatalog(env["HOOKSTREAM_TOPIC_PREFIX"], config.partitions, 3)
    endpoints = endpoints_for(config)
    report = Report(
        engine=broker.engine,
        broker=broker.address,
        seed=config.seed,
        events=config.events,
        partitions=config.partitions,
        bursts=config.bursts,
        settings=overrides(env),
        workers_at_start=config.workers,
    )
    return Run(
        config=config,
        broker=broker,
        receiver=receiver,
        fleet=Fleet(env, config.workdir),
        kafka=Kafka(broker.address, catalog),
        catalog=catalog,
        endpoints=endpoints,
        tally=Tally({e.path: e.markers for e in endpoints}),
        report=report,
    )
