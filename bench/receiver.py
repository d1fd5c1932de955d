"""The benchmark's receiver, run as its own process: answers 200 and records arrivals.

Latency is read from the payload itself: the benchmark puts the produce time in the seed body's
``name`` field (``t=<unix time>``), which the standard payload carries through unchanged.
Arrivals are counted per *group*, the first path segment (``/h/3`` is group ``h``), and in all.
Some groups behave like real endpoints:
- ``/hang/...`` never answers (an endpoint that is down but accepts connections);
- ``/slow/...`` answers after 1 s (a healthy but slow CRM);
- ``/ln/...`` answers after a log-normal delay around 250 ms, p99 about 2 s (real receivers).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from collections import defaultdict

import orjson
from aiohttp import web

#: Log-normal latency: median e^MU = 250 ms, p99 = e^(MU + 2.326 SIGMA) = 2 s.
LOG_NORMAL_MU, LOG_NORMAL_SIGMA = -1.386, 0.894
SLOW_SECONDS = 1.0


class Stats:
    def __init__(self) -> None:
        self.count = 0  # deliveries: a batched request counts its items
        self.requests = 0
        self.first: float | None = None
        self.last: float | None = None
        self.latencies: list[float] = []
        self.in_flight = 0
        self.peak_in_flight = 0

    def document(self, latencies: bool) -> dict[str, object]:
        return {
            "count": self.count,
            "requests": self.requests,
            "first": self.first,
            "last": self.last,
            "peak_in_flight": self.peak_in_flight,
            "latencies": self.latencies if latencies else [],
        }


def make_app() -> web.Application:
    groups: defaultdict[str, Stats] = defaultdict(Stats)
    rng = random.Random(1)

    async def hook(request: web.Request) -> web.Response:
        group = request.path.split("/", 2)[1] if request.path.count("/") >= 1 else ""
        stats, every = groups[group], groups["*"]
        for s in (stats, every):
            s.in_flight += 1
            s.peak_in_flight = max(s.peak_in_flight, s.in_flight)
        try:
            if group == "hang":
                await asyncio.sleep(3600)
            elif group == "slow":
                await asyncio.sleep(SLOW_SECONDS)
            elif group == "ln":
                await asyncio.sleep(rng.lognormvariate(LOG_NORMAL_MU, LOG_NORMAL_SIGMA))
            body = await request.read()
        finally:
            for s in (stats, every):
                s.in_flight -= 1
        now = time.time()
        latencies: list[float] = []
        try:
            document = orjson.loads(body)
            items = document if isinstance(document, list) else [document]  # a batch, or one
            for item in items:
                name = item.get("name", "")
                if name.startswith("t="):
                    latencies.append(now - float(name[2:]))
        except (orjson.JSONDecodeError, AttributeError, ValueError):
            items = [None]
        for s in (stats, every):
            s.count += len(items)
            s.requests += 1
            s.first = s.first or now
            s.last = now
            s.latencies.extend(latencies)
        return web.Response(text="ok")

    async def get_stats(request: web.Request) -> web.Response:
        latencies = request.query.get("latencies") == "1"
        stats = groups[request.query.get("group", "*")]
        return web.json_response(
            stats.document(latencies), dumps=lambda v: orjson.dumps(v).decode()
        )

    async def reset(request: web.Request) -> web.Response:
        groups.clear()
        return web.Response(text="reset")

    app = web.Application()
    app.router.add_get("/_stats", get_stats)
    app.router.add_post("/_reset", reset)
    app.router.add_route("*", "/{tail:.*}", hook)
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    web.run_app(make_app(), host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
