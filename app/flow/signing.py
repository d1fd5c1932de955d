"""Standard Webhooks signatures (v1, HMAC-SHA256 over ``id.timestamp.body``), pure.

Receivers verify them with any Standard Webhooks library; the tests use the official
``standardwebhooks`` verifier.
"""

from __future__ import annotations

import base64
import hmac

SIGNATURE_VERSION = "v1"


def sign(key: bytes, message_id: str, timestamp: int, content: bytes) -> str:
    """The ``webhook-signature`` header value for one request."""
    to_sign = f"{message_id}.{timestamp}.".encode() + content
    digest = hmac.digest(key, to_sign, "sha256")  # one-shot, in OpenSSL
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode()}"


def verify(key: bytes, message_id: str, timestamp: int, content: bytes, header: str) -> bool:
    """True when any signature in ``header`` (space-separated) matches, in constant time."""
    expected = sign(key, message_id, timestamp, content)
    return any(hmac.compare_digest(expected, candidate) for candidate in header.split())
