"""Integration fixtures: one real broker per test session, real workers, real receivers.

Broker, in order: ``HOOKSTREAM_TEST_BROKER`` (host:port of a running broker), else a Kafka
container through testcontainers where a Docker engine answers, else the local broker of
``HOOKSTREAM_TEST_ENGINE``: ``tansu`` (the embedded broker, the default) or ``kafka`` (Apache
Kafka 4.4 from Maven jars). ``make test`` runs the suite once per engine it can start.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.kafka.brokers import Engine, start_broker
from app.kafka.brokers.net import free_port
from app.kafka.topics import TopicCatalog
from app.settings import Settings
from tests.integration.harness import (
    TEST_KAFKA_JVM_OPTS,
    Kafka,
    Receiver,
    WorkerProcess,
    worker_env,
)


def _docker_engine_answers() -> bool:
    try:
        import docker  # type: ignore[import-untyped]

        docker.from_env(timeout=3).ping()
    except Exception:
        return False
    return True


def session_engine() -> Engine | None:
    """The engine of the session's broker; None for a broker named by HOOKSTREAM_TEST_BROKER."""
    if os.environ.get("HOOKSTREAM_TEST_BROKER"):
        return None
    if _docker_engine_answers():
        return Engine.KAFKA
    return Engine(os.environ.get("HOOKSTREAM_TEST_ENGINE", Engine.TANSU.value))


def pytest_report_header() -> str:
    engine = session_engine()
    named = os.environ.get("HOOKSTREAM_TEST_BROKER", "")
    return f"hookstream test broker: {engine.value if engine else named}"


@pytest.fixture(scope="session")
def engine() -> Engine | None:
    return session_engine()


def start_test_broker(engine: Engine, directory: Path) -> tuple[subprocess.Popen[bytes], int]:
    """A broker of ``engine`` with its data and log in ``directory``, and its port."""
    port = free_port()
    process = start_broker(
        engine,
        port,
        directory / "data",
        log_path=directory / "broker.log",
        jvm_opts=TEST_KAFKA_JVM_OPTS,
    )
    return process, port


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory, engine: Engine | None) -> Iterator[str]:
    named = os.environ.get("HOOKSTREAM_TEST_BROKER")
    if named:
        yield named.split("://", 1)[-1]
        return
    if _docker_engine_answers():
        from testcontainers.kafka import KafkaContainer  # type: ignore[import-untyped]

        with KafkaContainer() as kafka:
            yield kafka.get_bootstrap_server()
        return
    assert engine is not None
    process, port = start_test_broker(engine, tmp_path_factory.mktemp("broker"))
    try:
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)


@dataclass
class Pipeline:
    """A running deployment: its worker, its topics, and a Kafka client for them."""

    worker: WorkerProcess
    kafka: Kafka
    catalog: TopicCatalog
    settings: Settings


def make_pipeline(broker: str, tmp: Path, **overrides: str) -> Pipeline:
    env = worker_env(broker, tmp, **overrides)
    settings = Settings(
        topic_prefix=env["HOOKSTREAM_TOPIC_PREFIX"],
        partitions=int(env["HOOKSTREAM_PARTITIONS"]),
        retry_delays=env["HOOKSTREAM_RETRY_DELAYS"],  # type: ignore[arg-type]
    )
    catalog = TopicCatalog.from_settings(settings)
    worker = WorkerProcess(env=env, log_path=tmp / "worker.log")
    return Pipeline(worker, Kafka(broker, catalog), catalog, settings)


@contextmanager
def started_pipeline(broker: str, tmp: Path, **overrides: str) -> Iterator[Pipeline]:
    """A deployment with its worker process started (not yet ready); stopped on exit."""
    pipeline = make_pipeline(broker, tmp, **overrides)
    pipeline.worker.start()
    try:
        yield pipeline
    finally:
        pipeline.worker.stop()


@pytest.fixture(scope="module")
def module_pipeline(broker: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    """One worker shared by a module's tests (each test uses its own accounts and webhooks)."""
    with started_pipeline(broker, tmp_path_factory.mktemp("pipeline")) as pipeline:
        yield pipeline


@pytest.fixture
async def fresh_pipeline(broker: str, tmp_path: Path) -> AsyncIterator[Pipeline]:
    """A deployment of the test's own, ready (for tests that kill and restart its worker)."""
    with started_pipeline(broker, tmp_path) as pipeline:
        await pipeline.worker.wait_ready()
        yield pipeline
        await pipeline.kafka.close()


@asynccontextmanager
async def with_own_client(shared: Pipeline) -> AsyncIterator[Pipeline]:
    """A module's shared worker, ready, with a Kafka client of the calling test's event loop
    (a producer made in another test's loop would hang), closed after it."""
    await shared.worker.wait_ready()
    kafka = Kafka(shared.kafka.broker, shared.catalog)
    try:
        yield Pipeline(shared.worker, kafka, shared.catalog, shared.settings)
    finally:
        await kafka.close()


@pytest.fixture
async def pipeline(module_pipeline: Pipeline) -> AsyncIterator[Pipeline]:
    async with with_own_client(module_pipeline) as own:
        yield own


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = Receiver()
    await server.start()
    yield server
    await server.stop()
