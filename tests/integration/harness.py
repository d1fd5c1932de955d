"""Test harness: worker processes, a scripted loopback receiver, and Kafka read/write helpers.

Everything waits on conditions with a deadline; nothing sleeps to "wait long enough".
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import RecordMetadata

from app.kafka.brokers.net import free_port
from app.kafka.metadata import topic_partitions
from app.kafka.topics import TopicCatalog

HOOKSTREAM = str(Path(sys.executable).parent / "hookstream")
#: A small test broker: the JIT's first tier only (the suite is short; C2 compiling on a
#: shared 2-core machine slowed the workers beside it).
TEST_KAFKA_JVM_OPTS = os.environ.get(
    "HOOKSTREAM_KAFKA_JVM_OPTS",
    "-Xms256m -Xmx768m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -XX:+ExitOnOutOfMemoryError "
    "-XX:-UsePerfData",
)


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


async def wait_until(
    check: Callable[[], Any], timeout: float, what: str, interval: float = 0.05
) -> Any:
    """Poll ``check`` (sync or async) until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(interval)


# -- worker processes -----------------------------------------------------------------------
async def fetch_health(web_port: int) -> dict[str, Any] | None:
    """A worker's /health document once it is ready (200), else None."""
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(
                f"http://127.0.0.1:{web_port}/health", timeout=aiohttp.ClientTimeout(total=2)
            ) as resp,
        ):
            return dict(await resp.json()) if resp.status == 200 else None
    except (aiohttp.ClientError, TimeoutError):
        return None


@dataclass
class WorkerProcess:
    """One ``hookstream worker`` subprocess with its own web port and log file."""

    env: dict[str, str]
    log_path: Path
    web_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        self.process = subprocess.Popen(
            [HOOKSTREAM, "worker", "--web-port", str(self.web_port)],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    @property
    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}/health"

    async def health(self) -> dict[str, Any] | None:
        return await fetch_health(self.web_port)

    async def wait_ready(self, timeout: float = 90.0) -> dict[str, Any]:
        async def _ready() -> dict[str, Any] | None:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"worker exited with {self.process.returncode}:\n{self.log()}")
            return await self.health()

        result: dict[str, Any] = await wait_until(_ready, timeout, "worker ready", interval=0.2)
        return result

    async def wait_applied(self, offsets: dict[int, int], timeout: float = 30.0) -> None:
        """Wait until the worker's config view has applied the given webhook offsets."""

        async def _applied() -> bool:
            health = await self.health()
            if health is None:
                return False
            applied = {int(p): o for p, o in health["webhooks_applied"].items()}
            return all(applied.get(p, 0) > o for p, o in offsets.items())

        await wait_until(_applied, timeout, f"config view to apply {offsets}", interval=0.1)

    async def metrics_text(self) -> str:
        """The worker's /metrics page ("" when it does not answer)."""
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.get(
                    f"http://127.0.0.1:{self.web_port}/metrics",
                    timeout=aiohttp.ClientTimeout(total=5),
                ) as resp,
            ):
                return await resp.text()
        except (aiohttp.ClientError, TimeoutError):
            return ""

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-20000:] if self.log_path.exists() else ""


