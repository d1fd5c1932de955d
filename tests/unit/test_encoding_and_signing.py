"""Request encoding (JSON, form, GET query) and Standard Webhooks signatures."""

from __future__ import annotations

import base64
from urllib.parse import parse_qsl, urlsplit

import orjson
import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from app.flow.encoding import FORM_CONTENT_TYPE, JSON_CONTENT_TYPE, encode_request, form_pairs
from app.flow.signing import sign, verify
from app.model.webhook_config import ContentType, HttpMethod

PAYLOAD = {"event": "contact adding", "ids": [0, 1], "ok": True, "none": None, "obj": {"a": 1}}
SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()


def test_json_body_keeps_key_order() -> None:
    request = encode_request(PAYLOAD, "https://h/x", HttpMethod.POST, ContentType.JSON)
    assert request.content_type == JSON_CONTENT_TYPE
    assert list(orjson.loads(request.body or b"")) == list(PAYLOAD)
    assert request.signed == request.body


def test_form_encoding_of_non_string_values() -> None:
    assert form_pairs(PAYLOAD) == [
        ("event", "contact adding"),
        ("ids", "0"),
        ("ids", "1"),
        ("ok", "true"),
        ("none", ""),
        ("obj", '{"a":1}'),
    ]
    request = encode_request(PAYLOAD, "https://h/x", HttpMethod.POST, ContentType.FORM)
    assert request.content_type == FORM_CONTENT_TYPE


def test_get_appends_the_payload_to_an_existing_query_and_signs_the_whole_query() -> None:
    request = encode_request({"a": "1 2"}, "https://h/x?k=v", HttpMethod.GET, ContentType.JSON)
    assert request.body is None and request.content_type is None
    query = urlsplit(request.url).query
    assert parse_qsl(query) == [("k", "v"), ("a", "1 2")]
    assert request.signed == query.encode()


def test_signature_is_accepted_by_the_official_verifier_and_rejects_tampering() -> None:
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    body = b'{"event":"message sent"}'
    timestamp = int(__import__("time").time())
    header = sign(key, "msg_1", timestamp, body)
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(timestamp),
        "webhook-signature": header,
    }
    assert Webhook(SECRET).verify(body, headers) == {"event": "message sent"}
    assert verify(key, "msg_1", timestamp, body, header)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(body + b" ", headers)
    assert not verify(key, "msg_2", timestamp, body, header)
