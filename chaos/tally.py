"""Counting what the loopback endpoints received: by (endpoint path, event), pure.

The receiver records requests; this turns them into the figures the run is judged by: which
events each endpoint answered 2xx (lost = expected minus those), answers beyond one per pair
(duplicates, allowed by at-least-once), and the webhook-ids seen per pair (a duplicate must
carry the same one).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import orjson

#: The payload field that names the event (input_event's ``message_uid``, one per event).
MARKER = "message_uid"

Pair = tuple[str, str]  # (endpoint path, event marker)


class Request(Protocol):
    """What the tally reads of one received request (``harness.Received`` fits)."""

    @property
    def path(self) -> str: ...

    @property
    def headers(self) -> dict[str, str]: ...

    @property
    def body(self) -> bytes: ...


def markers(body: bytes) -> list[str]:
    """The event markers of a request body: one for a single payload, several for a batch."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return []
    items = document if isinstance(document, list) else [document]
    return [str(i[MARKER]) for i in items if isinstance(i, dict) and MARKER in i]


@dataclass
class Tally:
    """2xx answers per pair, absorbed incrementally so polling it while waiting is cheap."""

    expected: Mapping[str, frozenset[str]]
    answered: Counter[Pair] = field(default_factory=Counter)
    unexpected: Counter[str] = field(default_factory=Counter)
    delivered: int = 0
    _cursor: int = 0

    @property
    def total(self) -> int:
        return sum(len(markers) for markers in self.expected.values())

    def absorb(self, succeeded: Sequence[Request]) -> int:
        """Count the 2xx answers added since the last call; the expected pairs delivered."""
        for request in succeeded[self._cursor :]:
            wanted = self.expected.get(request.path, frozenset())
            for marker in markers(request.body):
                pair = (request.path, marker)
                if marker not in wanted:
                    self.unexpected[request.path] += 1
                elif self.answered[pair] == 0:
                    self.delivered += 1
                self.answered[pair] += 1
        self._cursor = len(succeeded)
        return self.delivered

    def lost(self, path: str) -> list[str]:
        """Expected events of ``path`` never answered 2xx, in a stable order."""
        missing = (m for m in self.expected[path] if self.answered[(path, m)] == 0)
        return sorted(missing, key=lambda m: (len(m), m))

    def duplicates(self, path: str) -> int:
        """2xx answers beyond the first per pair of ``path``."""
        return sum(n - 1 for (p, _), n in self.answered.items() if p == path and n > 1)


def answered_pairs(succeeded: Iterable[Request]) -> set[Pair]:
    """Every (path, webhook-id) answered 2xx: the delivery-id view of the same count."""
    return {(r.path, r.headers.get("webhook-id", "")) for r in succeeded}


def ids_per_pair(requests: Iterable[Request]) -> dict[Pair, set[str]]:
    """Every webhook-id sent for each pair, whatever the answer (retries included)."""
    seen: dict[Pair, set[str]] = {}
    for request in requests:
        webhook_id = request.headers.get("webhook-id", "")
        for marker in markers(request.body):
            seen.setdefault((request.path, marker), set()).add(webhook_id)
    return seen


def mismatched(seen: Mapping[Pair, set[str]]) -> dict[str, list[str]]:
    """Per path, the events sent with more than one webhook-id (each a broken promise)."""
    found: dict[str, list[str]] = {}
    for (path, marker), ids in sorted(seen.items()):
        if len(ids) > 1:
            found.setdefault(path, []).append(marker)
    return found
