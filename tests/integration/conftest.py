"""Integration fixtures: one real broker per test session, real workers, real receivers.

Broker, in order: ``HOOKSTREAM_TEST_BROKER`` (host:port of a running broker), else a Kafka
container through testcontainers where a Docker engine answers, else the embedded Tansu broker.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.kafka.embedded_broker import free_port, start_broker
from app.kafka.topics import TopicCatalog
from app.settings import Settings
from tests.integration.harness import Kafka, Receiver, WorkerProcess, worker_env


def _docker_engine_answers() -> bool:
    try:
        import docker  # type: ignore[import-untyped]

        docker.from_env(timeout=3).ping()
    except Exception:
        return False
    return True


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    named = os.environ.get("HOOKSTREAM_TEST_BROKER")
    if named:
        yield named.split("://", 1)[-1]
        return
    if _docker_engine_answers():
        from testcontainers.kafka import KafkaContainer  # type: ignore[import-untyped]

        with KafkaContainer() as kafka:
            yield kafka.get_bootstrap_server()
        return
    port = free_port()
    log = tmp_path_factory.mktemp("broker") / "broker.log"
    process = start_broker(port, log)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


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


@pytest.fixture
async def pipeline(module_pipeline: Pipeline) -> AsyncIterator[Pipeline]:
    await module_pipeline.worker.wait_ready()
    kafka = Kafka(module_pipeline.kafka.broker, module_pipeline.catalog)
    yield Pipeline(module_pipeline.worker, kafka, module_pipeline.catalog, module_pipeline.settings)
    await kafka.close()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = Receiver()
    await server.start()
    yield server
    await server.stop()
