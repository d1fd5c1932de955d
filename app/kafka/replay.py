"""Listing and replaying dead letters (API ``/api/failed`` and ``hookstream replay``).

A replay puts the dead letter's job back on ``deliveries`` untouched, so it keeps its delivery
id (receivers that already got it can drop it) and starts again with a fresh retry budget. A
dead batch puts back its members, which are batched again as they are sent.
A delivery id that failed more than once is replayed once, from its newest dead letter.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Iterable

import orjson
from pydantic import ValidationError

from app.kafka.log_scan import Scan, scan_topic
from app.kafka.topics import TopicCatalog
from app.model.records import AttemptRecord, DeadLetter, DeliveryBatch, Outcome
from app.settings import Settings

Send = Callable[[bytes, bytes], Awaitable[None]]


def _decode_letter(key: bytes | None, value: bytes) -> DeadLetter | None:
    try:
        letter: DeadLetter = DeadLetter.from_bytes(value)
    except (ValidationError, orjson.JSONDecodeError):
        return None
    return letter


async def list_dead_letters(
    settings: Settings, webhook_ids: Collection[str] | None = None, newest: int | None = None
) -> Scan[DeadLetter]:
    """Dead letters (newest first) among the newest records of ``deliveries.failed``: those of
    ``webhook_ids`` when given (filtered by record key, before decoding), the ``newest`` when
    given; ``truncated`` when the scan ran out of time."""
    scan = await scan_topic(
        settings,
        TopicCatalog.from_settings(settings).deliveries_failed,
        _decode_letter,
        settings.log_scan_records,
        keys={w.encode() for w in webhook_ids} if webhook_ids is not None else None,
        newest=newest,
    )
    scan.items.sort(key=lambda x: x.failed_at, reverse=True)
    if newest is not None:
        del scan.items[newest:]
    return scan


def select(
    letters: Iterable[DeadLetter],
    delivery_ids: list[str] | None,
    webhook_id: str | None,
    since: float | None,
    until: float | None,
) -> list[DeadLetter]:
    """The letters matching every given criterion, one per delivery id (the newest)."""
    wanted = set(delivery_ids) if delivery_ids is not None else None
    newest: dict[str, DeadLetter] = {}
    for letter in letters:
        if wanted is not None and letter.job.delivery_id not in wanted:
            continue
        if webhook_id is not None and letter.job.webhook_id != webhook_id:
            continue
        if since is not None and letter.failed_at < since:
            continue
        if until is not None and letter.failed_at >= until:
            continue
        seen = newest.get(letter.job.delivery_id)
        if seen is None or letter.failed_at > seen.failed_at:
            newest[letter.job.delivery_id] = letter
    return sorted(newest.values(), key=lambda x: x.failed_at)


async def delivered_since_failing(settings: Settings, letters: Collection[DeadLetter]) -> set[str]:
    """Delivery ids of ``letters`` delivered after they failed (a replay went through), from
    the newest attempt records of their webhooks: they are failures no longer."""
    failed_at = {letter.job.delivery_id: letter.failed_at for letter in letters}
    if not failed_at:
        return set()

    def delivered(_key: bytes | None, value: bytes) -> list[str] | None:
        try:
            record = AttemptRecord.from_bytes(value)
        except (ValidationError, orjson.JSONDecodeError):
            return None
        if record.outcome is not Outcome.DELIVERED:
            return None
        ids = [record.delivery_id, *(record.members or ())]
        found = [i for i in ids if i in failed_at and record.result.at >= failed_at[i]]
        return found or None

    scan = await scan_topic(
        settings,
        TopicCatalog.from_settings(settings).attempts,
        delivered,
        settings.log_scan_records,
        keys={letter.job.webhook_id.encode() for letter in letters},
    )
    return {delivery_id for found in scan.items for delivery_id in found}


async def replay(letters: list[DeadLetter], send: Send) -> list[str]:
    """Put each letter's job back on ``deliveries``; return the delivery ids."""
    for letter in letters:
        # A dead batch replays its members (they are batched again as they are sent).
        jobs = letter.job.members if letter.job.members is not None else [letter.job]
        batch = DeliveryBatch(jobs=jobs)
        await send(letter.job.webhook_id.encode(), batch.to_bytes())
    return [letter.job.delivery_id for letter in letters]
