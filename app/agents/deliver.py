"""Deliver: the scheduler's send and park, and the agents that feed it jobs.

Every job (of an event, a retry tier, a replay or the parking lane) goes to the worker's one
:class:`~app.delivery.scheduler.Scheduler`, which sends it when its endpoint can take it or
parks it on ``deliveries.parked``. :func:`send` makes one real HTTP attempt and routes the
outcome: 2xx delivered; a failure to the next retry tier (``deliveries.retry.N``: tier N's
agent waits until the job is due, every job of a tier has the same delay, so a partition is in
due order) or, after the last tier, to ``deliveries.failed``. :func:`park` writes the job to the
parking lane with its attempt count unchanged: a skip is not a try.

Custody (:mod:`app.agents.custody`): a record is acknowledged once all its jobs settled, and
retry, parked and attempt records go through :mod:`app.kafka.batch_writer`, which is flushed
before every offset commit, so a crash at any moment re-sends at worst (same delivery id) and
never loses a job.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from typing import Any

import orjson
from faust.types import EventT, StreamT
from pydantic import ValidationError

from app import metrics
from app.agents.custody import Custody, unacknowledged
from app.agents.reporting import report_invalid
from app.delivery.delay_queue import DelayQueue
from app.delivery.limiter import Signal
from app.delivery.recently_delivered import RecentlyDelivered
from app.delivery.scheduler import (
    NOTHING_SENT,
    Attempted,
    CircuitEffect,
    ParkReason,
    Scheduler,
    Ticket,
)
from app.flow.retry_policy import ALWAYS_RETRIED_4XX, GONE, next_step, parse_retry_after
from app.http.client import AttemptOutcome
from app.main import app, settings
from app.model.records import (
    AttemptRecord,
    AttemptResult,
    DeadLetter,
    DeliveryBatch,
    DeliveryJob,
    Outcome,
    ParkedJob,
    RetryJob,
)
from app.model.webhook_config import WebhookConfig
from app.runtime import channels
from app.runtime.state import (
    batch_writer,
    commit_ledger,
    config_view,
    delivery_client,
    failure_streaks,
    wait_ready,
)

log = logging.getLogger(__name__)

#: A new endpoint starts with this many requests in flight, then its limit adapts.
INITIAL_ENDPOINT_LIMIT = 16


# -- routing an attempt ---------------------------------------------------------------------
async def _dead_letter(
    job: DeliveryJob,
    history: list[AttemptResult],
    reason: str,
    stage: str,
    order_continued: bool = False,
) -> None:
    metrics.dead_letters.labels(stage).inc()
    letter = DeadLetter(
        job=job,
        history=history,
        reason=reason,
        stage=stage,
        failed_at=time.time(),
        order_continued=order_continued,
    )
    await (
        await channels.deliveries_failed.send(key=job.webhook_id.encode(), value=letter.to_bytes())
    )
    _said_dead_letter(job, len(history), reason)


#: Per webhook: when a dead letter was last logged, and how many were not logged since.
_dead_letters_said: dict[str, tuple[float, int]] = {}
#: At most one log line per webhook this often: a dead endpoint makes thousands.
DEAD_LETTER_LOG_EVERY = 10.0


def _said_dead_letter(job: DeliveryJob, attempts: int, reason: str) -> None:
    now = time.monotonic()
    last, unsaid = _dead_letters_said.get(job.webhook_id, (float("-inf"), 0))
    if now - last < DEAD_LETTER_LOG_EVERY:
        _dead_letters_said[job.webhook_id] = (last, unsaid + 1)
        return
    if len(_dead_letters_said) > 10_000:  # bounded: forget the quiet ones
        _dead_letters_said.clear()
    _dead_letters_said[job.webhook_id] = (now, 0)
    more = f" (and {unsaid} more since the last line)" if unsaid else ""
    log.warning(
        "dead letter: delivery %s of webhook %s after %d attempt(s): %s%s",
        job.delivery_id,
        job.webhook_id,
        attempts,
        reason,
        more,
    )


async def _disable(webhook_id: str, kind: str, reason: str) -> None:
    """Set ``active: false`` with the reason on the newest version of the webhook, through the
    webhooks topic like any config write (only those two fields change: a concurrent admin
    change read by the barrier is kept)."""
    if not await config_view.sync(timeout=10.0):
        log.warning("not disabling webhook %s: the config view is behind", webhook_id)
        return
    webhook = config_view.get(webhook_id)
    if webhook is None or not webhook.active:
        return
    log.warning("disabling webhook %s: %s", webhook_id, reason)
    metrics.webhooks_disabled.labels(kind).inc()
    disabled = webhook.model_copy(update={"active": False, "disabled_reason": reason})
    await (
        await channels.webhooks.send(
            key=webhook_id.encode(), value=orjson.dumps(disabled.to_wire())
        )
    )


def _signal(outcome: AttemptOutcome) -> Attempted:
    """What an attempt says about its endpoint's capacity and health."""
    status, rtt = outcome.result.status, outcome.result.duration_ms / 1000
    if status is None:
        if (outcome.result.error or "").startswith("refused"):
            return NOTHING_SENT  # our policy stopped it: nothing about the endpoint
        return Attempted(Signal.CONGESTED, CircuitEffect.FAILURE, rtt)  # timeout, connection
    if 200 <= status < 300:
        return Attempted(Signal.OK, CircuitEffect.SUCCESS, rtt)
    if status >= 500 or status in ALWAYS_RETRIED_4XX:  # 5xx, 408, 429: overloaded or down
        return Attempted(Signal.CONGESTED, CircuitEffect.FAILURE, rtt)
    return Attempted(Signal.OK, CircuitEffect.NEUTRAL, rtt)  # up, but refusing this request


