"""Ingest: validate each input event, join it with the config view, and hand its jobs to the
delivery scheduler.

The jobs of an event go straight to the scheduler, with no topic hop in between: on the happy
path an event costs one consumed message and one attempt record per webhook. The agent does not
wait for them: the event is acknowledged once all its jobs settled (:mod:`app.agents.custody`),
so a slow endpoint holds no actor and no other account's events. A job travels alone on Kafka
only when it fails (retry tiers) or must wait (the parking lane). ``deliveries`` remains the
entry point for jobs that do not come from an event (replays), served by the deliver agent.
"""

from __future__ import annotations

import logging
import time

from faust.types import EventT, StreamT

from app import metrics
from app.agents.custody import Custody, Generation, unacknowledged
from app.agents.deliver import scheduler, submit_jobs
from app.agents.reporting import report_invalid
from app.flow.join import jobs_for_event, parse_event
from app.main import app, settings
from app.model.errors import InvalidInputError
from app.model.records import SourceRef
from app.runtime import channels
from app.runtime.state import commit_ledger, config_view, wait_ready

log = logging.getLogger(__name__)


def _family(topic: str) -> str:
    family = channels.FAMILY_BY_TOPIC.get(topic)
    return family.value if family is not None else "unknown"


@app.agent(channels.events, name="hookstream.ingest", concurrency=settings.delivery_concurrency)
async def ingest(stream: StreamT[bytes]) -> None:
    await wait_ready()
    ledger = commit_ledger()
    async for event in unacknowledged(stream).events():
        await _ingest_one(event, ledger)


async def _ingest_one(event: EventT[bytes], ledger: Generation) -> None:
    """Validate, join and deliver one event; bad input goes to events.invalid."""
    message = event.message
    try:
        family = channels.FAMILY_BY_TOPIC[message.topic]
        parsed, document = parse_event(event.value, family)
        source = SourceRef(topic=message.topic, partition=message.partition, offset=message.offset)
        key = message.key if isinstance(message.key, bytes) else None
        jobs = jobs_for_event(
            parsed, document, config_view.for_account(parsed.account_id), source, time.time(), key
        )
    except InvalidInputError as exc:
        metrics.events_in.labels(_family(message.topic), "invalid").inc()
        await report_invalid(event, str(exc), stage="ingest")
        Custody(event, 0, ledger)  # on events.invalid: done with
        return
    except Exception as exc:  # a bug must not stop the agent or lose the event
        log.exception(
            "ingest failed on %s[%d]@%d", message.topic, message.partition, message.offset
        )
        await report_invalid(event, f"internal error: {type(exc).__name__}: {exc}", "ingest")
        Custody(event, 0, ledger)
        return
    metrics.child(metrics.events_in, family.value, "valid").inc()
    if jobs:
        await scheduler.room()  # the worker's memory bound, shared by every endpoint
    submit_jobs(jobs, Custody(event, len(jobs), ledger))