def worker_env(broker: str, tmp: Path, **overrides: str) -> dict[str, str]:
    """Environment of a test worker: unique topics and consumer group, loopback allowed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKSTREAM_")}
    env.update(
        HOOKSTREAM_BROKER=f"kafka://{broker}",
        HOOKSTREAM_TOPIC_PREFIX=unique("t") + ".",
        HOOKSTREAM_APP_ID=unique("hookstream-test-"),
        HOOKSTREAM_ALLOW_HTTP="true",
        HOOKSTREAM_ALLOW_PRIVATE_NETWORKS="true",
        HOOKSTREAM_RETRY_DELAYS="0.3,0.3,0.3",
        HOOKSTREAM_REQUEST_TIMEOUT="5",
        HOOKSTREAM_PARTITIONS="4",
        HOOKSTREAM_DATA_DIR=str(tmp / "data"),
        # A restarted worker waits this long for the broker to expire its old membership when
        # it left none (SIGKILL; every stop on the embedded broker): short keeps the suite fast.
        HOOKSTREAM_BROKER_SESSION_TIMEOUT="6",
    )
    env.update(overrides)
    return env


@dataclass
class BrokerProcess:
    """``hookstream broker --engine kafka`` of a test's own, on its own port and data dir."""

    data_dir: Path
    log_path: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self, timeout: float = 90.0) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        self.process = subprocess.Popen(
            [
                HOOKSTREAM,
                "broker",
                "--engine",
                "kafka",
                "--port",
                str(self.port),
                "--data-dir",
                str(self.data_dir),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "HOOKSTREAM_KAFKA_JVM_OPTS": TEST_KAFKA_JVM_OPTS},
        )
        await wait_until(
            lambda: (
                "(KRaft) on" in self.log_path.read_text(errors="replace")
                or self.process is None
                or self.process.poll() is not None
            ),
            timeout,
            "the broker to serve",
            interval=0.1,
        )
        assert self.process.poll() is None, self.log_path.read_text(errors="replace")[-3000:]

    def kill(self) -> None:
        """SIGKILL the broker's JVM (the child of ``hookstream broker``) and the command."""
        assert self.process is not None
        for pid in _children(self.process.pid):
            os.kill(pid, signal.SIGKILL)
        self.process.kill()
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


# -- Kafka ----------------------------------------------------------------------------------
class Kafka:
    """Produce to and read from one test deployment's topics."""

    def __init__(self, broker: str, catalog: TopicCatalog) -> None:
        self.broker = broker
        self.catalog = catalog
        self._producer: AIOKafkaProducer | None = None

    async def producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            self._producer = AIOKafkaProducer(
                bootstrap_servers=self.broker, acks="all", linger_ms=5
            )
            await self._producer.start()
        return self._producer

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def send(
        self, topic: str, value: bytes | None, key: bytes | None = None
    ) -> RecordMetadata:
        producer = await self.producer()
        return await (await producer.send(topic, key=key, value=value))

    async def send_json(self, topic: str, value: Any, key: str | None = None) -> RecordMetadata:
        return await self.send(topic, orjson.dumps(value), key.encode() if key else None)

    async def send_json_many(self, topic: str, items: list[tuple[str, Any]]) -> None:
        """Produce (key, value) pairs pipelined, then wait for every acknowledgement."""
        producer = await self.producer()
        pending = [
            await producer.send(topic, key=key.encode(), value=orjson.dumps(value))
            for key, value in items
        ]
        await asyncio.gather(*pending)

    async def read(
        self,
        topic: str,
        predicate: Callable[[dict[str, Any]], bool] = lambda _: True,
        count: int = 1,
        timeout: float = 30.0,
    ) -> list[dict[str, Any]]:
        """Read ``topic`` from the start until ``count`` JSON values match ``predicate``."""
        consumer = AIOKafkaConsumer(bootstrap_servers=self.broker, enable_auto_commit=False)
        await consumer.start()
        found: list[dict[str, Any]] = []
        try:
            partitions = await topic_partitions(consumer, topic)
            tps = [TopicPartition(topic, p) for p in partitions]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            deadline = time.monotonic() + timeout
            while len(found) < count:
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"found {len(found)} of {count} matching records on {topic}"
                    )
                batches = await consumer.getmany(timeout_ms=200)
                for records in batches.values():
                    for record in records:
                        if record.value is None:
                            continue
                        try:
                            value = orjson.loads(record.value)
                        except orjson.JSONDecodeError:
                            continue  # other tests write garbage on purpose; it matches nothing
                        if predicate(value):
                            found.append(value)
        finally:
            await consumer.stop()
        return found

    async def put_webhooks(
        self, configs: list[dict[str, Any]], worker: WorkerProcess
    ) -> dict[int, int]:
        """Write configs and wait until ``worker``'s view has them (read-your-write)."""
        producer = await self.producer()
        pending = [
            await producer.send(self.catalog.webhooks, key=c["id"].encode(), value=orjson.dumps(c))
            for c in configs
        ]
        last: dict[int, int] = {}
        for future in pending:
            meta = await future
            last[meta.partition] = max(last.get(meta.partition, -1), meta.offset)
        await worker.wait_applied(last)
        return last


