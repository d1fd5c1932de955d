"""When a webhook has failed long enough to be disabled (pure; one instance per worker).

A webhook whose every real attempt failed for ``HOOKSTREAM_AUTO_DISABLE_AFTER`` seconds
(default 24 h) is disabled, as the platforms do with endpoints that are gone for good; one
delivered job resets the streak. Attempts, not dead letters: while an endpoint is down its
jobs wait for it (parked, no try spent) and its circuit sends a probe every cooldown, so a dead
endpoint produces failed attempts all day and few dead letters. Once it is disabled, its
waiting jobs are dead-lettered as "webhook is inactive", to be replayed when it is fixed.

Each worker tracks the attempts it makes, so with several workers the first to see the whole
period fail disables it; a restart starts the streak afresh (it errs on the side of
delivering). The streak is measured from this worker's first failed attempt, never from a
job's age: a replayed dead letter keeps the ``created_at`` of its event, and one failure of a
week-old replay must not count as a week of failures.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class FailureStreaks:
    disable_after: float  # seconds; 0 turns auto-disable off
    _since: dict[str, float] = field(default_factory=dict)

    def delivered(self, webhook_id: str) -> None:
        self._since.pop(webhook_id, None)

    def failed(self, webhook_id: str, now: float) -> bool:
        """Record a failed attempt at ``now``; True when every attempt of this webhook has
        failed since at least ``disable_after`` seconds ago."""
        since = self._since.setdefault(webhook_id, now)
        return self.disable_after > 0 and now - since >= self.disable_after