def _attempt_record(
    job: DeliveryJob, result: AttemptResult, routed: Outcome, body: str | None
) -> None:
    record = AttemptRecord.model_construct(
        webhook_id=job.webhook_id,
        account_id=job.account_id,
        delivery_id=job.delivery_id,
        event=job.event,
        result=result,
        outcome=routed,
        response_body=body,
        members=[m.delivery_id for m in job.members] if job.members is not None else None,
    )
    batch_writer.append(channels.attempts_topic_name, job.webhook_id.encode(), record.to_bytes())


def batch_job(members: list[DeliveryJob]) -> DeliveryJob:
    """The job of one batched request: its id derived from its members' (the same members,
    the same id, across every retry), its payload the array of theirs."""
    basis = "\x00".join(m.delivery_id for m in members)
    first = members[0]
    return DeliveryJob.model_construct(
        delivery_id="bat_" + hashlib.sha256(basis.encode()).hexdigest()[:32],
        webhook_id=first.webhook_id,
        account_id=first.account_id,
        event=first.event,
        event_id=None,
        payload={},
        created_at=min(m.created_at for m in members),
        source=first.source,
        message=None,
        ordering_key=None,
        members=members,
    )


async def send(ticket: Ticket) -> Attempted:
    """The scheduler's send: one real attempt of the ticket's job (or batch), routed."""
    members = [m.job for m in ticket.members] if ticket.members is not None else None
    job = batch_job(members) if members is not None else ticket.job
    history, stage = ticket.history, ticket.stage
    try:
        webhook = config_view.get(job.webhook_id)
        if webhook is None:
            await _dead_letter(job, history, f"webhook {job.webhook_id} no longer exists", stage)
            return NOTHING_SENT
        if not webhook.active:
            await _dead_letter(job, history, "webhook is inactive (delivery paused)", stage)
            return NOTHING_SENT
        payload = [m.payload for m in job.members] if job.members is not None else job.payload
        outcome = await delivery_client.attempt(
            webhook,
            job.event,
            payload,
            job.delivery_id,
            len(history) + 1,
            message=job.message,
            timeout=webhook.timeout_seconds,
        )
        metrics.attempt_duration.observe(outcome.result.duration_ms / 1000)
        history = [*history, outcome.result]
        if ticket.held:
            ticket.history = history  # its retries are made here, counting on from this one
        retry_at = await _route(job, history, stage, webhook, outcome, held=ticket.held)
        attempted = _signal(outcome)
        if retry_at is not None:
            return Attempted(attempted.signal, attempted.circuit, attempted.rtt, retry_at)
        return attempted
    except Exception as exc:  # a bug dead-letters the job, never drops it
        log.exception("delivery %s failed unexpectedly", job.delivery_id)
        await _dead_letter(job, history, f"internal error: {type(exc).__name__}: {exc}", stage)
        return NOTHING_SENT


