"""Apache Kafka 4.4 in KRaft mode, one node (broker + controller), run from Maven Central jars.

What hookstream's users run, available on any machine with a JDK 17+ and Maven: the jars of
``org.apache.kafka:kafka_2.13:4.4.0`` are fetched once with ``mvn dependency:copy-dependencies``
(the pom ships beside this module) into ``HOOKSTREAM_KAFKA_HOME`` (default
``~/.cache/hookstream/kafka-4.4.0``), and the storage directory is formatted on first use, so
data survives a restart of the broker on the same ``--data-dir``.

The broker is configured for one machine: it listens on 127.0.0.1 only, internal topics have
one replica and few partitions (the offsets topic's default 50 partitions made the first group
join create 50 logs), ``group.initial.rebalance.delay.ms`` is 0 (no group of workers to wait
for), the log cleaner looks for work every second, and ``auto.create.topics.enable`` is false:
hookstream creates every topic itself with its config, as a production cluster requires.

Measured here: the port opens 2.7 s after the JVM starts, and answers the first request on
that very connection within 10 ms, so a port that accepts is a broker that serves.
"""

from __future__ import annotations

import base64
import fcntl
import os
import re
import shlex
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

from app.kafka.brokers.net import free_port, port_accepts, wait_for_port
from app.model.errors import HookstreamError

KAFKA_VERSION = "4.4.0"
MIN_JAVA = 17
RESOURCES = Path(__file__).resolve().parent / "apache"
#: A small broker: one node on a shared 2-core machine. Serial GC keeps GC threads off the
#: other processes' cores; HOOKSTREAM_KAFKA_JVM_OPTS replaces all of it.
DEFAULT_JVM_OPTS = (
    "-Xms256m -Xmx768m -XX:+UseSerialGC -XX:+ExitOnOutOfMemoryError -XX:-UsePerfData "
    "-Djava.awt.headless=true"
)
_COMPLETE = ".complete"


class BrokerUnavailable(HookstreamError):
    """This machine cannot run the broker; the message says what is missing and how to fix it."""


@dataclass(frozen=True)
class KafkaInstall:
    java: str
    libs: Path

    @property
    def classpath(self) -> str:
        return str(self.libs / "*")


def default_home() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "hookstream" / f"kafka-{KAFKA_VERSION}"


def find_java() -> str:
    """The ``java`` to run Kafka with (``JAVA_HOME`` first), checked to be 17 or newer."""
    home = os.environ.get("JAVA_HOME")
    java = (
        str(Path(home) / "bin" / "java")
        if home and (Path(home) / "bin" / "java").exists()
        else None
    )
    java = java or shutil.which("java")
    if java is None:
        raise BrokerUnavailable(
            f"no Java found: Apache Kafka {KAFKA_VERSION} needs a JDK {MIN_JAVA}+ "
            "(apt-get install openjdk-17-jdk-headless, or set JAVA_HOME)"
        )
    shown = subprocess.run(  # noqa: S603 - the machine's java, fixed arguments
        [java, "-version"], capture_output=True, text=True, check=False
    ).stderr
    match = re.search(r'version "(\d+)(?:\.(\d+))?', shown)
    major = int(match.group(1)) if match else 0
    if major == 1 and match and match.group(2):  # "1.8.0_x" style
        major = int(match.group(2))
    if major < MIN_JAVA:
        raise BrokerUnavailable(
            f"{java} is Java {major or 'of unknown version'}: Apache Kafka {KAFKA_VERSION} needs "
            f"{MIN_JAVA}+ (apt-get install openjdk-17-jdk-headless, or set JAVA_HOME)"
        )
    return java


