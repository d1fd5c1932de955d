"""Deliver: send each job, log the attempt, and on failure hand it to the next retry tier.

Ingest calls :func:`deliver_jobs` for the jobs of each event; ``deliveries`` carries batches
from elsewhere (replays). The jobs of a batch are sent concurrently and only a failed job
travels alone, as a :class:`RetryJob` on ``deliveries.retry.N``. Tier N's agent
waits until the job is due (every job on a tier has the same delay, so a partition is in due
order) and tries again; after the last tier the job goes to ``deliveries.failed``.

Custody: an event's offset is committed only after its jobs' retry or dead-letter records are
on the broker (retry and attempt records go through :mod:`app.kafka.batch_writer`, which is flushed
before every commit), so a crash at any moment re-sends at worst (same delivery id), and never
loses a job.
"""

from __future__ import annotations

import asyncio
import logging
import time

import orjson
from faust.types import EventT, StreamT
from pydantic import ValidationError

from app import metrics
from app.agents.reporting import report_invalid
from app.flow.retry_policy import GONE, next_step, parse_retry_after
from app.http.client import AttemptOutcome
from app.main import app, settings
from app.model.records import (
    AttemptRecord,
    AttemptResult,
    DeadLetter,
    DeliveryBatch,
    DeliveryJob,
    Outcome,
    RetryJob,
)
from app.model.webhook_config import WebhookConfig
from app.runtime import channels
from app.runtime.state import (
    batch_writer,
    config_view,
    delivery_client,
    drain,
    endpoint_guard,
    failure_streaks,
    rate_limiter,
    wait_ready,
)

log = logging.getLogger(__name__)


async def _dead_letter(
    job: DeliveryJob, history: list[AttemptResult], reason: str, stage: str
) -> None:
    metrics.dead_letters.labels(stage).inc()
    letter = DeadLetter(job=job, history=history, reason=reason, stage=stage, failed_at=time.time())
    await (
        await channels.deliveries_failed.send(key=job.webhook_id.encode(), value=letter.to_bytes())
    )


async def _disable(webhook: WebhookConfig, kind: str, reason: str) -> None:
    """Set ``active: false`` with the reason, through the webhooks topic like any config write."""
    if not webhook.active:
        return
    log.warning("disabling webhook %s: %s", webhook.id, reason)
    metrics.webhooks_disabled.labels(kind).inc()
    disabled = webhook.model_copy(update={"active": False, "disabled_reason": reason})
    await (
        await channels.webhooks.send(
            key=webhook.id.encode(), value=orjson.dumps(disabled.to_wire())
        )
    )


async def process_job(job: DeliveryJob, history: list[AttemptResult], stage: str) -> None:
    """Make the next attempt of ``job`` and route it; a bug dead-letters the job, never drops it."""
    try:
        await _attempt_and_route(job, history, stage)
    except Exception as exc:
        log.exception("delivery %s failed unexpectedly", job.delivery_id)
        await _dead_letter(job, history, f"internal error: {type(exc).__name__}: {exc}", stage)