async def _route(
    job: DeliveryJob,
    history: list[AttemptResult],
    stage: str,
    webhook: WebhookConfig,
    outcome: AttemptOutcome,
    held: bool = False,
) -> float | None:
    """Where the job goes after a real attempt, and the attempt record. A held (ordered) job
    is not put on a retry tier: the time of its retry is returned, for the scheduler to hold
    it (and its key's later jobs) until then."""
    result = outcome.result
    retry_at: float | None = None
    if outcome.ok:
        routed = Outcome.DELIVERED
        failure_streaks.delivered(webhook.id)
        for member in job.members or [job]:
            metrics.delivery_latency.observe(max(0.0, time.time() - member.created_at))
            recently_delivered.add(member.delivery_id)
    else:
        now = time.time()
        status = result.status
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
        last = result.error or f"HTTP {status}"
        if status == GONE:
            await _disable(webhook.id, "gone", f"endpoint answered 410 Gone at {result.url}")
        elif failure_streaks.failed(webhook.id, now):
            hours = settings.auto_disable_after / 3600
            await _disable(
                webhook.id, "failing", f"every attempt failed for {hours:g} h; last: {last}"
            )
        if step.tier is not None and step.due_at is not None:
            routed = Outcome.RETRY
            metrics.child(metrics.retries, str(step.tier)).inc()
            if held:
                retry_at = step.due_at
            else:
                retry = RetryJob(job=job, history=history, tier=step.tier, due_at=step.due_at)
                batch_writer.append(
                    channels.retry_topic_names[step.tier], job.webhook_id.encode(), retry.to_bytes()
                )
        else:
            routed = Outcome.FAILED
            reason = step.reason or f"gave up after {len(history)} attempts; last: {last}"
            if status == GONE:
                reason = "endpoint answered 410 Gone; the webhook was disabled"
            await _dead_letter(job, history, reason, stage, order_continued=held)
    metrics.child(metrics.deliveries, routed.value, metrics.status_class(result.status)).inc()
    _attempt_record(job, result, routed, outcome.response_body)
    return retry_at


def park(ticket: Ticket, due: float, reason: ParkReason, detail: str) -> None:
    """The scheduler's park: the job goes to the parking lane, no try spent, and the attempt
    log says so (a record marked ``skipped``)."""
    job, now = ticket.job, time.time()
    parked = ParkedJob(
        job=job,
        history=ticket.history,
        stage=ticket.stage,
        due_at=due,
        reason=reason.value,
        detail=detail,
        parks=ticket.parks + 1,
        slot=ticket.slot if reason is ParkReason.RATE_LIMIT else None,
        slot_epoch=ticket.slot_epoch if reason is ParkReason.RATE_LIMIT else None,
    )
    batch_writer.append(channels.parked_topic_name, job.webhook_id.encode(), parked.to_bytes())
    metrics.child(metrics.parked, reason.value).inc()
    skipped = AttemptResult(
        attempt=len(ticket.history) + 1,
        url=ticket.url,
        error=f"skipped: {reason.value}: {detail}; parked for {max(0.0, due - now):.1f} s",
        duration_ms=0.0,
        at=now,
        skipped=True,
    )
    _attempt_record(job, skipped, Outcome.PARKED, None)


scheduler = Scheduler(
    send=send,
    park=park,
    max_in_flight=settings.max_in_flight,
    endpoint_floor=settings.endpoint_min_in_flight,
    endpoint_ceiling=settings.endpoint_max_in_flight,
    endpoint_initial=INITIAL_ENDPOINT_LIMIT,
    circuit_threshold=settings.circuit_failure_threshold,
    circuit_cooldown=settings.circuit_cooldown,
    queue_seconds=settings.endpoint_queue_seconds,
    max_queued=settings.max_queued,
    park_max=max(settings.retry_delays, default=60.0),
)
metrics.scheduler_source = scheduler


def ticket_for(
    job: DeliveryJob,
    history: list[AttemptResult],
    stage: str,
    custody: Custody,
    parked: ParkedJob | None = None,
) -> Ticket:
    """A scheduler ticket for ``job``: its endpoint, ordering lane, batching and rate limit
    from the webhook's current config."""
    webhook = config_view.get(job.webhook_id)
    url = (webhook.url_for(job.event) if webhook is not None else None) or ""
    rate = webhook.rate_limit_per_second if webhook is not None else None
    batch = webhook.batch if webhook is not None and job.members is None else None
    ordered = job.ordering_key is not None and job.members is None
    return Ticket(
        job=job,
        history=history,
        stage=stage,
        endpoint=f"{job.webhook_id} {url}",
        url=url,
        settle=custody.settle,
        stale=custody.stale,
        rate=rate if batch is None else None,
        pace=rate if batch is not None else None,  # a batch counts as one request
        batch_max=batch.max_events if batch is not None else 0,
        batch_wait=batch.max_wait_ms / 1000 if batch is not None else 0.0,
        ordering_key=f"{job.webhook_id}\x00{job.ordering_key}" if ordered else None,
        parks=parked.parks if parked is not None else 0,
        slot=parked.slot if parked is not None else None,
        slot_epoch=parked.slot_epoch if parked is not None else None,
    )


#: Delivery ids this worker delivered lately (about 10 MB at this size).
recently_delivered = RecentlyDelivered(100_000)


def submit(ticket: Ticket, replay: bool = False) -> None:
    """Hand a ticket to the scheduler, unless its job is a copy of one this worker delivered
    lately: that settles at once, unsent. A replay read from ``deliveries`` is always sent
    (someone asked for it); if it must wait (parked) and is delivered meanwhile, its parked
    copy is a copy like any other."""
    if not replay and ticket.job.delivery_id in recently_delivered:
        metrics.copies_skipped.inc()
        ticket.settle()
        return
    scheduler.submit(ticket)


