"""The baseline: a bare Faust agent that consumes events and POSTs each one with aiohttp.

No join, no payload building, no signing, no retry topics: the practical ceiling of a Faust
worker on this machine. Configured by environment: BENCH_BROKER, BENCH_TOPIC, BENCH_APP_ID,
BENCH_URL.

``BENCH_TUNED=1`` gives it the generic tuning hookstream's worker has (none of it is about
webhooks): hookstream's Faust transport (consumer fetch wait, per-message hand-over), the GC
settings of :mod:`app.runtime.gc_tuning`, and uvloop (``faust -L uvloop``, set by the
benchmark). The benchmark reports both, so the figures say how much comes from tuning Faust and
how much from the pipeline.
"""

from __future__ import annotations

import os

import aiohttp
import faust

_session: aiohttp.ClientSession | None = None
TUNED = os.environ.get("BENCH_TUNED") == "1"
BROKER = os.environ.get("BENCH_BROKER", "kafka://127.0.0.1:9092")

if TUNED:
    from app.kafka import transport

    BROKER = BROKER.replace("kafka://", f"{transport.SCHEME}://")

app = faust.App(
    os.environ.get("BENCH_APP_ID", "bench-baseline"),
    broker=BROKER,
    autodiscover=False,
    origin="bench.baseline_app",
    broker_session_timeout=10,
    consumer_auto_offset_reset="earliest",
    producer_linger_ms=5,
    web_enabled=False,
)
topic = app.topic(
    os.environ.get("BENCH_TOPIC", "bench.events"),
    key_type=bytes,
    value_type=bytes,
    key_serializer="raw",
    value_serializer="raw",
)
URL = os.environ.get("BENCH_URL", "http://127.0.0.1:8080/baseline")


#: ``BENCH_BATCH`` > 1: POST the events as JSON arrays of up to that many (Faust's
#: ``stream.take``, sent at latest 50 ms after the first): the ceiling of a batching worker.
BATCH = int(os.environ.get("BENCH_BATCH", "0"))
BATCH_WAIT = 0.05


def _session_once() -> aiohttp.ClientSession:
    global _session
    if _session is None:
        if TUNED:
            from app.runtime.gc_tuning import tune_gc

            tune_gc()
        _session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    return _session


@app.agent(topic, concurrency=4 if BATCH > 1 else 50)  # batching: 4 actors fill their batches
async def forward(stream: faust.StreamT[bytes]) -> None:
    session = _session_once()
    if BATCH > 1:
        async for values in stream.take(BATCH, within=BATCH_WAIT):
            body = b"[" + b",".join(values) + b"]"
            async with session.post(
                URL, data=body, headers={"content-type": "application/json"}
            ) as response:
                await response.read()
        return
    async for value in stream:
        async with session.post(
            URL, data=value, headers={"content-type": "application/json"}
        ) as response:
            await response.read()
