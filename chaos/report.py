"""The report of a chaos run: its figures, the verdict, and the two ways it is shown (a block
of text for a person, JSON for the record in ``chaos/results/``)."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Done:
    """One disruption as it happened."""

    kind: str
    #: Seconds since the events were produced.
    at: float
    #: Expected deliveries answered 2xx when it fired, and their share.
    progress: int
    share: float
    target: str
    note: str = ""
    #: Seconds until the group had its worker (or broker) back; None when none came back.
    back_after: float | None = None


@dataclass
class EndpointFigures:
    """What one endpoint got."""

    path: str
    behaviour: str
    expected: int
    delivered: int
    #: Distinct webhook-ids answered 2xx: equals ``delivered`` when each event has one id.
    ids_answered: int
    #: Expected events never answered 2xx by the end of the run.
    lost: int
    #: Of those, the ones whose input record the group had committed past at the end: nothing
    #: reads them again (unless a job of theirs waits on a retry or parking topic).
    committed_past: int
    duplicates: int
    requests: int
    mismatched_ids: int
    unexpected: int


@dataclass
class Missing:
    """Where a lost event's input record is, and whether the group committed past it."""

    endpoint: str
    marker: str
    partition: int
    offset: int
    committed: int | None

    @property
    def committed_past(self) -> bool:
        return self.committed is not None and self.committed > self.offset


@dataclass
class Report:
    """Every figure of one run; ``failures`` empty means the run proved the promise."""

    engine: str
    broker: str
    seed: int
    events: int
    partitions: int
    bursts: int
    settings: dict[str, str]
    endpoints: list[EndpointFigures] = field(default_factory=list)
    workers_at_start: int = 0
    workers_started: int = 0
    workers_at_end: int = 0
    disruptions: list[Done] = field(default_factory=list)
    disruptions_planned: int = 0
    unplanned_exits: list[str] = field(default_factory=list)
    #: Records on ``deliveries.failed`` (None: the topic could not be read to its end).
    dead_letters: int | None = None
    parked_records: int | None = None
    retry_records: int | None = None
    drain: str = "not reached"
    drain_seconds_after_last_disruption: float | None = None
    produce_seconds: float = 0.0
    total_seconds: float = 0.0
    committed: dict[int, int] = field(default_factory=dict)
    missing: list[Missing] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def lost(self) -> int:
        return sum(e.lost for e in self.endpoints)

    @property
    def mismatched_ids(self) -> int:
        return sum(e.mismatched_ids for e in self.endpoints)

    def judge(self) -> None:
        """Name every broken promise: loss, a duplicate with another id, a dead letter, a
        drain that did not finish."""
        for e in self.endpoints:
            if e.lost:
                self.failures.append(
                    f"{e.lost} event(s) lost at {e.path} ({e.committed_past} committed past)"
                )
            if e.mismatched_ids:
                self.failures.append(f"{e.mismatched_ids} event(s) at {e.path} sent with 2+ ids")
        if self.dead_letters is None:
            self.failures.append("the dead letters could not be counted")
        elif self.dead_letters:
            self.failures.append(f"{self.dead_letters} dead letter(s)")
        if self.drain != "drained":
            self.failures.append(f"drain {self.drain}")

    def to_json(self) -> dict[str, Any]:
        document = asdict(self)
        document["missing"] = [
            {**asdict(m), "committed_past": m.committed_past} for m in self.missing
        ]
        return {"ok": self.ok, "lost": self.lost, **document}

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")

    def text(self) -> str:
        return "\n".join(_lines(self))


def _lines(r: Report) -> list[str]:
    kinds = Counter(d.kind for d in r.disruptions)
    lines = [
        "== chaos run report",
        f"engine       {r.engine} (broker {r.broker}), seed {r.seed}, {r.events} events, "
        f"{r.partitions} partitions; produced in {r.bursts} bursts over {r.produce_seconds:.1f} s",
        f"workers      {r.workers_at_start} at start, {r.workers_started} started in all, "
        f"{r.workers_at_end} at the end",
        f"disruptions  {len(r.disruptions)} of {r.disruptions_planned} planned: "
        + (", ".join(f"{k} x{n}" for k, n in sorted(kinds.items())) or "none"),
    ]
    lines += [
        f"  {d.at:7.1f} s  {d.kind:<11} {d.target:<9} at {d.progress} ({d.share:.0%})"
        + (f", back after {d.back_after:.1f} s" if d.back_after is not None else "")
        + (f"; {d.note}" if d.note else "")
        for d in r.disruptions
    ]
    lines += [f"  unplanned: {u}" for u in r.unplanned_exits]
    lines.append(
        f"{'endpoint':<10} {'behaviour':<24} {'expected':>8} {'delivered':>9} {'ids 2xx':>8} "
        f"{'lost':>6} {'dupes':>6} {'requests':>8} {'2+ ids':>6}"
    )
    lines += [
        f"{e.path:<10} {e.behaviour:<24} {e.expected:>8} {e.delivered:>9} {e.ids_answered:>8} "
        f"{e.lost:>6} "
        f"{e.duplicates:>6} {e.requests:>8} {e.mismatched_ids:>6}"
        + (f"  ({e.unexpected} unexpected)" if e.unexpected else "")
        for e in r.endpoints
    ]
    after = r.drain_seconds_after_last_disruption
    lines += [
        f"dead letters {r.dead_letters}; parked records {r.parked_records}, "
        f"retry-tier records {r.retry_records}",
        f"drain        {r.drain}"
        + (f", {after:.1f} s after the last disruption" if after is not None else ""),
        f"time         {r.total_seconds:.1f} s in all",
    ]
    if r.missing:
        past = sum(m.committed_past for m in r.missing)
        lines.append(
            f"missing      {len(r.missing)} shown, {past} below the group's committed offset:"
        )
        lines += [
            f"  {m.endpoint} {m.marker}: partition {m.partition} offset {m.offset}, "
            f"committed {m.committed}" + (" (committed past it)" if m.committed_past else "")
            for m in r.missing
        ]
    lines.append("RESULT       " + ("PASS" if r.ok else "FAIL: " + "; ".join(r.failures)))
    return lines
