"""When a webhook has failed long enough to be disabled (pure; one instance per worker).

A *delivery* fails when its job is dead-lettered after all its attempts. A webhook whose every
delivery failed for ``HOOKSTREAM_AUTO_DISABLE_AFTER`` seconds (default 24 h) is disabled, as the
platforms do with endpoints that are gone for good; one delivered job resets the streak. Each
worker tracks the deliveries it makes, so with several workers the first to see a day of
failures disables it; a restart starts the streak afresh (it errs on the side of delivering).

The streak is measured from this worker's first failed delivery, never from a job's age: a
replayed dead letter keeps the ``created_at`` of its event, and one failure of a week-old
replay must not count as a week of failures.
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
        """Record a failed delivery at ``now``; True when every delivery of this webhook has
        failed since at least ``disable_after`` seconds ago."""
        since = self._since.setdefault(webhook_id, now)
        return self.disable_after > 0 and now - since >= self.disable_after
