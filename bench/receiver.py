"""The benchmark's receiver, run as its own process: answers 200 and records arrivals.

Latency is read from the payload itself: the benchmark puts the produce time in the seed body's
``name`` field (``t=<unix time>``), which the standard payload carries through unchanged.
Paths under ``/hang/`` never answer (an endpoint that is down but accepts connections).
"""

from __future__ import annotations

import argparse
import asyncio
import time

import orjson
from aiohttp import web


class Stats:
    def __init__(self) -> None:
        self.count = 0
        self.first: float | None = None
        self.last: float | None = None
        self.latencies: list[float] = []

    def reset(self) -> None:
        self.__init__()  # type: ignore[misc]


def make_app() -> web.Application:
    stats = Stats()

    async def hook(request: web.Request) -> web.Response:
        if request.path.startswith("/hang/"):
            await asyncio.sleep(3600)
        body = await request.read()
        now = time.time()
        stats.count += 1
        stats.first = stats.first or now
        stats.last = now
        try:
            name = orjson.loads(body).get("name", "")
            if name.startswith("t="):
                stats.latencies.append(now - float(name[2:]))
        except (orjson.JSONDecodeError, AttributeError, ValueError):
            pass
        return web.Response(text="ok")

    async def get_stats(request: web.Request) -> web.Response:
        latencies = request.query.get("latencies") == "1"
        return web.json_response(
            {
                "count": stats.count,
                "first": stats.first,
                "last": stats.last,
                "latencies": stats.latencies if latencies else [],
            },
            dumps=lambda v: orjson.dumps(v).decode(),
        )

    async def reset(request: web.Request) -> web.Response:
        stats.reset()
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
