"""Fuzzing the pipeline's input: hypothesis-generated events and configs, interleaved with
valid traffic, on a real worker.

Each generated record must either be delivered (if it happens to be valid: the fuzz account
has a webhook) or land on ``events.invalid`` with a specific reason; valid events sent in
between must all be delivered, so no agent stopped. Which of the two a record deserves is
decided by an oracle written here from the seed bodies (:func:`expect_valid_event`), not by
the validators under test.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.integration.conftest import Pipeline
from tests.integration.harness import Kafka, Receiver, unique, wait_until
from tests.seed_bodies import CONTACT_DATA_SET, SEED_BODIES, family_of, input_event

pytestmark = pytest.mark.slow

#: The account of every generated event (a mutation may change it).
FUZZ_ACCOUNT = "acct_fuzz"

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=50),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=20,
)


@st.composite
def mutated_event(draw: st.DrawFn) -> bytes:
    """A seed event with one field deleted or replaced by an arbitrary JSON value."""
    name = draw(st.sampled_from(sorted(SEED_BODIES)))
    event = input_event(name, FUZZ_ACCOUNT)
    field = draw(st.sampled_from(sorted(event)))
    if draw(st.booleans()):
        del event[field]
    else:
        event[field] = draw(json_values)
    return orjson.dumps(event)


SPECIAL = {
    "deep nesting": b"[" * 5000 + b"]" * 5000,
    "1 MiB body": b'{"event": "message sent", "account_id": "a", "name": "'
    + b"x" * 1_000_000
    + b'"}',
    "invalid UTF-8": b'{"event": "message sent", "account_id": "\xff\xfe"}',
    "empty": b"",
    "null": b"null",
}


def special(name: str) -> bytes:
    return SPECIAL[name]


bad_event = st.one_of(
    st.binary(max_size=300),
    json_values.map(orjson.dumps),
    mutated_event(),
    st.text(max_size=40).map(lambda n: orjson.dumps({"event": n, "account_id": "a"})),
    st.sampled_from(sorted(SPECIAL)).map(special),
)
bad_config = st.one_of(
    st.binary(max_size=200),
    st.dictionaries(
        st.sampled_from(["url", "events", "method", "auth", "secret", "custom_payload", "x"]),
        json_values,
        max_size=4,
    ).map(lambda d: orjson.dumps({"account_id": "acct_fuzz", **d})),
)


# -- the oracle: what makes an event valid, from the seeds (not from app.model) -------------
#: The seed's complaint spelling (Cyrillic es) is accepted too.
NAMES = {name: name for name in SEED_BODIES} | {"\u0441omplaint": "complaint"}
TIMESTAMPS = {"profileCreatedAt", "last_eshop_opt_in_date", "last_order_date", "last_click_date"}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_iso(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _same_type(value: Any, sample: Any) -> bool:
    """Strict: the type of the seed's sample value (no coercion; a bool is no int)."""
    if isinstance(sample, bool):
        return isinstance(value, bool)
    if isinstance(sample, int):
        return _is_int(value)
    if isinstance(sample, list):
        return isinstance(value, list) and all(_same_type(v, sample[0]) for v in value)
    return isinstance(value, type(sample))


def _valid_contact(contact: Any) -> bool:
    if not isinstance(contact, dict) or set(contact) - set(CONTACT_DATA_SET):
        return False
    if not _is_int(contact.get("msisdn")):
        return False
    for key, value in contact.items():
        if value is None:
            if key == "msisdn":
                return False
        elif key in TIMESTAMPS:
            if not _is_iso(value):
                return False
        elif not _same_type(value, CONTACT_DATA_SET[key]):
            return False
    return True


