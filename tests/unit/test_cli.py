"""The command line's own parsing: what ``produce`` sends or refuses, and moments."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.cli import NotJsonError, _moment, record_for

HOOKSTREAM = str(Path(sys.executable).parent / "hookstream")


def test_a_json_object_is_sent_as_it_is_with_its_key() -> None:
    assert record_for("messages", b'{"account_id": "a1", "x": 1}') == (
        b"a1",
        b'{"account_id": "a1", "x": 1}',
    )
    assert record_for("webhooks", b'{"id": "wh_1"}') == (b"wh_1", b'{"id": "wh_1"}')
    assert record_for("webhooks", b'{"delete": "wh_1"}') == (b"wh_1", None)
    assert record_for("messages", b'{"event": "nope"}') == (None, b'{"event": "nope"}')


@pytest.mark.parametrize("line", [b"not json", b'{"account_id": ', b"[1, 2]", b"42"])
def test_a_line_that_is_no_json_object_is_refused(line: bytes) -> None:
    with pytest.raises(NotJsonError):
        record_for("messages", line)


def test_moments_are_unix_seconds_or_iso_8601() -> None:
    assert _moment("1700000000") == 1700000000.0
    assert _moment("2023-11-14T22:13:20Z") == 1700000000.0
    assert _moment("2023-11-14T22:13:20") == 1700000000.0  # no zone: UTC
    with pytest.raises(argparse.ArgumentTypeError):
        _moment("yesterday")


def test_portal_link_names_the_worker_s_port() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKSTREAM_")} | {
        "HOOKSTREAM_PORTAL_SECRET": "a-portal-key-for-this-test"
    }
    command = [HOOKSTREAM, "portal-link", "--account", "acct_1", "--web-port", "7077"]
    printed = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    assert printed.stdout.startswith("http://127.0.0.1:7077/portal#token=")


def test_help_is_plain_text() -> None:
    printed = subprocess.run([HOOKSTREAM, "--help"], capture_output=True, text=True, check=True)
    assert "``" not in printed.stdout and ":mod:" not in printed.stdout
    assert "HOOKSTREAM_*" in printed.stdout
