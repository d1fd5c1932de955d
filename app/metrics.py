"""Prometheus metrics of one worker, served as text at ``GET /metrics``."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

registry = CollectorRegistry(auto_describe=True)

events_in = Counter(
    "hookstream_events",
    "Input events read, by topic family and validity.",
    ["family", "result"],
    registry=registry,
)
deliveries = Counter(
    "hookstream_deliveries",
    "HTTP delivery attempts, by outcome and status class.",
    ["outcome", "status_class"],
    registry=registry,
)
retries = Counter("hookstream_retries", "Jobs handed to a retry tier.", ["tier"], registry=registry)
dead_letters = Counter(
    "hookstream_dead_letters", "Jobs written to deliveries.failed.", ["stage"], registry=registry
)
skipped = Counter(
    "hookstream_skipped_attempts",
    "Attempts routed to the next tier without an HTTP call (circuit open, busy endpoint).",
    ["reason"],
    registry=registry,
)
webhooks_disabled = Counter(
    "hookstream_webhooks_disabled",
    "Webhooks hookstream set inactive, by why (gone: the endpoint answered 410).",
    ["reason"],
    registry=registry,
)
replays = Counter("hookstream_replays", "Dead letters put back on deliveries.", registry=registry)
feedback = Counter(
    "hookstream_feedback", "Open/click reports accepted on /track.", ["action"], registry=registry
)
delivery_latency = Histogram(
    "hookstream_delivery_latency_seconds",
    "From job creation (event joined) to a successful delivery, retries included.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900),
    registry=registry,
)
attempt_duration = Histogram(
    "hookstream_attempt_duration_seconds",
    "Duration of one HTTP attempt.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=registry,
)
webhooks = Gauge("hookstream_webhooks", "Webhook configs in this worker's view.", registry=registry)


@lru_cache(maxsize=1024)
def child(metric: Any, *labels: str) -> Any:
    """``metric.labels(*labels)``, looked up once (``labels`` takes a lock and builds a key on
    every call; the hot path counts every delivery)."""
    return metric.labels(*labels)


def status_class(status: int | None) -> str:
    return "error" if status is None else f"{status // 100}xx"


def render() -> bytes:
    return generate_latest(registry)
