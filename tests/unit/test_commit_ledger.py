"""The commit ledger: a partition commits up to its lowest unsettled record, never past it.

The first four cases are the ones Faust's acknowledged-offset list gets wrong (upstream issue
#606); ``test_faust_s_own_bookkeeping_commits_past_unsettled_records`` drives Faust's real
code with the same input to show it, so these tests say what the ledger fixes.
"""

from __future__ import annotations

from typing import Any

import pytest
from faust.transport.consumer import Consumer as FaustConsumer
from faust.types import TP

from app.kafka.commit_ledger import CommitLedger

P0 = TP("events.messages", 0)
P1 = TP("events.messages", 1)
GEN = 7


def ledger_with(
    handed: range, settled: list[int], committed: int | None = None
) -> CommitLedger[TP]:
    ledger: CommitLedger[TP] = CommitLedger()
    ledger.start(GEN)
    ledger.floor(P0, committed)
    for offset in handed:
        assert ledger.hand_over(P0, offset, GEN)
    for offset in settled:
        assert ledger.settle(P0, offset, GEN)
    return ledger


def test_a_fresh_group_commits_up_to_its_first_unsettled_record() -> None:
    # 0..3 delivered, 4..31 queued, 32..999 parked (Faust commits 1000 here).
    ledger = ledger_with(range(1000), [*range(4), *range(32, 1000)])
    assert ledger.committable() == {P0: 4}


def test_the_record_right_after_the_last_commit_holds_the_commit() -> None:
    # Committed 40; 40 unsettled, 41..59 settled (Faust's off-by-one commits 60).
    ledger = ledger_with(range(40, 60), list(range(41, 60)), committed=40)
    assert ledger.committable() == {}
    ledger.settle(P0, 40, GEN)
    assert ledger.committable() == {P0: 60}


def test_a_commit_at_zero_is_checked_like_any_other() -> None:
    # Committed 0; 5..8 settled (Faust commits 9: it checks nothing when committed is 0).
    ledger = ledger_with(range(9), [5, 6, 7, 8], committed=0)
    assert ledger.committable() == {}


def test_nothing_is_committed_while_the_first_record_after_the_commit_is_unsettled() -> None:
    ledger = ledger_with(range(4, 1000), list(range(32, 1000)), committed=4)
    assert ledger.committable() == {}


def test_out_of_order_settles_move_the_position_only_over_settled_records() -> None:
    ledger = ledger_with(range(10), [])
    for offset, expected in [(3, 0), (0, 1), (2, 1), (1, 4), (9, 4), (4, 5), (5, 6)]:
        ledger.settle(P0, offset, GEN)
        assert ledger.committable() == {P0: expected}, offset
    for offset in (6, 7, 8):
        ledger.settle(P0, offset, GEN)
    assert ledger.committable() == {P0: 10}


def test_offsets_without_records_are_passed_over() -> None:
    ledger: CommitLedger[TP] = CommitLedger()
    ledger.start(GEN)
    for offset in (3, 7, 12):  # compacted away or transaction markers between them
        ledger.hand_over(P0, offset, GEN)
    ledger.settle(P0, 3, GEN)
    assert ledger.committable() == {P0: 7}
    ledger.settle(P0, 12, GEN)
    assert ledger.committable() == {P0: 7}
    ledger.settle(P0, 7, GEN)
    assert ledger.committable() == {P0: 13}


def test_commits_never_go_back_or_repeat() -> None:
    ledger = ledger_with(range(10), list(range(5)))
    assert ledger.committable() == {P0: 5}
    ledger.committed({P0: 5})
    assert ledger.committable() == {}
    ledger.settle(P0, 5, GEN)
    assert ledger.committable() == {P0: 6}


def test_a_partition_not_read_in_this_generation_commits_nothing() -> None:
    ledger = ledger_with(range(3), [0, 1, 2])
    ledger.floor(P1, 50)
    assert ledger.committable() == {P0: 3}
    assert ledger.committable([P1]) == {}
    assert ledger.partitions() == [P0]


def test_an_old_generation_s_acknowledgements_settle_nothing_after_a_rebalance() -> None:
    ledger = ledger_with(range(10), [0, 1])
    ledger.start(GEN + 1)  # a rebalance: every partition is read again from its commit
    ledger.floor(P0, 2)
    assert ledger.committable() == {}
    for offset in range(2, 10):  # the old generation's jobs settle late
        assert not ledger.settle(P0, offset, GEN)
    assert ledger.committable() == {}
    assert ledger.outstanding() == 0


