"""The commit position: which offset of each input partition may be committed.

hookstream settles records out of order on purpose (a parked job settles at once, a queued one
seconds later, a retry waits out its delay). Faust commits the first run of consecutive
*acknowledged* offsets (``Consumer._new_offset``, faust-streaming 0.15.3 and upstream HEAD,
upstream issue #606), which is wrong for that input: with no commit yet (or a commit at 0) it
checks nothing, so acknowledged 32..999 over unacknowledged 4..31 commits 1000; and
``min(acked) - committed > 1`` lets the offset right after the last commit be unacknowledged
(committed 40, 40 unacknowledged, 41..59 acknowledged: it commits 60). A crash then loses the
records it committed past. So the position is kept here, from the records themselves:

- every record handed to an agent is *outstanding* until it settles (all its jobs delivered,
  on a retry tier, parked or dead-lettered: :mod:`app.agents.custody`);
- a partition's committable offset is its lowest outstanding offset, or the highest offset
  handed over + 1 when none is outstanding (offsets with no record, from compaction or
  transaction markers, are passed over by construction); never at or below the last commit;
  nothing for a partition that was not read in this generation;
- it is kept per consumer generation: a rebalance starts afresh (every partition is read
  again from its committed offset), and a hand-over or a settle of another generation changes
  nothing, so a record of an old generation can never settle a record read again.

Pure bookkeeping with no Faust or broker in it, so it is unit-tested on its own; the consumer
in :mod:`app.kafka.transport` feeds it and commits what it allows.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Hashable, Iterable, Mapping
from typing import Generic, TypeVar

#: A topic-partition (Faust's and aiokafka's ``TP`` are both hashable named tuples).
Partition = TypeVar("Partition", bound=Hashable)


class _Offsets:
    """One partition's records of the current generation, in the order of their offsets."""

    __slots__ = ("next", "order", "outstanding")

    def __init__(self) -> None:
        #: Offsets handed over, ascending; settled ones are dropped from the front lazily.
        self.order: deque[int] = deque()
        #: Outstanding offset -> how many hand-overs of it have not settled.
        self.outstanding: dict[int, int] = {}
        #: The highest offset handed over + 1.
        self.next = 0

    def add(self, offset: int) -> None:
        outstanding = self.outstanding
        count = outstanding.get(offset)
        outstanding[offset] = 1 if count is None else count + 1
        if offset >= self.next:
            self.order.append(offset)
            self.next = offset + 1
        elif count is None:  # handed over again below the highest one: keep the order sorted
            bisect.insort(self.order, offset)

    def settle(self, offset: int) -> bool:
        count = self.outstanding.get(offset)
        if count is None:
            return False
        if count == 1:
            del self.outstanding[offset]
        else:
            self.outstanding[offset] = count - 1
        return True

    def position(self) -> int:
        """The lowest outstanding offset, or the next offset to read when none is."""
        order, outstanding = self.order, self.outstanding
        while order and order[0] not in outstanding:
            order.popleft()
        if len(order) > 2 * len(outstanding) + 1024:
            # One record held for long (an ordered job through its retries) keeps every later
            # settled offset behind it: only the outstanding ones are needed.
            order = self.order = deque(sorted(outstanding))
        return order[0] if order else self.next


class CommitLedger(Generic[Partition]):
    """The records of one consumer handed to its agents and not yet settled."""

    def __init__(self) -> None:
        #: The consumer generation being read; None before the first assignment.
        self.generation: int | None = None
        self._partitions: dict[Partition, _Offsets] = {}
        #: The last committed offset known per partition (read at assignment, raised by
        #: every commit): nothing at or below it is committed again.
        self._floor: dict[Partition, int] = {}
        self._closed = False

    # -- the consumer's side -----------------------------------------------------------------
    def start(self, generation: int) -> None:
        """A new generation: forget every record handed over before (each is read again)."""
        self.generation = generation
        self._partitions = {}
        self._floor = {}

    def floor(self, partition: Partition, committed: int | None) -> None:
        """The partition's committed offset as read when the generation started."""
        if committed is not None and committed >= 0:
            self._floor[partition] = max(committed, self._floor.get(partition, -1))

    def hand_over(self, partition: Partition, offset: int, generation: int | None) -> bool:
        """A record goes to an agent; False (keep it from the agent) when it was fetched in a
        generation that has ended."""
        if generation != self.generation or generation is None:
            return False
        offsets = self._partitions.get(partition)
        if offsets is None:
            offsets = self._partitions[partition] = _Offsets()
        offsets.add(offset)
        return True

    def settle(self, partition: Partition, offset: int, generation: int | None) -> bool:
        """The record's jobs all settled. A record of another generation settles nothing:
        its partition is read again from the committed offset, and that copy decides."""
        if generation != self.generation:
            return False
        offsets = self._partitions.get(partition)
        return offsets is not None and offsets.settle(offset)

    def committed(self, offsets: Mapping[Partition, int]) -> None:
        """These offsets are committed on the broker."""
        floor = self._floor
        for partition, offset in offsets.items():
            if offset > floor.get(partition, -1):
                floor[partition] = offset

    def close(self) -> None:
        """The graceful stop committed its last: nothing is committable after this, whatever
        settles later (a request still running, a retry waiting out its delay)."""
        self._closed = True

    # -- what may be committed ---------------------------------------------------------------
    def partitions(self) -> list[Partition]:
        """The partitions read in this generation."""
        return list(self._partitions)

    def committable(self, partitions: Iterable[Partition] | None = None) -> dict[Partition, int]:
        """Per partition read in this generation (of ``partitions``, or all), the offset a
        commit may move to, where that is past the last commit."""
        if self._closed:
            return {}
        chosen = self._partitions if partitions is None else partitions
        floor = self._floor
        result: dict[Partition, int] = {}
        for partition in chosen:
            offsets = self._partitions.get(partition)
            if offsets is None:
                continue
            position = offsets.position()
            if position > floor.get(partition, -1):
                result[partition] = position
        return result

    def outstanding(self) -> int:
        """Records handed over in this generation and not yet settled."""
        return sum(len(o.outstanding) for o in self._partitions.values())
