"""Where a failed delivery goes next (pure): the next retry tier, or the failure topic.

With ``HOOKSTREAM_RETRY_DELAYS=10,60,300`` a job gets 1 try + 3 retries (the seed-001 rule:
"retried up to three times"), each retry on its own tier topic so a long delay never holds up
fresh deliveries or shorter tiers.

Which failures retry (declared here, nowhere else):
- always: no response (timeout, connection error, refused or skipped call), 5xx, 408, 429;
- other 4xx: only while ``HOOKSTREAM_RETRY_ALL_NON_2XX`` is true, the default, because seed 001
  retries anything that is not a 200; with it false they go straight to ``deliveries.failed``;
- 410 Gone: never; the webhook is disabled (see the deliver agent).

Delays get up to ``jitter`` (a fraction) added so that jobs failed together do not return
together, and a ``Retry-After`` on 429/503 is honoured, clamped between the tier's own delay and
the longest tier delay.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

GONE = 410
ALWAYS_RETRIED_4XX = frozenset({408, 429})
RETRY_AFTER_STATUSES = frozenset({429, 503})


@dataclass(frozen=True)
class NextStep:
    """``tier`` is the retry tier to go to (1-based), or ``None`` for the failure topic."""

    tier: int | None
    due_at: float | None
    reason: str | None = None  # why it is not retried, when it is not


def is_retryable(status: int | None, retry_all_non_2xx: bool) -> bool:
    """Whether a failed attempt with this status (None: no response) may be retried."""
    if status is None or status >= 500 or status in ALWAYS_RETRIED_4XX:
        return True
    if status == GONE:
        return False
    return retry_all_non_2xx


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds from ``now`` that a ``Retry-After`` header asks for (delta or HTTP date), or
    ``None`` when it is absent or unreadable: a receiver's header never raises here."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # str.isdigit() alone also takes "²" or "٣"
        return float(value)
    try:
        when = parsedate_to_datetime(value)
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return max(0.0, when.timestamp() - datetime.fromtimestamp(now, UTC).timestamp())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def next_step(
    failed_attempts: int,
    delays: tuple[float, ...],
    now: float,
    *,
    status: int | None = None,
    retry_after: float | None = None,
    retry_all_non_2xx: bool = True,
    max_retries: int | None = None,
    jitter: float = 0.0,
    rng: random.Random | None = None,
) -> NextStep:
    """After ``failed_attempts`` failures (1 = the first try failed), what comes next."""
    if failed_attempts < 1:
        raise ValueError("next_step is for a job that has failed at least once")
    if not is_retryable(status, retry_all_non_2xx):
        return NextStep(None, None, f"HTTP {status} is not retried")
    retries = len(delays) if max_retries is None else min(max_retries, len(delays))
    if failed_attempts > retries:
        return NextStep(None, None)
    delay = delays[failed_attempts - 1]
    if retry_after is not None and status in RETRY_AFTER_STATUSES:
        delay = min(max(retry_after, delay), max(delays))
    if jitter > 0:
        delay += delay * jitter * (rng or random).random()
    return NextStep(tier=failed_attempts, due_at=now + delay)
