"""The debug receiver's word on a signature: which secret it is valid for, or why not."""

from __future__ import annotations

import base64

from pydantic import SecretStr

from app.flow.signing import sign
from app.model.webhook_config import signing_key
from app.tools.receiver import signature_verdict

ONE = "whsec_" + base64.b64encode(b"receiver-secret-number-one-32b!!").decode()
TWO = "whsec_" + base64.b64encode(b"receiver-secret-number-two-32b!!").decode()
BODY = b'{"event":"message sent"}'


def _headers(secret: str) -> dict[str, str]:
    key = signing_key(SecretStr(secret))
    return {
        "webhook-id": "msg_1",
        "webhook-timestamp": "1700000000",
        "webhook-signature": sign(key, "msg_1", 1700000000, BODY),
    }


def _keys(*secrets: str) -> list[bytes]:
    return [signing_key(SecretStr(s)) for s in secrets]


def test_a_signature_is_matched_against_each_secret_given() -> None:
    assert signature_verdict(_keys(ONE), _headers(ONE), BODY) == "valid"
    assert signature_verdict(_keys(ONE, TWO), _headers(TWO), BODY) == "valid (secret 2)"
    assert signature_verdict(_keys(ONE), _headers(TWO), BODY) == "INVALID"
    assert signature_verdict(_keys(ONE), _headers(ONE), BODY + b" ") == "INVALID"


def test_a_request_without_a_signature_is_unsigned_not_invalid() -> None:
    assert signature_verdict(_keys(ONE), {"webhook-id": "msg_1"}, BODY) == "unsigned"
    broken = {**_headers(ONE), "webhook-timestamp": "soon"}
    assert signature_verdict(_keys(ONE), broken, BODY).startswith("INVALID")