def submit_jobs(
    jobs: list[DeliveryJob], custody: Custody, stage: str = "deliver", replay: bool = False
) -> None:
    for job in jobs:
        submit(ticket_for(job, [], stage, custody), replay)


async def _decode(
    event: EventT[bytes], model: type[DeliveryBatch] | type[RetryJob] | type[ParkedJob], stage: str
) -> object:
    """The record's value as ``model``, or None after reporting it (and acknowledging it)."""
    try:
        return model.from_bytes(event.value)
    except (ValidationError, orjson.JSONDecodeError, TypeError) as exc:
        await report_invalid(event, f"not a {model.__name__}: {exc}", stage)
        Custody(event, 0, commit_ledger())
        return None


# -- the agents -----------------------------------------------------------------------------
@app.agent(
    channels.deliveries, name="hookstream.deliver", concurrency=settings.delivery_concurrency
)
async def deliver(stream: StreamT[bytes]) -> None:
    """Jobs that do not come from an event: replays of dead letters."""
    await wait_ready()
    async for event in unacknowledged(stream).events():
        batch = await _decode(event, DeliveryBatch, "deliver")
        if isinstance(batch, DeliveryBatch):
            await scheduler.room()
            custody = Custody(event, len(batch.jobs), commit_ledger())
            submit_jobs(batch.jobs, custody, replay=True)


def _retry_agent(tier: int) -> None:
    stage = f"retry.{tier}"

    async def retry(stream: StreamT[bytes]) -> None:
        await wait_ready()
        async for event in unacknowledged(stream).events():
            retry_job = await _decode(event, RetryJob, stage)
            if isinstance(retry_job, RetryJob):
                wait = retry_job.due_at - time.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                ticket = ticket_for(
                    retry_job.job, retry_job.history, stage, Custody(event, 1, commit_ledger())
                )
                submit(ticket)

    app.agent(
        channels.retry_tiers[tier],
        name=f"hookstream.retry.{tier}",
        concurrency=settings.delivery_concurrency,
    )(retry)


for _tier in channels.retry_tiers:
    _retry_agent(_tier)


def _parked_ticket(event: EventT[bytes], parked: ParkedJob) -> Ticket:
    custody = Custody(event, 1, commit_ledger())
    return ticket_for(parked.job, parked.history, parked.stage, custody, parked)


def _wake_parked(item: tuple[EventT[bytes], ParkedJob]) -> None:
    """A parked record fell due (or its endpoint recovered, or has room): hand its job back."""
    submit(_parked_ticket(*item))


parking_lane: DelayQueue[tuple[EventT[bytes], ParkedJob]] = DelayQueue(
    settings.parked_in_memory, _wake_parked
)
metrics.parked_waiting.set_function(lambda: len(parking_lane))


def _endpoint_recovered(webhook_id: str) -> None:
    woken = parking_lane.wake(webhook_id)
    if woken:
        log.info("webhook %s recovered: %d parked jobs come back now", webhook_id, woken)


def _drop_stale_parked(_sender: Any, /, *_args: Any, signal: Any, **_kwargs: Any) -> None:
    """A rebalance: every parked record is read again from its committed offset, so the
    lane lets go of the ones it holds (they would keep its room until due)."""
    ledger = commit_ledger()
    dropped = parking_lane.discard(lambda item: item[0].message.generation_id != ledger.generation)
    if dropped:
        log.info("rebalance: %d parked jobs of the ended generation left the lane", dropped)


app.on_partitions_assigned.connect(_drop_stale_parked)
scheduler.on_recovered.append(_endpoint_recovered)
scheduler.on_room.append(parking_lane.wake)


@app.agent(channels.deliveries_parked, name="hookstream.parked", concurrency=1)
async def parked(stream: StreamT[bytes]) -> None:
    """The parking lane: parked jobs wait in memory, by due time, unacknowledged."""
    await wait_ready()
    async for event in unacknowledged(stream).events():
        item = await _decode(event, ParkedJob, "parked")
        if isinstance(item, ParkedJob):
            if item.reason == ParkReason.BUSY.value:
                # Its due time was a guess at when the endpoint has room: if it has now, go.
                ticket = _parked_ticket(event, item)
                if scheduler.room_for(ticket.endpoint) > 0:
                    submit(ticket)
                    continue
            # A rate-limited job holds a reserved slot: it goes at its slot, never earlier.
            early = item.reason != ParkReason.RATE_LIMIT.value
            await parking_lane.put(item.job.webhook_id, item.due_at, (event, item), early)
