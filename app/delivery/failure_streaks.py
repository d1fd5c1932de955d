"""When a webhook has failed long enough to be disabled (pure; one instance per worker).

A *delivery* fails when its job is dead-lettered after all its attempts. A webhook whose every
delivery failed for ``HOOKSTREAM_AUTO_DISABLE_AFTER`` seconds (default 24 h) is disabled, as the
platforms do with endpoints that are gone for good; one delivered job resets the streak. Each
worker tracks the deliveries it makes, so with several workers the first to see a day of
failures disables it; a restart starts the streak afresh (it errs on the side of delivering).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class FailureStreaks:
    disable_after: float  # seconds; 0 turns auto-disable off
    _since: dict[str, float] = field(default_factory=dict)

    def delivered(self, webhook_id: str) -> None:
        self._since.pop(webhook_id, None)

    def failed(self, webhook_id: str, started_at: float, now: float) -> bool:
        """Record a failed delivery that began at ``started_at``; True when it is time to
        disable the webhook."""
        since = self._since.setdefault(webhook_id, started_at)
        return self.disable_after > 0 and now - since >= self.disable_after
