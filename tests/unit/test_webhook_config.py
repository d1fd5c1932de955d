"""Webhook config validation: every rule gives a specific reason."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from app.model.errors import InvalidInputError
from app.model.events import EventName
from app.model.url_policy import UrlPolicy
from app.model.webhook_config import WebhookConfig, parse_config_record

SECRET = "whsec_" + base64.b64encode(b"s" * 32).decode()
STRICT = UrlPolicy()


def config(**fields: Any) -> dict[str, Any]:
    return {"id": "wh_1", "account_id": "a", "url": "https://hooks.example.com/x", **fields}


def test_minimal_config_defaults() -> None:
    parsed = WebhookConfig.model_validate(config())
    assert parsed.active and parsed.method == "POST" and parsed.content_type == "json"
    assert parsed.subscribes_to(EventName.COMPLAINT)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"url": "http://hooks.example.com/x"}, "must use https"),
        ({"url": "https://127.0.0.1/x"}, "loopback"),
        ({"url": "https://10.1.2.3/x"}, "private-network"),
        ({"url": "https://169.254.169.254/latest"}, "link-local"),
        ({"url": "https://[::ffff:10.0.0.1]/x"}, "private-network"),
        ({"url": "https://localhost/x"}, "loopback host"),
        ({"url": "https://user:pw@hooks.example.com/x"}, "credentials"),
        ({"url": None}, "url: Field required"),
        ({"event_urls": {"message sent": "http://h/x"}}, "event_urls['message sent']"),
        ({"events": ["message exploded"]}, "unknown event name"),
        (
            {"method": "GET", "auth": {"type": "basic", "username": "u", "password": "p"}},
            "POST only",
        ),
        ({"secret": "abc"}, "must start with 'whsec_'"),
        ({"secret": "whsec_!!!"}, "not valid base64"),
        ({"secret": "whsec_" + base64.b64encode(b"short").decode()}, "24-64 bytes"),
        ({"custom_payload": []}, "at least one mapping"),
        ({"custom_payload": [{"field": "a", "value": 1}, {"field": "a", "path": "b"}]}, "twice"),
        ({"id": "../etc"}, "id must be"),
        ({"batch": {"max_events": 10, "max_wait_ms": 0}, "method": "GET"}, "JSON POST only"),
        ({"batch": {"max_events": 10, "max_wait_ms": 0}, "content_type": "form"}, "JSON POST only"),
        ({"batch": {"max_events": 1001, "max_wait_ms": 0}}, "less than or equal to 1000"),
        ({"batch": {"max_events": 10, "max_wait_ms": 60001}}, "less than or equal to 60000"),
        ({"ordering": "time"}, "'none' or 'key'"),
        ({"surprise": 1}, "Extra inputs"),
    ],
)
def test_invalid_configs_are_refused_with_a_specific_reason(
    fields: dict[str, Any], reason: str
) -> None:
    with pytest.raises(ValidationError) as info:
        WebhookConfig.model_validate(config(**fields), context={"url_policy": STRICT})
    assert reason in str(info.value)


def test_url_is_optional_when_every_subscribed_event_has_its_own_url() -> None:
    parsed = WebhookConfig.model_validate(
        config(url=None, events=["message open"], event_urls={"message open": "https://h/o"})
    )
    assert parsed.url_for(EventName.MESSAGE_OPEN) == "https://h/o"


def test_cyrillic_complaint_is_accepted_in_subscriptions() -> None:
    parsed = WebhookConfig.model_validate(config(events=["\u0441omplaint"]))
    assert parsed.events == [EventName.COMPLAINT]


def test_policy_can_allow_http_and_private_networks() -> None:
    WebhookConfig.model_validate(
        config(url="http://127.0.0.1:8080/x"), context={"url_policy": UrlPolicy(True, True)}
    )


def test_secrets_are_masked_in_repr_and_kept_on_the_wire() -> None:
    auth = {"type": "basic", "username": "u", "password": "pw-value"}
    parsed = WebhookConfig.model_validate(config(secret=SECRET, auth=auth))
    assert SECRET not in repr(parsed) and "pw-value" not in repr(parsed)
    wire = parsed.to_wire()
    assert wire["secret"] == SECRET and wire["auth"]["password"] == "pw-value"
    assert WebhookConfig.model_validate(wire) == parsed


def test_config_record_errors_never_echo_the_secret() -> None:
    raw = orjson.dumps(config(secret="whsec_" + "x" * 7, url="ftp://h"))
    with pytest.raises(InvalidInputError) as info:
        parse_config_record(b"wh_1", raw, STRICT)
    assert "x" * 7 not in str(info.value)
    assert "scheme" in str(info.value)


def test_tracking_is_refused_where_no_tracking_secret_can_sign_its_tokens() -> None:
    context = {"url_policy": STRICT, "tracking": False}
    with pytest.raises(ValidationError) as info:
        WebhookConfig.model_validate(config(tracking=True), context=context)
    assert "HOOKSTREAM_TRACKING_SECRET" in str(info.value)
    assert WebhookConfig.model_validate(config(tracking=False), context=context)
