"""Standard and custom payloads, built from validated events (pure)."""

from __future__ import annotations

import orjson
import pytest

from app.flow.join import parse_event
from app.flow.payload import custom_payload, resolve_path, standard_payload
from app.model.events import EventFamily
from app.model.webhook_config import PathMapping, StaticMapping
from tests.seed_bodies import SEED_BODIES, expected_payload, family_of, input_event


@pytest.mark.parametrize("name", list(SEED_BODIES))
def test_standard_payload_is_the_seed_body_in_seed_order(name: str) -> None:
    raw = orjson.dumps(input_event(name, "acct", event_id="e1", campaign_id=7, extra={"x": 1}))
    event, document = parse_event(raw, EventFamily(family_of(name)))
    payload = standard_payload(event, document)
    assert payload == expected_payload(name)
    assert list(payload) == list(expected_payload(name))


def test_contact_data_set_attributes_missing_on_input_are_sent_as_null() -> None:
    raw = orjson.dumps(
        {"event": "contact unsubscribes", "account_id": "a", "contact": {"msisdn": 1}}
    )
    event, document = parse_event(raw, EventFamily.CONTACTS)
    payload = standard_payload(event, document)
    assert payload["msisdn"] == 1 and payload["last_click_date"] is None
    assert len(payload) == 21


def test_custom_payload_follows_mapping_order_and_gives_null_for_missing_paths() -> None:
    document = {"contact": {"ecom_email": "u@example.com"}, "groups": ["g0", "g1"]}
    mappings = [
        StaticMapping(field="source", value="webhook"),
        PathMapping(field="email", path="contact.ecom_email"),
        PathMapping(field="second_group", path="groups.1"),
        PathMapping(field="absent", path="contact.nope.deeper"),
        PathMapping(field="out_of_range", path="groups.9"),
    ]
    payload = custom_payload(document, mappings)
    assert list(payload.items()) == [
        ("source", "webhook"),
        ("email", "u@example.com"),
        ("second_group", "g1"),
        ("absent", None),
        ("out_of_range", None),
    ]


def test_resolve_path_does_not_index_into_strings() -> None:
    assert resolve_path({"a": "text"}, "a.0") is None
