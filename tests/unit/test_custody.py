"""Custody: a record is acknowledged once all its jobs settled, and never once stale."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from faust.types import TP

from app.agents.custody import Custody
from app.kafka.commit_ledger import CommitLedger

PARTITION = TP("events.messages", 0)


@dataclass
class _Message:
    offset: int
    generation_id: int
    tp: TP = PARTITION


@dataclass
class _Event:
    """A Faust event whose acknowledgement settles its record in the ledger, as the
    transport's consumer does."""

    message: _Message
    ledger: CommitLedger[TP]
    acks: list[int] = field(default_factory=list)

    def ack(self) -> bool:
        self.acks.append(self.message.offset)
        return self.ledger.settle(self.message.tp, self.message.offset, self.message.generation_id)


def _read(ledger: CommitLedger[TP], offset: int) -> Any:
    generation = ledger.generation
    assert generation is not None
    assert ledger.hand_over(PARTITION, offset, generation)
    return _Event(_Message(offset, generation), ledger)


def test_a_record_is_acknowledged_after_its_last_job_settled() -> None:
    ledger: CommitLedger[TP] = CommitLedger()
    ledger.start(1)
    event = _read(ledger, 0)
    custody = Custody(event, 3, ledger)
    custody.settle()
    custody.settle()
    assert event.acks == []
    assert ledger.committable() == {PARTITION: 0}  # a new group's position: its first record
    custody.settle()
    assert event.acks == [0]
    assert ledger.committable() == {PARTITION: 1}


def test_a_record_without_jobs_is_acknowledged_at_once() -> None:
    ledger: CommitLedger[TP] = CommitLedger()
    ledger.start(1)
    event = _read(ledger, 0)
    Custody(event, 0, ledger)
    assert event.acks == [0]


def test_after_a_rebalance_a_record_is_stale_and_settling_it_acknowledges_nothing() -> None:
    ledger: CommitLedger[TP] = CommitLedger()
    ledger.start(1)
    event = _read(ledger, 4)
    custody = Custody(event, 1, ledger)
    assert not custody.stale()
    ledger.start(2)  # kept or revoked, the partition is read again from its commit
    assert custody.stale()
    custody.settle()
    assert event.acks == []
    again = _read(ledger, 4)
    Custody(again, 1, ledger).settle()
    assert again.acks == [4]
    assert ledger.committable() == {PARTITION: 5}