# -- receiver -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Received:
    method: str
    path: str
    query_string: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        return orjson.loads(self.body)


class Receiver:
    """A real aiohttp server on loopback: records requests, answers per scripted path."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        # Indexes kept as requests arrive, so a wait that polls them costs nothing (scanning
        # 20,000 requests every 50 ms took CPU from the worker under test).
        self._by_path: dict[str, list[Received]] = {}
        #: Every (path, webhook-id) received: one per delivery, however often it was sent.
        self.pairs: set[tuple[str, str]] = set()
        #: The webhook-ids received at each path.
        self.ids: dict[str, set[str]] = {}
        self._scripts: dict[str, list[int]] = {}
        self.bodies: dict[str, bytes] = {}
        self.delays: dict[str, float] = {}  # a slow endpoint: seconds before it answers
        self.headers: dict[str, dict[str, str]] = {}  # extra response headers per path
        #: A server that sheds load: 503 while more than N requests to the path are in flight.
        self.shed_above: dict[str, int] = {}
        self.in_flight: dict[str, int] = {}
        self.peak_in_flight: dict[str, int] = {}
        self.shed: dict[str, int] = {}
        #: Fail chosen events: path -> {payload "message_uid" -> how many more times to 500}.
        self.fail_events: dict[str, dict[str, int]] = {}
        #: Every (path, body) answered 200, in the order the answers were given.
        self.succeeded: list[Received] = []
        self._runner: web.AppRunner | None = None
        self.port = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def script(self, path: str, statuses: list[int]) -> None:
        """Answer the next requests to ``path`` with these statuses, then 200."""
        self._scripts[path] = list(statuses)

    async def _handle(self, request: web.Request) -> web.Response:
        path = request.path
        received = Received(
            method=request.method,
            path=path,
            query_string=request.rel_url.raw_query_string,
            headers=dict(request.headers),
            body=await request.read(),
            at=time.time(),
        )
        self.requests.append(received)
        self._by_path.setdefault(path, []).append(received)
        delivery_id = received.headers.get("webhook-id")
        if delivery_id is not None:
            self.pairs.add((path, delivery_id))
            self.ids.setdefault(path, set()).add(delivery_id)
        in_flight = self.in_flight[path] = self.in_flight.get(path, 0) + 1
        self.peak_in_flight[path] = max(self.peak_in_flight.get(path, 0), in_flight)
        try:
            if path in self.delays:
                await asyncio.sleep(self.delays[path])
            if path in self.shed_above and in_flight > self.shed_above[path]:
                self.shed[path] = self.shed.get(path, 0) + 1
                return web.Response(status=503, text="overloaded")
        finally:
            self.in_flight[path] -= 1
        statuses = self._scripts.get(path)
        status = statuses.pop(0) if statuses else 200
        failing = self.fail_events.get(path)
        if failing and status == 200:
            try:
                body = orjson.loads(received.body)
            except orjson.JSONDecodeError:
                body = None
            items = body if isinstance(body, list) else [body]  # a batch fails if one item does
            for marker in [i.get("message_uid") for i in items if isinstance(i, dict)]:
                if failing.get(marker, 0) > 0:
                    failing[marker] -= 1
                    status = 500
        if status == 200:
            self.succeeded.append(received)
        body = self.bodies.get(path, f"answered {status}".encode())
        return web.Response(status=status, body=body, headers=self.headers.get(path))

    async def start(self) -> None:
        server = web.Application()
        server.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(server, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def at(self, path: str) -> list[Received]:
        return list(self._by_path.get(path, ()))

    def count(self, *paths: str) -> int:
        """Requests received at these paths (repeats included)."""
        return sum(len(self._by_path.get(path, ())) for path in paths)

    async def wait_for(self, path: str, count: int = 1, timeout: float = 30.0) -> list[Received]:
        await wait_until(
            lambda: self.count(path) >= count, timeout, f"{count} request(s) at {path}"
        )
        return self.at(path)
