"""The local brokers hookstream can start: the embedded Tansu (zero dependencies, memory only)
and Apache Kafka 4.4 from Maven jars (what users run; data on disk).

``hookstream broker``, ``hookstream run``, the test fixtures and the benchmark all start one
through :func:`start_broker`, by engine name.
"""

from __future__ import annotations

import subprocess
from enum import StrEnum
from pathlib import Path


class Engine(StrEnum):
    TANSU = "tansu"
    KAFKA = "kafka"


def start_broker(
    engine: Engine,
    port: int,
    data_dir: Path,
    log_path: Path | None = None,
    kafka_home: Path | None = None,
    jvm_opts: str | None = None,
) -> subprocess.Popen[bytes]:
    """Start a broker of ``engine`` in the background; return once it serves on ``port``."""
    if engine is Engine.KAFKA:
        from app.kafka.brokers import apache

        return apache.start_broker(port, data_dir, log_path, kafka_home, jvm_opts)
    from app.kafka.brokers import tansu

    return tansu.start_broker(port, log_path)
