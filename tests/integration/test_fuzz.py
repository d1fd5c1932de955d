"""Fuzzing the pipeline's input: hypothesis-generated events and configs, interleaved with
valid traffic, on a real worker.

Each generated record must either be delivered (if it happens to be valid) or land on
``events.invalid`` with a specific reason; valid events sent in between must all be delivered,
so no agent stopped. Which of the two a record deserves is decided by the same pure validators
the pipeline uses (their rules are unit-tested on their own).
"""

from __future__ import annotations

import asyncio

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from app.flow.join import parse_event
from app.model.errors import InvalidInputError
from app.model.events import EventFamily
from app.model.url_policy import UrlPolicy
from app.model.webhook_config import parse_config_record
from tests.integration.conftest import Pipeline
from tests.integration.harness import Kafka, Receiver, unique, wait_until
from tests.seed_bodies import SEED_BODIES, family_of, input_event

pytestmark = pytest.mark.slow

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
    event = input_event(name, "acct_fuzz")
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


def _expect_invalid_event(raw: bytes, family: str) -> bool:
    try:
        parse_event(raw, EventFamily(family))
    except InvalidInputError:
        return True
    return False


def _expect_invalid_config(key: bytes, raw: bytes) -> bool:
    try:
        parse_config_record(key, raw, UrlPolicy(True, True))
    except InvalidInputError:
        return True
    return False


async def _round(pipeline: Pipeline, events: list[tuple[str, bytes]], configs: list[bytes]) -> None:
    receiver = Receiver()
    await receiver.start()
    kafka = Kafka(pipeline.kafka.broker, pipeline.catalog)
    try:
        account = unique("acct_")
        hook = {"id": unique("wh_"), "account_id": account, "url": receiver.url("/valid")}
        await kafka.put_webhooks([hook], pipeline.worker)
        expected_invalid: dict[str, str] = {}
        for n, (family, raw) in enumerate(events):
            marker = unique(f"fz{n}-")
            if _expect_invalid_event(raw, family):
                expected_invalid[marker] = "ingest"
            await kafka.send(pipeline.catalog.name(f"events.{family}"), raw, marker.encode())
            valid = input_event("message sent", account, event_id=f"valid{n}")
            await kafka.send_json(pipeline.catalog.events_messages, valid, key=account)
        for n, raw in enumerate(configs):
            marker = unique(f"fzc{n}-")
            if _expect_invalid_config(marker.encode(), raw):
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
            lambda: len(receiver.at("/valid")) >= len(events), 60, "every valid event delivered"
        )
    finally:
        await kafka.close()
        await receiver.stop()


@settings(
    max_examples=3,
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


def test_every_special_input_is_refused_by_the_validator() -> None:
    for name, raw in SPECIAL.items():
        assert _expect_invalid_event(raw, "messages"), name
    assert family_of("message sent") == "messages"