async def _attempt_and_route(job: DeliveryJob, history: list[AttemptResult], stage: str) -> None:
    webhook = config_view.get(job.webhook_id)
    if webhook is None:
        await _dead_letter(job, history, f"webhook {job.webhook_id} no longer exists", stage)
        return
    if not webhook.active:
        await _dead_letter(job, history, "webhook is inactive (delivery paused)", stage)
        return
    rate = webhook.rate_limit_per_second
    if rate is not None:
        now = time.time()
        start = rate_limiter.reserve(webhook.id, rate, now)
        if start - now > rate_limiter.max_wait:  # park it on tier 1 until its slot
            rate_limiter.release(webhook.id, rate)
            if channels.retry_tiers:
                parked = RetryJob(job=job, history=history, tier=1, due_at=start)
                batch_writer.append(
                    channels.retry_topic_names[1], job.webhook_id.encode(), parked.to_bytes()
                )
                metrics.child(metrics.skipped, "rate").inc()
                return
        await asyncio.sleep(max(0.0, start - now))
    attempt = len(history) + 1
    url = webhook.url_for(job.event) or ""
    endpoint = f"{webhook.id} {url}"
    ticket = await endpoint_guard.acquire(endpoint)
    if isinstance(ticket, str):  # open circuit or slow, full endpoint: skip the HTTP call
        metrics.child(metrics.skipped, ticket.split(" ", 1)[0]).inc()
        skipped = AttemptResult(
            attempt=attempt,
            url=url,
            error=f"skipped: {ticket}",
            duration_ms=0.0,
            at=time.time(),
        )
        outcome = AttemptOutcome(skipped, None, {})
    else:
        ok = False
        try:
            outcome = await delivery_client.attempt(
                webhook,
                job.event,
                job.payload,
                job.delivery_id,
                attempt,
                message=job.message,
                timeout=webhook.timeout_seconds,
            )
            ok = outcome.ok
        finally:
            endpoint_guard.release(endpoint, ticket, ok)
        metrics.attempt_duration.observe(outcome.result.duration_ms / 1000)
    history = [*history, outcome.result]
    if outcome.ok:
        routed = Outcome.DELIVERED
        failure_streaks.delivered(webhook.id)
        metrics.delivery_latency.observe(max(0.0, time.time() - job.created_at))
    else:
        now = time.time()
        status = outcome.result.status
        step = next_step(
            len(history),
            settings.retry_delays,
            now,
            status=status,
            retry_after=parse_retry_after(outcome.response_headers.get("Retry-After"), now),
            retry_all_non_2xx=settings.retry_all_non_2xx,
            max_retries=webhook.max_retries,
            jitter=settings.retry_jitter,
        )
        if status == GONE:
            await _disable(webhook, "gone", f"endpoint answered 410 Gone at {outcome.result.url}")
        if step.tier is not None and step.due_at is not None:
            routed = Outcome.RETRY
            metrics.child(metrics.retries, str(step.tier)).inc()
            retry = RetryJob(job=job, history=history, tier=step.tier, due_at=step.due_at)
            batch_writer.append(
                channels.retry_topic_names[step.tier], job.webhook_id.encode(), retry.to_bytes()
            )
        else:
            routed = Outcome.FAILED
            last = outcome.result.error or f"HTTP {status}"
            reason = step.reason or f"gave up after {attempt} attempts; last: {last}"
            if status == GONE:
                reason = "endpoint answered 410 Gone; the webhook was disabled"
            await _dead_letter(job, history, reason, stage)
            if failure_streaks.failed(webhook.id, now):
                hours = settings.auto_disable_after / 3600
                await _disable(
                    webhook, "failing", f"every delivery failed for {hours:g} h; last: {last}"
                )
    metrics.child(
        metrics.deliveries, routed.value, metrics.status_class(outcome.result.status)
    ).inc()
    record = AttemptRecord.model_construct(
        webhook_id=job.webhook_id,
        account_id=job.account_id,
        delivery_id=job.delivery_id,
        event=job.event,
        result=outcome.result,
        outcome=routed,
        response_body=outcome.response_body,
    )
    # Retry and attempt records are written before the source offset is committed
    # (see app.kafka.batch_writer).
    batch_writer.append(channels.attempts_topic_name, job.webhook_id.encode(), record.to_bytes())


async def _decode(
    event: EventT[bytes], model: type[DeliveryBatch] | type[RetryJob], stage: str
) -> object:
    try:
        return model.from_bytes(event.value)
    except (ValidationError, orjson.JSONDecodeError, TypeError) as exc:
        await report_invalid(event, f"not a {model.__name__}: {exc}", stage)
        return None


async def deliver_jobs(jobs: list[DeliveryJob]) -> None:
    """First attempts of a batch of jobs, concurrently; returns when each is routed."""
    if len(jobs) == 1:
        await process_job(jobs[0], [], "deliver")
    else:
        await asyncio.gather(*(process_job(job, [], "deliver") for job in jobs))


@app.agent(
    channels.deliveries, name="hookstream.deliver", concurrency=settings.delivery_concurrency
)
async def deliver(stream: StreamT[bytes]) -> None:
    await wait_ready()
    async for event in stream.events():
        with drain.track():
            batch = await _decode(event, DeliveryBatch, "deliver")
            if isinstance(batch, DeliveryBatch):
                await deliver_jobs(batch.jobs)


def _retry_agent(tier: int) -> None:
    stage = f"retry.{tier}"

    async def retry(stream: StreamT[bytes]) -> None:
        await wait_ready()
        async for event in stream.events():
            retry_job = await _decode(event, RetryJob, stage)
            if isinstance(retry_job, RetryJob):
                wait = retry_job.due_at - time.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                with drain.track():
                    await process_job(retry_job.job, retry_job.history, stage)

    app.agent(
        channels.retry_tiers[tier],
        name=f"hookstream.retry.{tier}",
        concurrency=settings.delivery_concurrency,
    )(retry)


for _tier in channels.retry_tiers:
    _retry_agent(_tier)