def ensure_jars(home: Path) -> Path:
    """The folder of Kafka's jars under ``home``, fetched with Maven the first time."""
    libs = home / "libs"
    if (libs / _COMPLETE).exists():
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerUnavailable(
            f"no Maven found: hookstream fetches Apache Kafka {KAFKA_VERSION}'s jars with it once "
            "(apt-get install maven), or set HOOKSTREAM_KAFKA_HOME to a folder that has libs/"
        )
    home.mkdir(parents=True, exist_ok=True)
    with open(home / ".lock", "w") as lock:  # one fetch at a time, however many processes ask
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (libs / _COMPLETE).exists():
            return libs
        shutil.copy(RESOURCES / "pom.xml", home / "pom.xml")
        partial = home / "libs.partial"
        shutil.rmtree(partial, ignore_errors=True)
        fetched = subprocess.run(  # noqa: S603 - Maven with our own pom, fixed arguments
            [
                mvn,
                "-q",
                "-B",
                "-f",
                str(home / "pom.xml"),
                "dependency:copy-dependencies",
                f"-DoutputDirectory={partial}",
                "-DincludeScope=runtime",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if fetched.returncode != 0:
            lines = re.sub(r"\x1b\[[0-9;]*m", "", fetched.stdout + fetched.stderr).splitlines()
            errors = [x for x in lines if "ERROR" in x and x.replace("[ERROR]", "").strip()]
            first = (errors or [line for line in lines if line.strip()] or ["no output"])[0]
            raise BrokerUnavailable(f"mvn could not fetch Apache Kafka {KAFKA_VERSION}: {first}")
        (partial / _COMPLETE).write_text(KAFKA_VERSION)
        shutil.rmtree(libs, ignore_errors=True)
        partial.rename(libs)
    return libs


def prepare(home: Path | None = None) -> KafkaInstall:
    """Java and the jars, or :class:`BrokerUnavailable` saying what is missing."""
    java = find_java()
    return KafkaInstall(java, ensure_jars(home or default_home()))


def server_properties(port: int, controller_port: int, data_dir: Path) -> str:
    return f"""# written by hookstream at every start (app/kafka/brokers/apache.py)
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{controller_port}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs={data_dir / "logs"}
num.network.threads=2
num.io.threads=4
num.partitions=2
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
share.coordinator.state.topic.num.partitions=4
group.initial.rebalance.delay.ms=0
log.cleaner.backoff.ms=1000
"""


def _cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, base64url without padding (as ``random-uuid``)."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not text.startswith("-"):
            return text


def _controller_port(data_dir: Path) -> int:
    """The controller's port: the one of the previous run when it is free, else a new one."""
    remembered = data_dir / "controller.port"
    if remembered.exists():
        port = int(remembered.read_text().strip() or 0)
        if port and not port_accepts(port):
            return port
    port = free_port()
    remembered.write_text(str(port))
    return port


def configure(install: KafkaInstall, port: int, data_dir: Path) -> Path:
    """Write ``server.properties`` for this start and format the storage on first use."""
    data_dir.mkdir(parents=True, exist_ok=True)
    properties = data_dir / "server.properties"
    properties.write_text(server_properties(port, _controller_port(data_dir), data_dir))
    if not (data_dir / "logs" / "meta.properties").exists():
        formatted = subprocess.run(  # noqa: S603 - Kafka's own storage tool, fixed arguments
            [
                install.java,
                "-cp",
                install.classpath,
                f"-Dlog4j2.configurationFile={RESOURCES / 'log4j2.properties'}",
                "kafka.tools.StorageTool",
                "format",
                "-t",
                _cluster_id(),
                "-c",
                str(properties),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if formatted.returncode != 0:
            raise BrokerUnavailable(
                f"formatting {data_dir} failed: {(formatted.stdout + formatted.stderr)[-300:]}"
            )
    return properties


def broker_command(install: KafkaInstall, properties: Path, jvm_opts: str | None) -> list[str]:
    return [
        install.java,
        *shlex.split(jvm_opts or DEFAULT_JVM_OPTS),
        f"-Dlog4j2.configurationFile={RESOURCES / 'log4j2.properties'}",
        "-cp",
        install.classpath,
        "kafka.Kafka",
        str(properties),
    ]


def start_broker(
    port: int,
    data_dir: Path,
    log_path: Path | None = None,
    home: Path | None = None,
    jvm_opts: str | None = None,
    timeout: float = 90.0,
) -> subprocess.Popen[bytes]:
    """Start the broker in the background; return once its port accepts (it then serves)."""
    install = prepare(home)
    command = broker_command(install, configure(install, port, data_dir), jvm_opts)
    out = open(log_path, "ab") if log_path is not None else subprocess.DEVNULL  # noqa: SIM115
    process = subprocess.Popen(  # noqa: S603
        command,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # a Ctrl-C at the terminal is for `hookstream run` to order
    )
    try:
        wait_for_port(port, timeout=timeout)
    except TimeoutError:
        process.kill()
        raise
    if process.poll() is not None:
        raise RuntimeError(f"Apache Kafka exited with code {process.returncode}; see {log_path}")
    return process


def missing(home: Path | None = None) -> str | None:
    """Why this machine cannot run the broker (no JDK 17+, or neither jars nor Maven), or None."""
    try:
        find_java()
    except BrokerUnavailable as exc:
        return str(exc)
    if not ((home or default_home()) / "libs" / _COMPLETE).exists() and shutil.which("mvn") is None:
        return (
            f"no Maven found to fetch Apache Kafka {KAFKA_VERSION}'s jars (apt-get install maven)"
        )
    return None


if __name__ == "__main__":  # python -m app.kafka.brokers.apache: can this machine run it?
    import sys

    home_env = os.environ.get("HOOKSTREAM_KAFKA_HOME")
    reason = missing(Path(home_env) if home_env else None)
    print(reason or "ok")
    sys.exit(1 if reason else 0)
