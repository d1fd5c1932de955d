"""Every topic hookstream uses, named once: names, partition counts and configs.

:class:`TopicCatalog` is pure (the CLI, tests and manifests use it to create or list topics);
:mod:`app.runtime.channels` turns it into Faust topic objects. Names are relative to
``HOOKSTREAM_TOPIC_PREFIX``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from app.model.events import EventFamily
from app.settings import Settings

EVENTS_CONTACTS = "events.contacts"
EVENTS_MESSAGES = "events.messages"
WEBHOOKS = "webhooks"
DELIVERIES = "deliveries"
RETRY_TIER_FORMAT = "deliveries.retry.{tier}"
DELIVERIES_FAILED = "deliveries.failed"
DELIVERIES_PARKED = "deliveries.parked"
ATTEMPTS = "attempts"
EVENTS_INVALID = "events.invalid"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TopicCatalog:
    """Full topic names for one deployment (prefix + relative name)."""

    prefix: str
    partitions: int
    retry_tiers: int

    @classmethod
    def from_settings(cls, settings: Settings) -> TopicCatalog:
        return cls(settings.topic_prefix, settings.partitions, len(settings.retry_delays))

    def name(self, relative: str) -> str:
        return self.prefix + relative

    @property
    def events_contacts(self) -> str:
        return self.name(EVENTS_CONTACTS)

    @property
    def events_messages(self) -> str:
        return self.name(EVENTS_MESSAGES)

    def events_for(self, family: EventFamily) -> str:
        return self.events_contacts if family is EventFamily.CONTACTS else self.events_messages

    @property
    def webhooks(self) -> str:
        return self.name(WEBHOOKS)

    @property
    def deliveries(self) -> str:
        return self.name(DELIVERIES)

    def retry(self, tier: int) -> str:
        if not 1 <= tier <= self.retry_tiers:
            raise ValueError(f"retry tier {tier} does not exist (1..{self.retry_tiers})")
        return self.name(RETRY_TIER_FORMAT.format(tier=tier))

    @property
    def deliveries_failed(self) -> str:
        return self.name(DELIVERIES_FAILED)

    @property
    def deliveries_parked(self) -> str:
        return self.name(DELIVERIES_PARKED)

    @property
    def attempts(self) -> str:
        return self.name(ATTEMPTS)

    @property
    def events_invalid(self) -> str:
        return self.name(EVENTS_INVALID)

    def specs(self) -> list[TopicSpec]:
        """Every topic with its partitions and config, for ``hookstream topics create``."""
        plain = [
            self.events_contacts,
            self.events_messages,
            self.deliveries,
            *(self.retry(t) for t in range(1, self.retry_tiers + 1)),
            self.deliveries_parked,
            self.deliveries_failed,
            self.attempts,
            self.events_invalid,
        ]
        return [
            TopicSpec(self.webhooks, self.partitions, {"cleanup.policy": "compact"}),
            *(TopicSpec(name, self.partitions) for name in plain),
        ]
