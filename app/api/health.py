"""The worker's own pages: ``GET /health`` (200 ready, 503 loading) and ``GET /metrics``.

The body also reports how far the config view has read ``webhooks`` (next offset per
partition), which lets a writer wait until its config is in force on this worker.
"""

from __future__ import annotations

from faust.exceptions import ConsumerNotStarted
from faust.web import Request, Response, View

from app import metrics
from app.main import app
from app.runtime.state import config_view, writer_ready


@app.page("/health")
class Health(View):
    async def get(self, request: Request) -> Response:
        ready = config_view.ready.is_set() and writer_ready.is_set()
        assigned: dict[str, list[int]] = {}
        try:
            assignment = app.consumer.assignment()
        except ConsumerNotStarted:  # the web server starts a moment before the consumer
            assignment = set()
        for tp in assignment:
            assigned.setdefault(tp.topic, []).append(tp.partition)
        body = {
            "assigned": {topic: sorted(parts) for topic, parts in sorted(assigned.items())},
            "ready": ready,
            "webhooks": len(config_view),
            "webhooks_at_ready": config_view.loaded_at_ready,
            "webhooks_applied": {str(p): o for p, o in sorted(config_view.applied.items())},
        }
        return self.json(body, status=200 if ready else 503)


@app.page("/metrics")
class Metrics(View):
    """Prometheus text format; no token, like /health (it holds no secrets)."""

    async def get(self, request: Request) -> Response:
        metrics.webhooks.set(len(config_view))
        return self.bytes(metrics.render(), content_type="text/plain; version=0.0.4")
