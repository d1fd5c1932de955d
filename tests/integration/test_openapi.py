"""The OpenAPI document against a real worker: schemathesis generates requests for every
documented operation and fails on a 5xx or on an answer its schema does not allow.

Test connection (``/api/webhooks/test`` and ``/api/webhooks/{webhook_id}/test``) is left out of
the fuzzing: it sends a real request to the URL in the generated config, and tests send traffic
only to loopback. No event is produced on this worker's topics, so no webhook the fuzzer creates
is ever delivered to. Those two routes are covered by the admin API and browser tests.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import orjson
import pytest

from app.api import spec
from tests.integration.conftest import Pipeline, started_pipeline

TOKEN = "openapi-admin-token"
NOT_FUZZED = "^/api/webhooks(/\\{webhook_id\\})?/test$"


@pytest.fixture
def api_worker(broker: str, tmp_path: Path) -> Iterator[Pipeline]:
    with started_pipeline(
        broker,
        tmp_path,
        HOOKSTREAM_ADMIN_TOKEN=TOKEN,
        HOOKSTREAM_PORTAL_SECRET="openapi-portal-key",
        HOOKSTREAM_TRACKING_SECRET="openapi-tracking-key",
        HOOKSTREAM_ALLOW_HTTP="false",
        HOOKSTREAM_ALLOW_PRIVATE_NETWORKS="false",
    ) as pipeline:
        yield pipeline


async def test_the_worker_serves_the_checked_in_document(api_worker: Pipeline) -> None:
    await api_worker.worker.wait_ready()
    url = f"http://127.0.0.1:{api_worker.worker.web_port}{spec.OPENAPI_PATH}"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200 and response.content_type == "application/json"
        assert orjson.loads(await response.read()) == orjson.loads(spec.render())


async def test_schemathesis_finds_no_server_error_and_no_answer_outside_the_schema(
    api_worker: Pipeline, tmp_path: Path
) -> None:
    await api_worker.worker.wait_ready()
    base = f"http://127.0.0.1:{api_worker.worker.web_port}"
    st = shutil.which("st", path=str(Path(sys.executable).parent))
    assert st is not None, "schemathesis is a dev dependency: make install"
    run = subprocess.run(
        [
            st,
            "run",
            f"{base}{spec.OPENAPI_PATH}",
            "--url",
            base,
            "--header",
            f"Authorization: Bearer {TOKEN}",
            "--checks",
            "not_a_server_error,response_schema_conformance,content_type_conformance",
            "--exclude-path-regex",
            NOT_FUZZED,
            # The coverage phase is left out: on Python 3.11 it failed inside schemathesis
            # (SystemError from ast.parse while it built its cases), not in our API.
            "--phases",
            "examples,fuzzing,stateful",
            "--max-examples",
            "15",
            "--seed",
            "20261201",
            "--generation-database",
            "none",
            "--workers",
            "1",
            "--request-timeout",
            "30",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