def expect_valid_event(raw: bytes, family: str) -> bool:
    """Whether ``raw`` is a valid event for ``events.<family>`` by the seeds' rules: the seed
    body's fields with their sample types, plus account_id (required, non-empty), event_id
    (non-empty), occurred_at (ISO-8601), campaign_id (text or number), campaign_name; extra
    keys allowed; contact events carry seed 001's data set under ``contact``."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return False
    if not isinstance(doc, dict) or not isinstance(doc.get("event"), str):
        return False
    name = NAMES.get(doc["event"])
    if name is None or family_of(name) != family:
        return False
    if not (isinstance(doc.get("account_id"), str) and doc["account_id"]):
        return False
    optional = {
        "event_id": lambda v: isinstance(v, str) and v != "",
        "occurred_at": _is_iso,
        "campaign_id": lambda v: isinstance(v, str) or _is_int(v),
        "campaign_name": lambda v: isinstance(v, str),
    }
    for key, check in optional.items():
        if doc.get(key) is not None and not check(doc[key]):
            return False
    if name in ("contact subscribes", "contact unsubscribes"):
        return _valid_contact(doc.get("contact"))
    return all(
        key in doc and _same_type(doc[key], sample)
        for key, sample in SEED_BODIES[name].items()
        if key != "event"
    )


async def _round(pipeline: Pipeline, events: list[tuple[str, bytes]], configs: list[bytes]) -> None:
    receiver = Receiver()
    await receiver.start()
    kafka = Kafka(pipeline.kafka.broker, pipeline.catalog)
    try:
        account = unique("acct_")
        hook = {"id": unique("wh_"), "account_id": account, "url": receiver.url("/valid")}
        # The generated events' account gets a webhook too: a valid one must be delivered.
        fuzz_hook = {"id": unique("wh_"), "account_id": FUZZ_ACCOUNT, "url": receiver.url("/fuzz")}
        await kafka.put_webhooks([hook, fuzz_hook], pipeline.worker)
        expected_invalid: dict[str, str] = {}
        expected_fuzz_deliveries = 0
        for n, (family, raw) in enumerate(events):
            marker = unique(f"fz{n}-")
            if not expect_valid_event(raw, family):
                expected_invalid[marker] = "ingest"
            elif orjson.loads(raw)["account_id"] == FUZZ_ACCOUNT:
                expected_fuzz_deliveries += 1
            await kafka.send(pipeline.catalog.name(f"events.{family}"), raw, marker.encode())
            valid = input_event("message sent", account, event_id=f"valid{n}")
            await kafka.send_json(pipeline.catalog.events_messages, valid, key=account)
        for n, raw in enumerate(configs):
            # No generated config has an "id", so none is valid (the key names none either).
            marker = unique(f"fzc{n}-")
            expected_invalid[marker] = "webhooks"
            await kafka.send(pipeline.catalog.webhooks, raw, marker.encode())

        invalid = await kafka.read(
            pipeline.catalog.events_invalid,
            lambda v: v["key"] in expected_invalid,
            count=len(expected_invalid),
            timeout=60,
        )
        assert {v["key"]: v["stage"] for v in invalid} == expected_invalid
        assert all(v["error"] and not v["error"].startswith("internal error") for v in invalid)
        await wait_until(
            lambda: receiver.count("/valid") >= len(events), 60, "every valid event delivered"
        )
        await wait_until(
            lambda: receiver.count("/fuzz") >= expected_fuzz_deliveries,
            60,
            f"the {expected_fuzz_deliveries} valid generated events delivered",
        )
        # The interleaved events were all delivered, so every generated one was joined: a
        # generated event the oracle called invalid was not delivered instead.
        assert receiver.count("/fuzz") == expected_fuzz_deliveries
        gone = await kafka.send(pipeline.catalog.webhooks, None, fuzz_hook["id"].encode())
        await pipeline.worker.wait_applied({gone.partition: gone.offset})  # not in later rounds
    finally:
        await kafka.close()
        await receiver.stop()


@settings(
    max_examples=8,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@example(
    events=[("messages", raw) for raw in SPECIAL.values()]
    + [("contacts", SPECIAL["deep nesting"])],
    configs=[b"\xff not json", b'{"account_id": "a", "url": "ftp://x", "secret": "whsec_x"}'],
)
@given(
    events=st.lists(
        st.tuples(st.sampled_from(["contacts", "messages"]), bad_event), min_size=15, max_size=30
    ),
    configs=st.lists(bad_config, min_size=3, max_size=8),
)
def test_fuzzed_events_and_configs_land_on_events_invalid_and_valid_traffic_flows(
    module_pipeline: Pipeline, events: list[tuple[str, bytes]], configs: list[bytes]
) -> None:
    asyncio.run(_round(module_pipeline, events, configs))


def test_the_oracle_agrees_with_the_seeds_on_known_cases() -> None:
    """The oracle itself: every seed event is valid on its own topic only, and the classic
    defects are not (checked here so that a wrong oracle cannot pass the fuzz rounds)."""
    for name in SEED_BODIES:
        raw = orjson.dumps(input_event(name, FUZZ_ACCOUNT))
        assert expect_valid_event(raw, family_of(name)), name
        other = "messages" if family_of(name) == "contacts" else "contacts"
        assert not expect_valid_event(raw, other), name
    sent = input_event("message sent", FUZZ_ACCOUNT)
    for broken in (
        {**sent, "message_id": "4"},
        {**sent, "message_id": True},
        {**sent, "message_id": 4.0},
        {**sent, "account_id": ""},
        {**sent, "occurred_at": "yesterday"},
        {k: v for k, v in sent.items() if k != "to"},
    ):
        assert not expect_valid_event(orjson.dumps(broken), "messages"), broken
    assert expect_valid_event(orjson.dumps({**sent, "extra": [1, {"x": None}]}), "messages")
    subscribed = input_event("contact subscribes", FUZZ_ACCOUNT)
    assert not expect_valid_event(
        orjson.dumps({**subscribed, "contact": {"msisdn": 1, "nope": 2}}), "contacts"
    )
    for name, raw in SPECIAL.items():
        assert not expect_valid_event(raw, "messages"), name
