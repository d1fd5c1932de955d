"""The disruption schedule of a chaos run: pure, drawn from the seed alone.

Deciding when and what to disrupt apart from doing it keeps a run reproducible: the same seed
gives the same kinds, in the same order, at the same points of progress, on the same worker
slots (the live set evolves only through the schedule itself).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    """What a disruption does."""

    #: SIGKILL a worker and start it again at once (nothing graceful, no commit on the way).
    KILL = "sigkill"
    #: Start one more worker in the group: a rebalance while work is in flight.
    JOIN = "join"
    #: SIGTERM a worker (the graceful stop); it is restarted at once or left down.
    TERM = "sigterm"
    #: SIGKILL the broker and restart it on its data dir (Apache Kafka only).
    BROKER = "broker-kill"


#: Progress (share of the expected deliveries) between which disruptions are spread: late
#: enough that work is in flight, early enough that work is left for after the last one.
FIRST, LAST = 0.05, 0.8


@dataclass(frozen=True)
class Planned:
    """One disruption: its kind, the progress that triggers it, and its seeded choices."""

    kind: Kind
    at_progress: float
    #: Which live worker it hits: index ``int(pick * live)`` of the live workers by slot.
    pick: float
    #: For SIGTERM: restart the stopped worker at once (else it stays down until a join).
    restart: bool
    #: For a broker kill: seconds the broker stays down.
    outage: float


def required_kinds(broker_kill: bool) -> list[Kind]:
    """The kinds every run has at least once (the broker kill only on a broker it owns)."""
    return [Kind.KILL, Kind.JOIN, Kind.TERM, *([Kind.BROKER] if broker_kill else [])]


def plan(seed: int, count: int, broker_kill: bool) -> list[Planned]:
    """``count`` disruptions (at least the required kinds), spread over the progress range:
    one per equal slot, at a seeded point inside it, so two never fall on top of each other."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible schedule, not a secret
    kinds = required_kinds(broker_kill)
    count = max(count, len(kinds))
    extra = [Kind.KILL, Kind.KILL, Kind.TERM, Kind.JOIN]
    kinds += [rng.choice(extra) for _ in range(count - len(kinds))]
    rng.shuffle(kinds)
    width = (LAST - FIRST) / count
    return [
        Planned(
            kind=kind,
            at_progress=round(FIRST + width * (i + rng.uniform(0.2, 0.8)), 4),
            pick=rng.random(),
            restart=rng.random() < 0.5,
            outage=round(rng.uniform(1.0, 3.0), 2),
        )
        for i, kind in enumerate(kinds)
    ]


def flaky_events(seed: int, events: int, share: float) -> set[int]:
    """The events whose first attempt at the flaky endpoint fails: ``share`` of them, by seed."""
    rng = random.Random(f"flaky:{seed}")  # noqa: S311 - a reproducible choice, not a secret
    return {n for n in range(events) if rng.random() < share}
