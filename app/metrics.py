"""Prometheus metrics of one worker, served as text at ``GET /metrics``."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import lru_cache
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeHistogramMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

#: Busiest webhooks given their own series (the label set stays bounded however many there are).
TOP_ENDPOINTS = 10
LIMIT_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class EndpointLike(Protocol):
    @property
    def webhook_id(self) -> str: ...
    @property
    def limit(self) -> int: ...
    @property
    def in_flight(self) -> int: ...
    @property
    def queued(self) -> int: ...


class SchedulerLike(Protocol):
    """What the delivery scheduler shows (this module imports nothing of hookstream's)."""

    @property
    def in_flight(self) -> int: ...
    @property
    def queued(self) -> int: ...
    def snapshot(self, top: int = 10) -> Sequence[EndpointLike]: ...
    def limits(self) -> list[int]: ...


#: Set by the worker to its scheduler; read at every scrape.
scheduler_source: SchedulerLike | None = None

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
parked = Counter(
    "hookstream_parked",
    "Jobs parked on deliveries.parked without a try (busy, circuit open, rate limit, stopping).",
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
copies_skipped = Counter(
    "hookstream_copies_skipped",
    "Copies of jobs this worker had delivered (read again after a crash or rebalance, or "
    "parked twice), settled unsent.",
    registry=registry,
)
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
parked_waiting = Gauge(
    "hookstream_parked_waiting",
    "Parked jobs read back and held in memory until they are due (at most parked_in_memory).",
    registry=registry,
)
records_unsettled = Gauge(
    "hookstream_records_unsettled",
    "Records handed to the agents in this consumer generation whose jobs have not all "
    "settled: the commit waits for the lowest of each partition (one that never falls "
    "holds its partition's commit until the next rebalance).",
    registry=registry,
)


@lru_cache(maxsize=1024)
def child(metric: Any, *labels: str) -> Any:
    """``metric.labels(*labels)``, looked up once (``labels`` takes a lock and builds a key on
    every call; the hot path counts every delivery)."""
    return metric.labels(*labels)


def status_class(status: int | None) -> str:
    return "error" if status is None else f"{status // 100}xx"


class _SchedulerCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        source = scheduler_source
        if source is None:
            return
        yield GaugeMetricFamily(
            "hookstream_requests_in_flight", "HTTP requests in flight.", value=source.in_flight
        )
        yield GaugeMetricFamily(
            "hookstream_jobs_queued",
            "Jobs waiting in memory for their endpoint.",
            value=source.queued,
        )
        top = {
            "hookstream_endpoint_limit": ("Adaptive concurrency limit", "limit"),
            "hookstream_endpoint_in_flight": ("Requests in flight", "in_flight"),
            "hookstream_endpoint_queued": ("Jobs queued in memory", "queued"),
        }
        busiest = source.snapshot(TOP_ENDPOINTS)
        for name, (text, attribute) in top.items():
            family = GaugeMetricFamily(
                name, f"{text} of the {TOP_ENDPOINTS} busiest endpoints.", labels=["webhook_id"]
            )
            for view in busiest:
                family.add_metric([view.webhook_id], getattr(view, attribute))
            yield family
        limits = source.limits()
        buckets = [(str(b), sum(1 for x in limits if x <= b)) for b in LIMIT_BUCKETS]
        yield GaugeHistogramMetricFamily(
            "hookstream_endpoint_limits",
            "Adaptive concurrency limits of every endpoint the worker knows.",
            buckets=[*buckets, ("+Inf", len(limits))],
            gsum_value=sum(limits),
        )


registry.register(_SchedulerCollector())


def render() -> bytes:
    return generate_latest(registry)
