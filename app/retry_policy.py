"""Where a failed delivery goes next (pure): the next retry tier, or the failure topic.

With ``HOOKSTREAM_RETRY_DELAYS=10,60,300`` a job gets 1 try + 3 retries (the seed-001 rule:
"retried up to three times"), each retry on its own tier topic so a long delay never holds up
fresh deliveries or shorter tiers.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NextStep:
    """``tier`` is the retry tier to go to (1-based), or ``None`` for the failure topic."""

    tier: int | None
    due_at: float | None


def next_step(failed_attempts: int, delays: tuple[float, ...], now: float) -> NextStep:
    """After ``failed_attempts`` failures (1 = the first try failed), what comes next."""
    if failed_attempts < 1:
        raise ValueError("next_step is for a job that has failed at least once")
    if failed_attempts > len(delays):
        return NextStep(tier=None, due_at=None)
    return NextStep(tier=failed_attempts, due_at=now + delays[failed_attempts - 1])