def test_a_record_read_again_holds_the_commit_until_its_own_copy_settles() -> None:
    ledger = ledger_with(range(2, 6), [])
    ledger.start(GEN + 1)
    ledger.floor(P0, 2)
    for offset in range(2, 6):
        assert ledger.hand_over(P0, offset, GEN + 1)
    ledger.settle(P0, 2, GEN)  # the first copy, of the ended generation, settles
    assert ledger.committable() == {}
    ledger.settle(P0, 2, GEN + 1)
    assert ledger.committable() == {P0: 3}


def test_a_record_fetched_in_an_ended_generation_is_not_handed_over() -> None:
    ledger: CommitLedger[TP] = CommitLedger()
    assert not ledger.hand_over(P0, 0, None)  # before the first assignment
    ledger.start(GEN)
    assert not ledger.hand_over(P0, 0, GEN - 1)
    assert ledger.partitions() == []


def test_a_record_handed_over_twice_settles_after_both_copies() -> None:
    ledger = ledger_with(range(3), [0])
    assert ledger.hand_over(P0, 1, GEN)  # read again below the highest offset read
    ledger.settle(P0, 1, GEN)
    ledger.settle(P0, 2, GEN)
    assert ledger.committable() == {P0: 1}
    ledger.settle(P0, 1, GEN)
    assert ledger.committable() == {P0: 3}


def test_a_record_below_the_highest_is_kept_in_order() -> None:
    ledger = ledger_with(range(5, 8), [5, 6, 7])
    ledger.hand_over(P0, 3, GEN)  # read again after a seek below the records read
    assert ledger.committable() == {P0: 3}
    ledger.settle(P0, 3, GEN)
    assert ledger.committable() == {P0: 8}


def test_after_close_nothing_is_committable() -> None:
    ledger = ledger_with(range(4), [0, 1, 2, 3])
    ledger.close()
    assert ledger.committable() == {}


def test_partitions_are_independent() -> None:
    ledger: CommitLedger[TP] = CommitLedger()
    ledger.start(GEN)
    for offset in range(5):
        ledger.hand_over(P0, offset, GEN)
        ledger.hand_over(P1, offset, GEN)
    for offset in range(5):
        ledger.settle(P1, offset, GEN)
    ledger.settle(P0, 0, GEN)
    assert ledger.committable() == {P0: 1, P1: 5}
    assert ledger.committable([P1]) == {P1: 5}


class _FaustBookkeeping:
    """Faust's own acknowledged-offset logic, run without an app or a broker."""

    _new_offset = FaustConsumer._new_offset
    _should_commit = FaustConsumer._should_commit
    _filter_committable_offsets = FaustConsumer._filter_committable_offsets

    def __init__(self, committed: int | None, acked: list[int]) -> None:
        from collections import defaultdict

        from intervaltree import IntervalTree

        self._committed_offset: Any = defaultdict(lambda: None)
        self._committed_offset[P0] = committed
        self._acked: Any = defaultdict(list)
        self._acked[P0] = list(acked)
        self._acked_index: Any = defaultdict(set)
        self._acked_index[P0] = set(acked)
        self._gap: Any = defaultdict(IntervalTree)


@pytest.mark.parametrize(
    ("committed", "acked", "faust_commits", "ledger_commits", "handed"),
    [
        (None, [*range(4), *range(32, 1000)], 4, 4, range(1000)),
        (None, list(range(32, 1000)), 1000, 0, range(1000)),
        (40, list(range(41, 60)), 60, None, range(40, 60)),
        (0, [5, 6, 7, 8], 9, None, range(9)),
        (4, list(range(32, 1000)), None, None, range(4, 1000)),
    ],
)
def test_faust_s_own_bookkeeping_commits_past_unsettled_records(
    committed: int | None,
    acked: list[int],
    faust_commits: int | None,
    ledger_commits: int | None,
    handed: range,
) -> None:
    faust = _FaustBookkeeping(committed, acked)._filter_committable_offsets([P0])
    assert faust.get(P0) == faust_commits
    ledger = ledger_with(handed, acked, committed)
    assert ledger.committable().get(P0) == ledger_commits
