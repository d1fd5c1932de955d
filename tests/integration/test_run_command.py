"""``hookstream run`` (what ``make run`` starts): SIGTERM, or a Ctrl-C at its terminal, stops
its worker and broker too, the worker first."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

from app.kafka.brokers.net import free_port
from tests.integration.harness import HOOKSTREAM, fetch_health, unique, wait_until


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


async def _run_and_stop(tmp_path: Path, stop: Callable[[subprocess.Popen[bytes]], None]) -> str:
    """Start ``hookstream run`` in a session of its own (as a terminal would), stop it with
    ``stop`` once ready, check that its worker and broker are gone, and return its output."""
    broker_port, web_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKSTREAM_")}
    env.update(
        HOOKSTREAM_TOPIC_PREFIX=unique("run.") + ".",
        HOOKSTREAM_APP_ID=unique("run-"),
        HOOKSTREAM_DATA_DIR=str(tmp_path / "data"),
    )
    with open(tmp_path / "run.log", "wb") as log:
        run = subprocess.Popen(
            [HOOKSTREAM, "run", "--broker-port", str(broker_port), "--web-port", str(web_port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            await wait_until(lambda: fetch_health(web_port), 90, "hookstream run to be ready", 0.2)
            assert _listening(broker_port)
            stop(run)
            await wait_until(lambda: run.poll() is not None, 40, "hookstream run to exit", 0.1)
            assert not _listening(web_port), "the worker outlived hookstream run"
            assert not _listening(broker_port), "the broker outlived hookstream run"
        finally:
            if run.poll() is None:
                run.kill()
                run.wait()
    return (tmp_path / "run.log").read_text(errors="replace")


async def test_sigterm_stops_the_worker_and_the_embedded_broker_it_started(
    tmp_path: Path,
) -> None:
    await _run_and_stop(tmp_path, lambda run: run.send_signal(signal.SIGTERM))


async def test_ctrl_c_stops_the_worker_before_the_broker_without_errors(tmp_path: Path) -> None:
    # A terminal's Ctrl-C is a SIGINT to its whole foreground process group.
    output = await _run_and_stop(tmp_path, lambda run: os.killpg(run.pid, signal.SIGINT))
    noisy = [line for line in output.splitlines() if "[ERROR]" in line or "[WARNING]" in line]
    assert noisy == [], "\n".join(noisy[:20])
