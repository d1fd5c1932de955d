"""Building the payload of a delivery (pure): standard seed body, or the account's custom mapping.

Standard payload: exactly the seed body of the event (same keys, same order, values from the
event, no extra keys), with the canonical event name. ``contact subscribes`` /
``contact unsubscribes`` send ``event`` followed by the seed-001 data set, flat.

Custom payload (seed 004 "Data Mapping"): one field per mapping, in mapping order; a path is
dotted into the input event as produced (extra keys included, list items by index); a path that
does not resolve gives ``null``.
"""

from __future__ import annotations

from typing import Any

from app.model.events import EventBase
from app.model.webhook_config import Mapping, PathMapping

_MISSING = object()


def standard_payload(event: EventBase, document: dict[str, Any]) -> dict[str, Any]:
    """The seed body of ``event``, read from its validated input ``document``.

    Validation is strict (no coercion), so the document's values are the model's values; reading
    them from the document avoids a model dump per event. ``event`` gives the field order.
    """
    contact = document.get("contact")
    source = {**document, **contact} if isinstance(contact, dict) else document
    payload = {key: source.get(key) for key in event.payload_fields}
    payload["event"] = event.event_name.value
    return payload


def resolve_path(document: Any, path: str) -> Any:
    """The value at dotted ``path`` in ``document``, or ``None`` when any step is missing."""
    current = document
    for segment in path.split("."):
        if isinstance(current, dict):
            current = current.get(segment, _MISSING)
        elif isinstance(current, list) and segment.isdigit():
            index = int(segment)
            current = current[index] if index < len(current) else _MISSING
        else:
            return None
        if current is _MISSING:
            return None
    return current


def custom_payload(event_document: dict[str, Any], mappings: list[Mapping]) -> dict[str, Any]:
    """The account's custom payload for an event given as its input JSON document."""
    out: dict[str, Any] = {}
    for mapping in mappings:
        if isinstance(mapping, PathMapping):
            out[mapping.field] = resolve_path(event_document, mapping.path)
        else:
            out[mapping.field] = mapping.value
    return out
