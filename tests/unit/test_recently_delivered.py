"""The recently delivered ids: what is remembered, and that the oldest go first."""

from __future__ import annotations

from app.delivery.recently_delivered import RecentlyDelivered


def test_ids_are_remembered_up_to_the_capacity_and_the_oldest_forgotten_first() -> None:
    memo = RecentlyDelivered(3)
    for delivery_id in ("a", "b", "c", "b"):
        memo.add(delivery_id)
    assert "a" in memo and "b" in memo and "c" in memo and len(memo) == 3
    memo.add("d")
    assert "a" not in memo and {"b", "c", "d"} == {i for i in "abcd" if i in memo}
    memo.add("e")
    memo.add("f")
    assert len(memo) == 3 and {i for i in "abcdef" if i in memo} == {"d", "e", "f"}
